"""Whole-step CUDA graphs (training/graphs.py). On the CPU the graph is emulated: the same
bookkeeping (warm-up, static buffers, the learning rate as a tensor, the epoch's last smaller
batch run eagerly) with the step called in place of a replay; a run trained that way must equal
an eager one bit for bit, for every kind of step (plain, masked, slimming's penalty, SFP's soft
pruning). Where a GPU is present, the real capture is checked against the eager step."""

from __future__ import annotations

import pytest
import torch

from prunebench import models
from prunebench.data.cifar import Data
from prunebench.models import masks
from prunebench.training import graphs
from prunebench.training.loop import fit
from prunebench.training.step import Hparams, Schedule, make_optimizer, make_step

CPU = torch.device("cpu")
SMALL_VGG = [8, "M", 16, "M", 16, "M", 16, "M", 16]


@pytest.fixture(scope="module")
def data(tiny_prepared):
    return Data(tiny_prepared)  # 128 training images: batches of 48, 48 and a last one of 32


def hparams(**kw) -> Hparams:
    return Hparams(Schedule.fractional(3, 0.1, (0.5, 0.75)), seed=1, batch_size=48, test_batch_size=64, **kw)


def build(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "resnet":
        return models.build("resnet20")
    model = models.build("vgg16", SMALL_VGG)
    if kind == "masked":
        masks.apply(model, masks.magnitude_masks(model, 0.5))
    return model


def train(kind: str, graph: str, data, tmp_path, device=CPU, **kw):
    model = build(kind)
    result = fit(model, data, hparams(**kw), device, tmp_path / f"{graph}.pt", graph=graph)
    return model, result


CASES = {"resnet": {}, "masked": {}, "slimming": {"sparsity": 1e-4}, "sfp": {"soft_keep": 0.7}}


@pytest.mark.parametrize("case", CASES)
def test_emulated_graph_equals_eager_bit_for_bit(case, data, tmp_path, sigterm_guard):
    kind = "resnet" if case in ("resnet", "sfp") else "masked" if case == "masked" else "vgg"
    eager, r_eager = train(kind, "off", data, tmp_path, **CASES[case])
    graphed, r_graphed = train(kind, "emulate", data, tmp_path, **CASES[case])
    se, sg = eager.state_dict(), graphed.state_dict()
    assert se.keys() == sg.keys()
    for k in se:
        assert torch.equal(se[k], sg[k]), k
    drop = lambda h: [{k: v for k, v in e.items() if k != "time"} for e in h]  # noqa: E731
    assert drop(r_eager["history"]) == drop(r_graphed["history"])
    lrs = [h["lr"] for h in r_graphed["history"]]
    assert lrs == [hparams().schedule.lr_at(e) for e in range(3)] and lrs[0] != lrs[1]  # the schedule moved on
    assert r_eager["cuda_graph"] is False and r_graphed["cuda_graph"] is False  # emulated: no CUDA graph
    if case == "masked":
        assert masks.sparsity(graphed)["pruned_nonzero"] == 0


def test_replay_bookkeeping():
    """Warm-up calls run eagerly; the first full-size batch after them is captured and every later
    one of that shape replays through the static buffers; another shape runs eagerly."""
    seen = []

    def step(x, y, n):
        seen.append((x.data_ptr(), len(y), n))
        return x.sum()

    replayed = graphs.Replayed(step, CPU, warmup=2, capture=False)
    batches = [torch.full((4, 2), float(i)) for i in range(6)]
    labels = torch.zeros(4, dtype=torch.long)
    for i, x in enumerate(batches[:3]):
        assert float(replayed(x, labels, 4)) == 8.0 * i
    assert replayed.active  # the third call captured
    static = replayed.static[0].data_ptr()
    assert [p for p, _, _ in seen[:2]] == [batches[0].data_ptr(), batches[1].data_ptr()]
    assert seen[2][0] == static
    assert float(replayed(batches[3], labels, 4)) == 24.0 and seen[3][0] == static
    small = torch.ones(2, 2)
    assert float(replayed(small, labels[:2], 2)) == 4.0 and seen[4] == (small.data_ptr(), 2, 2)
    assert float(replayed(batches[5], labels, 4)) == 40.0 and seen[5][0] == static


def test_learning_rate_is_a_tensor_set_in_place_and_saved_as_a_float():
    model = build("resnet")
    opt = make_optimizer(model, hparams(), CPU)
    graphs.tensor_lr(opt, CPU)
    lr = opt.param_groups[0]["lr"]
    graphs.set_lr(opt, 0.01)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == 0.01
    state = graphs.plain_state(opt)
    assert all(type(g["lr"]) is float and g["lr"] == 0.01 for g in state["param_groups"])
    plain = make_optimizer(build("resnet"), hparams(), CPU)
    graphs.set_lr(plain, 0.5)
    assert plain.param_groups[0]["lr"] == 0.5


def test_graphs_only_for_one_cuda_process_without_compile(monkeypatch):
    cuda = torch.device("cuda")
    assert graphs.wanted(cuda, 1, "none")
    assert not graphs.wanted(CPU, 1, "none")
    assert not graphs.wanted(cuda, 2, "none")
    assert not graphs.wanted(cuda, 1, "reduce-overhead")
    monkeypatch.setenv(graphs.ENV, "0")
    assert not graphs.wanted(cuda, 1, "none")


def batches(device, sizes=(48, 48, 48, 48, 32, 48, 48)):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, 3, 32, 32, generator=g).to(device).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (n,), generator=g).to(device)) for n in sizes]


