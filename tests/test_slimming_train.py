"""Network slimming through training: the sparsity penalty, and base -> prune -> arms via runs."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.pruning import masked_copy
from prunebench.training import jobs, runs
from prunebench.training import step as train
from prunebench.training.runs import ArmProtocol, RunSpec
from prunebench.training.step import Hparams, Schedule

CPU = torch.device("cpu")
HP = {"batch_size": 16, "test_batch_size": 64}
SUBSETS = {"train_subset": 32, "test_subset": 8}


def bn_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def batch(seed: int = 0, n: int = 4, classes: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, classes, (n,), generator=g)


# --------------------------------------------------------------------------- sparsity penalty
@pytest.mark.parametrize("arch", ["densenet40", "vgg19"])
def test_sparsity_penalty_adds_s_sign_gamma_to_bn_grads(arch):
    torch.manual_seed(0)
    model = models.build(arch).train()
    with torch.no_grad():  # mixed signs and one exact zero: sign(0) adds nothing
        for k, w in enumerate(bn_weights(model)):
            w.mul_(torch.where(torch.arange(len(w)) % 3 == k % 3, -1.0, 1.0))
        bn_weights(model)[0][0] = 0.0
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    train.sparsity_penalty(model, 0.0)()  # s = 0: a no-op
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())

    s = 1e-4
    train.sparsity_penalty(model, s)()
    scales = {id(w) for w in bn_weights(model)}
    for n, p in model.named_parameters():
        if id(p) in scales:
            assert torch.equal(p.grad, grads[n] + s * torch.sign(p.detach())), n
        else:
            assert torch.equal(p.grad, grads[n]), n  # conv, linear, BN shifts, BatchNorm1d: untouched
    first = next(n for n, p in model.named_parameters() if p is bn_weights(model)[0])
    assert model.get_parameter(first).grad[0] == grads[first][0]  # the zero gamma


def test_make_step_with_sparsity_moves_only_bn_scales():
    """One SGD step with and without the penalty from the same weights: only BN2d scales differ,
    by lr * s * sign(gamma) (the first momentum step is the gradient itself)."""
    torch.manual_seed(0)
    base = models.build("densenet40").train()
    lr, s = 0.1, 1e-2
    after = {}
    for sparsity in (0.0, s):
        model = copy.deepcopy(base)
        hp = Hparams(schedule=Schedule(1, lr), sparsity=sparsity)
        step = train.make_step(model, train.make_optimizer(model, hp, CPU), hp, CPU)
        step(*batch(1))
        after[sparsity] = dict(model.named_parameters())
    scales = {n for n, m in base.named_modules() if isinstance(m, nn.BatchNorm2d)}
    before = dict(base.named_parameters())
    for n, p in after[s].items():
        plain = after[0.0][n]
        if n.removesuffix(".weight") in scales:
            expected = plain - lr * s * torch.sign(before[n])
            torch.testing.assert_close(p, expected, rtol=0, atol=1e-6)
            assert not torch.equal(p, plain)
        else:
            assert torch.equal(p, plain), n


# --------------------------------------------------------------------------- base -> prune -> arms
def run(spec, data, out, epochs=1, hparams=HP):
    out.mkdir(parents=True, exist_ok=True)
    return runs.train_run(spec, str(data), ArmProtocol(epochs, 0.1, (0.5,)), dict(hparams), CPU, str(out / "model.pt"), str(out / "metrics.json"), **SUBSETS)


@pytest.fixture(scope="module")
def vgg_chain(tiny_prepared, tmp_path_factory):
    """A sparsity-trained vgg19 base (1 epoch) and its slimming-0.5 pruned file."""
    root = tmp_path_factory.mktemp("slim_vgg")
    base = run(RunSpec("vgg19", "base"), tiny_prepared, root / "base", hparams={**HP, "sparsity": 1e-4})
    report = jobs.prune_run(str(root / "base" / "model.pt"), "slimming", "0.5", 1, str(root / "pruned.pt"), str(root / "prune.json"))
    return root, base, report


def test_base_records_sparsity(vgg_chain):
    _, base, _ = vgg_chain
    assert base["hparams"]["sparsity"] == 1e-4 and base["run"]["arm"] == "base" and base["run"]["method"] is None


def test_prune_report_and_pruned_file(vgg_chain, tmp_path):
    root, _, report = vgg_chain
    on_disk = json.loads((root / "prune.json").read_text())
    assert on_disk["method"] == "slimming" and on_disk["setting"] == "0.5" and on_disk["global_ratio"] == 0.5
    assert isinstance(on_disk["threshold"], float) and isinstance(on_disk["emptied"], list)
    assert on_disk["standin"] is False
    assert on_disk["run"]["method"] == "slimming" and on_disk["run"]["arm"] == "pruned"
    layers = on_disk["layers"]
    assert len(layers) == 16 and all({"before", "after", "layer", "ratio"} <= set(row) for row in layers)
    assert sum(r["after"] for r in layers) < sum(r["before"] for r in layers)
    assert on_disk["macs_after"] < on_disk["macs_before"]

    blob = torch.load(root / "pruned.pt", weights_only=True)
    assert blob["cfg"] == on_disk["cfg_after"] and blob["run"] == on_disk["run"]
    small = models.build(blob["arch"], blob["cfg"], blob["num_classes"], **blob["options"])
    small.load_state_dict(blob["state_dict"])
    assert [r["after"] for r in layers] == [c for c in blob["cfg"] if c != "M"]
    # the pruned network computes what the base computes with the dropped channels silenced
    base = torch.load(root / "base" / "model.pt", weights_only=True)
    full = models.build(base["arch"], base["cfg"], base["num_classes"], **base["options"])
    full.load_state_dict(base["state_dict"])
    keep = {g.name: torch.tensor(blob["kept"][g.name]) for g in full.channel_groups()}
    x, _ = batch(2, n=2)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), masked_copy(full, keep).eval()(x), rtol=1e-5, atol=1e-5)


def test_scratch_e_trains_the_learned_architecture_from_fresh_weights(vgg_chain, tiny_prepared):
    root, _, _ = vgg_chain
    pruned = str(root / "pruned.pt")
    spec = RunSpec("vgg19", "scratch-e", method="slimming", setting="0.5", init=pruned)
    model, _, inputs, _ = runs.starting_model(spec, 10)
    blob = torch.load(pruned, weights_only=True)
    assert model.cfg == blob["cfg"] and inputs["architecture"]["path"] == pruned
    state = model.state_dict()
    assert state.keys() == blob["state_dict"].keys()
    assert not torch.equal(state["features.0.weight"], blob["state_dict"]["features.0.weight"])

    metrics = run(spec, tiny_prepared, root / "scratch-e")
    assert metrics["epochs"] == 1 and len(metrics["history"]) == 1
    assert metrics["run"]["method"] == "slimming" and metrics["run"]["setting"] == "0.5"
    assert torch.load(root / "scratch-e" / "model.pt", weights_only=True)["cfg"] == blob["cfg"]


def test_finetune_takes_method_and_setting_from_the_pruned_file(vgg_chain, tiny_prepared):
    root, _, _ = vgg_chain
    metrics = run(RunSpec("vgg19", "finetune", init=str(root / "pruned.pt")), tiny_prepared, root / "finetune")
    assert metrics["run"]["method"] == "slimming" and metrics["run"]["setting"] == "0.5"
    assert metrics["run"]["arm"] == "finetune"
    saved = json.loads((root / "finetune" / "metrics.json").read_text())
    assert saved["run"] == metrics["run"]


def test_scratch_b_epochs_follow_the_macs_ratio(vgg_chain, tiny_prepared):
    root, _, report = vgg_chain
    spec = RunSpec("vgg19", "scratch-b", method="slimming", setting="0.5", init=str(root / "pruned.pt"))
    metrics = run(spec, tiny_prepared, root / "scratch-b", epochs=1)
    assert metrics["macs"] == report["macs_after"] and metrics["macs_full"] == report["macs_before"]
    expected = int(1 * report["macs_before"] / report["macs_after"])
    assert expected >= 1 and metrics["epochs"] == expected and len(metrics["history"]) == expected


def test_densenet_chain_prunes_selections(tiny_prepared, tmp_path):
    run(RunSpec("densenet40", "base"), tiny_prepared, tmp_path / "base", hparams={**HP, "sparsity": 1e-5})
    report = jobs.prune_run(str(tmp_path / "base" / "model.pt"), "slimming", "0.4", 1, str(tmp_path / "p.pt"), str(tmp_path / "p.json"))
    blob = torch.load(tmp_path / "p.pt", weights_only=True)
    default = models.default_cfg("densenet40")
    assert any(isinstance(c, list) for c in blob["cfg"])
    for c, width in zip(blob["cfg"], default):  # an entry is the full width or sorted kept indices
        assert c == width or (isinstance(c, list) and c == sorted(set(c)) and 0 < len(c) < width and c[-1] < width)
    assert [r["after"] for r in report["layers"]] == [len(c) if isinstance(c, list) else c for c in blob["cfg"]]
    metrics = run(RunSpec("densenet40", "scratch-e", method="slimming", setting="0.4", init=str(tmp_path / "p.pt")), tiny_prepared, tmp_path / "se")
    assert metrics["macs"] == report["macs_after"]


# --------------------------------------------------------------------------- train-arm errors
def test_scratch_of_learned_method_needs_init(tiny_prepared, tmp_path):
    for arm in ("scratch-e", "scratch-b"):
        spec = RunSpec("vgg19", arm, method="slimming", setting="0.5")
        with pytest.raises(UserError, match=f"slimming learns its architecture: the {arm} arm needs --init"):
            runs._check_spec(spec)
        with pytest.raises(UserError, match="needs --init"):
            run(spec, tiny_prepared, tmp_path / arm)
        assert not (tmp_path / arm / "model.pt").exists()


def test_base_with_method_is_refused(tiny_prepared, tmp_path):
    for kw in ({"method": "slimming"}, {"setting": "0.5"}, {"init": "x.pt"}):
        with pytest.raises(UserError, match="base arm trains the full network"):
            run(RunSpec("vgg19", "base", **kw), tiny_prepared, tmp_path)
    assert not (tmp_path / "model.pt").exists()


def test_sparsity_only_on_the_base_arm(vgg_chain, tiny_prepared, tmp_path):
    root, _, _ = vgg_chain
    pruned = str(root / "pruned.pt")
    for spec in (RunSpec("vgg19", "finetune", init=pruned), RunSpec("vgg19", "scratch-e", method="slimming", setting="0.5", init=pruned)):
        with pytest.raises(UserError, match="--sparsity trains a base model"):
            run(spec, tiny_prepared, tmp_path / spec.arm, hparams={**HP, "sparsity": 1e-4})
        assert not (tmp_path / spec.arm / "model.pt").exists()


def test_scratch_refuses_a_pruned_file_of_another_setting(vgg_chain, tiny_prepared, tmp_path):
    """The learned cfg must be the one the run's path names: slimming at 0.5, not at 0.7."""
    root, _, _ = vgg_chain
    spec = RunSpec("vgg19", "scratch-e", method="slimming", setting="0.7", init=str(root / "pruned.pt"))
    with pytest.raises(UserError, match="was pruned by slimming at 0.5, not slimming at 0.7"):
        run(spec, tiny_prepared, tmp_path / "se")
    assert not (tmp_path / "se" / "model.pt").exists()