def steps_differ(kind: str, device, graph: str, **kw) -> list[float]:
    """Largest parameter difference after each step between the eager step (the learning rate a
    tensor too, so the same kernels run) and ``graph``'s, from the same weights and batches."""
    runs = []
    for mode in ("emulate", graph):
        model = build(kind).to(device).to(memory_format=torch.channels_last)
        hp = hparams(**kw)
        step = make_step(model, make_optimizer(model, hp, device), hp, device, graph=mode)
        runs.append((model, step))
    diffs = []
    for x, y in batches(device):
        for _, step in runs:
            step(x, y, len(y))
        (a, _), (b, _) = runs
        diffs.append(max((pa - pb).abs().max().item() for pa, pb in zip(a.state_dict().values(), b.state_dict().values()) if pa.is_floating_point()))
    return diffs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["resnet", "masked"])
def test_cuda_graph_step_equals_the_eager_step(kind, monkeypatch):
    """Step by step, the replayed graph computes what the eager step does: warm-up, capture,
    replays and the eager smaller batch, from the same weights and batches (cuDNN deterministic)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    diffs = steps_differ(kind, torch.device("cuda"), "cuda", sparsity=1e-4 if kind == "masked" else 0.0)
    print(kind, diffs)
    assert max(diffs) <= 1e-6, diffs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_cuda_graph_trains_every_kind_of_run(case, data, tmp_path, sigterm_guard):
    """A whole graphed run of each kind captures its step and trains; masked weights stay exactly
    zero. (Whole runs are not compared with eager ones: with cuDNN's nondeterminism two eager runs
    of one seed already drift apart, so the step-by-step test above is the comparison.)"""
    graphed, result = train("resnet" if case in ("resnet", "sfp") else "masked" if case == "masked" else "vgg", "cuda", data, tmp_path, torch.device("cuda"), **CASES[case])
    assert result["cuda_graph"] is True
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result["history"])
    if case == "masked":
        assert masks.sparsity(graphed)["pruned_nonzero"] == 0


def test_step_speed_command_on_cpu(tmp_path):
    """``prunebench step-speed`` takes its grid on the CPU (the graph emulated) and writes both files."""
    import json

    from click.testing import CliRunner

    from prunebench.commands.cli import cli

    out = CliRunner().invoke(cli, ["step-speed", "--models", "resnet20", "--device", "cpu", "--precisions", "fp32", "--steps", "1", "--out-json", str(tmp_path / "s.json"), "--out-md", str(tmp_path / "s.md")])
    assert out.exit_code == 0, out.output
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [(r["graph"], r["format"]) for r in rows] == [("off", "channels_last"), ("emulate", "channels_last"), ("emulate", "contiguous")]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert "| resnet20 | eager | fp32 | channels_last |" in (tmp_path / "s.md").read_text()
