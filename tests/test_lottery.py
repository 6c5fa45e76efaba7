"""The lottery study: theta_0 rebuilt and checked, the winning ticket on theta_0 under the mask
and the random one on a fresh init, iterative and structured masks, the study config and the
lottery table and figure."""

from __future__ import annotations

import pytest
import torch
from test_methods import PROTOCOL, check_error, config

from prunebench import methods
from prunebench.core.errors import UserError
from prunebench.core.utils import seed_everything
from prunebench.methods.lottery import filter_masks, parse_rounds, previous_round, prune_remaining
from prunebench.models import masks
from prunebench.studies.study import check, rows
from prunebench.training.checkpoints import load_model, save_model, weights_sha256
from prunebench.training.jobs import init_run, prune_run
from prunebench.training.runs import ArmProtocol, RunSpec, starting_model, train_run

CPU = torch.device("cpu")
TINY = {"train_subset": 32, "test_subset": 16}


def _train(tiny_prepared, tmp_path, spec: RunSpec, name: str, lr: float = 0.1) -> dict:
    return train_run(spec, str(tiny_prepared), ArmProtocol(1, lr), {"batch_size": 16}, CPU, str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}.json"), **TINY)


@pytest.fixture(scope="module")
def base(tiny_prepared, tmp_path_factory):
    """A trained resnet20 base, its theta_0 rebuilt by init_run, and its magnitude-pruned file."""
    d = tmp_path_factory.mktemp("lottery")
    metrics = _train(tiny_prepared, d, RunSpec("resnet20", "base", 3), "base")
    init = init_run(str(d / "base.pt"), str(d / "base.json"), str(d / "init.pt"))
    prune_run(str(d / "base.pt"), "magnitude", "0.5", 3, str(d / "pruned.pt"), str(d / "prune.json"))
    return d, metrics, init


def test_theta0_is_the_base_init_before_its_first_step(base):
    d, metrics, init = base
    assert init == {"sha256": metrics["init_sha256"], "verified": True}
    theta0, meta = load_model(d / "init.pt")
    assert meta["run"]["arm"] == "init" and meta["run"]["seed"] == 3 and weights_sha256(theta0) == metrics["init_sha256"]
    seed_everything(3)
    fresh, *_ = starting_model(RunSpec("resnet20", "base", 3), 10)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), theta0.state_dict().values()))
    trained, _ = load_model(d / "base.pt")
    assert not torch.equal(trained.conv1.weight, theta0.conv1.weight)  # training moved it


def test_init_refuses_a_changed_or_mismatched_base(base, tmp_path):
    d, metrics, _ = base
    import json

    bad = {**metrics, "init_sha256": "0" * 64}
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(UserError, match="differs from the init it trained from"):
        init_run(str(d / "base.pt"), str(tmp_path / "m.json"), str(tmp_path / "i.pt"))
    with pytest.raises(UserError, match="not a trained base"):
        init_run(str(d / "pruned.pt"), str(d / "base.json"), str(tmp_path / "i.pt"))
    assert not (tmp_path / "i.pt").exists()


def test_winning_ticket_is_theta0_under_the_mask_and_random_is_not(base):
    d, _, _ = base
    theta0 = load_model(d / "init.pt")[0].state_dict()
    mask = masks.masks_of(load_model(d / "pruned.pt")[0])
    seed_everything(3)
    win, _, inputs, _ = starting_model(RunSpec("resnet20", "winning", 3, "magnitude", "0.5", init=str(d / "pruned.pt"), theta0=str(d / "init.pt")), 10)
    seed_everything(3)
    rnd, *_ = starting_model(RunSpec("resnet20", "scratch-e", 3, "magnitude", "0.5", init=str(d / "pruned.pt")), 10)
    assert "theta0" in inputs
    for key, m in mask.items():
        expected = theta0[key] * m
        assert torch.equal(masks.effective(masks.conv_weights(win)[key]).detach(), expected), key
        got = masks.effective(masks.conv_weights(rnd)[key]).detach()
        assert not torch.equal(got, expected) and torch.equal(got != 0, m), key  # same mask, other weights
    plain = masks.plain_state_dict(win)
    assert torch.equal(plain["fc.weight"], theta0["fc.weight"]) and torch.equal(plain["bn1.weight"], theta0["bn1.weight"])


def test_winning_arm_trains_with_the_mask_kept(base, tiny_prepared, tmp_path):
    d, _, _ = base
    spec = RunSpec("resnet20", "winning", 3, "magnitude", "0.5", init=str(d / "pruned.pt"), theta0=str(d / "init.pt"))
    metrics = _train(tiny_prepared, tmp_path, spec, "win", lr=0.01)
    assert metrics["mask_checks"]["no_regrowth"] and metrics["inputs"]["theta0"]["path"] == str(d / "init.pt")
    assert metrics["hparams"]["schedule"]["lr"] == 0.01 and metrics["macs"] < metrics["macs_full"]


@pytest.mark.parametrize(
    "spec, needle",
    [
        (dict(arm="winning", method="magnitude", setting="0.5", init="p.pt"), "needs --theta0"),
        (dict(arm="scratch-e", method="magnitude", setting="0.5", init="p.pt", theta0="i.pt"), "does not take it"),
        (dict(arm="winning", method="l1", setting="A"), "l1 has no winning arm"),
    ],
)
def test_winning_arm_inputs_are_checked(spec, needle):
    with pytest.raises(UserError, match=needle):
        starting_model(RunSpec("resnet56", seed=1, **spec), 10)


def test_winning_refuses_an_init_of_another_model(base, tmp_path):
    d, _, _ = base
    with pytest.raises(UserError, match="not an init file"):
        starting_model(RunSpec("resnet20", "winning", 3, "magnitude", "0.5", init=str(d / "pruned.pt"), theta0=str(d / "base.pt")), 10)


# --------------------------------------------------------------------------- masks
def test_iterative_rounds_prune_a_fraction_of_the_remaining_weights(base, tmp_path):
    d, _, _ = base
    model, _ = load_model(d / "pruned.pt")  # round 1 at 50 %: a masked model
    before = masks.sparsity(model)["nonzero"]
    found = prune_remaining(model, 0.2)
    after = sum(int(m.sum()) for m in found.values())
    assert after == before - int(before * 0.2) - 1  # thr = sorted nonzero[int(n * 0.2)], keep > thr
    old = masks.masks_of(model)
    assert all(not (found[k] & ~old[k]).any() for k in old)  # nothing pruned comes back
    meta = load_model(d / "pruned.pt")[1]
    round1 = {**meta["run"], "method": "iterative", "setting": "1x0.2", "arm": "winning"}  # as if round 1's winning ticket
    save_model(tmp_path / "r1.pt", model, meta["arch"], meta["num_classes"], options=meta["options"], run=round1)
    report = prune_run(str(tmp_path / "r1.pt"), "iterative", "2x0.2", 3, str(tmp_path / "r2.pt"), str(tmp_path / "r2.json"))
    assert report["round"] == 2 and report["nominal_sparsity"] == pytest.approx(0.36)


def test_iterative_settings_and_chain():
    assert parse_rounds("3x0.2") == (3, 0.2) and previous_round("3x0.2") == "2x0.2" and previous_round("1x0.2") is None
    for bad in ("0x0.2", "3", "3x1.5", "x0.2", "2x0"):
        with pytest.raises(UserError, match="ROUNDSxFRACTION"):
            parse_rounds(bad)
    m = methods.get("iterative")
    assert m.chained and m.source("1x0.2") is None and m.source("4x0.2") == ("3x0.2", "winning")


def test_l1mask_zeroes_the_filters_l1_prunes_and_not_their_bn():
    from prunebench import models
    from prunebench.pruning import layer_ratios, select_filters, variant_spec

    torch.manual_seed(0)
    model = models.build("resnet56")
    groups = {g.name: g for g in model.channel_groups()}
    pruned = methods.get("l1mask").prune(model, "resnet56", "A", 0)
    keep = select_filters(model, layer_ratios(model.channel_groups(), variant_spec("resnet56", "A")), "l1", 0)
    assert keep and set(pruned.masks) == set(masks.conv_weights(model)) and not any("bn" in k for k in pruned.masks)
    for name, kept in keep.items():
        mask = pruned.masks[groups[name].weight_key]
        alive = mask.flatten(1).all(1)
        assert alive.nonzero().flatten().tolist() == sorted(kept.tolist())
        assert not mask.flatten(1)[~alive].any()  # a pruned filter is zero entirely
        for key, dim in groups[name].consumers:  # the next conv's kernels reading a pruned filter
            reads = pruned.masks[key].transpose(0, dim).flatten(1).any(1)
            assert reads.nonzero().flatten().tolist() == sorted(kept.tolist())
    consumers = {k for name in keep for k, _ in groups[name].consumers}
    untouched = [k for k in pruned.masks if k[: -len(".weight")] not in keep and k not in consumers]
    assert untouched and all(pruned.masks[k].all() for k in untouched)
    assert all(m.all() for m in filter_masks(model, {}).values())


def test_l1mask_counts_what_the_physically_pruned_network_does():
    from prunebench import models
    from prunebench.models.counting import count_macs, count_macs_by_mask
    from prunebench.pruning.surgery import prune as cut

    torch.manual_seed(0)
    model = models.build("resnet56")
    small = cut(model, "resnet56", methods.get("l1").prune(model, "resnet56", "A", 0).keep, 10)
    masks.apply(model, methods.get("l1mask").prune(model, "resnet56", "A", 0).masks)
    assert count_macs_by_mask(model) == count_macs(model) == count_macs(small)


def test_l1mask_winning_ticket_passes_its_checks_with_a_zero_in_theta0(tiny_prepared, tmp_path):
    """theta_0 draws an exact 0 now and then; one in a kernel reading a pruned filter gets no
    gradient (the channel is dead), so unless the mask covers it the MACs by weight and by mask
    differ after training."""
    from prunebench import models
    from prunebench.training.checkpoints import save_model
    from prunebench.training.checks import failed, run_checks

    torch.manual_seed(0)
    run = RunSpec("resnet56", "base", 1).describe("cifar10", "custom")
    save_model(tmp_path / "base.pt", models.build("resnet56"), "resnet56", 10, run=run)
    prune_run(str(tmp_path / "base.pt"), "l1mask", "A", 1, str(tmp_path / "p.pt"), str(tmp_path / "p.json"))
    conv1 = load_model(tmp_path / "p.pt")[0].layer1[0].conv1
    dead = int((~conv1.weight_mask.bool().flatten(1).any(1)).nonzero()[0])
    theta0 = models.build("resnet56")
    with torch.no_grad():
        theta0.layer1[0].conv2.weight[0, dead, 1, 1] = 0.0
    save_model(tmp_path / "init.pt", theta0, "resnet56", 10, run={**run, "arm": "init"})
    spec = RunSpec("resnet56", "winning", 1, "l1mask", "A", init=str(tmp_path / "p.pt"), theta0=str(tmp_path / "init.pt"))
    metrics = _train(tiny_prepared, tmp_path, spec, "win")
    assert metrics["mask_checks"]["macs_agree"] and metrics["mask_checks"]["no_regrowth"]
    trained, _ = load_model(tmp_path / "win.pt")
    assert failed(run_checks(trained, metrics)) == []


def test_l1mask_prune_step_writes_a_masked_full_model(tmp_path):
    from prunebench import models
    from prunebench.training.checkpoints import save_model

    torch.manual_seed(0)
    save_model(tmp_path / "base.pt", models.build("resnet56"), "resnet56", 10, run={"dataset": "cifar10", "arch": "resnet56", "arm": "base", "seed": 1})
    report = prune_run(str(tmp_path / "base.pt"), "l1mask", "B", 1, str(tmp_path / "p.pt"), str(tmp_path / "p.json"))
    pruned, meta = load_model(tmp_path / "p.pt")
    assert masks.is_masked(pruned) and meta["cfg"] == models.default_cfg("resnet56") and report["unit"] == "conv weights"
    assert report["filter_ratios"]["layer1.0.conv1"] > 0 and 0 < report["params_reduction_pct"] < 50


# --------------------------------------------------------------------------- config
LOTTERY = {
    "report": "lottery",
    "arms": ["winning", "scratch-e"],
    "protocol": ["default", "small_lr"],
    "methods": {
        "magnitude": {"cifar10": {"vgg16": [0.2, 0.5, 0.9]}},
        "iterative": {"cifar10": {"vgg16": ["1x0.2", "2x0.2", "3x0.2"]}},
        "l1mask": {"cifar10": {"resnet56": ["A", "B"]}},
    },
}


def lottery_config(study: dict = LOTTERY, keep: int | None = None) -> dict:
    cfg = config(study, "lottery")
    arms = {**PROTOCOL["arms"], "winning": {"epochs": 1, "lr": 0.1, "milestones": []}}
    cfg["protocol"] = {"arms": arms}
    cfg["protocols"] = {"small_lr": {"arms": {a: {"epochs": 1, "lr": 0.01, "milestones": []} for a in ("base", "winning", "scratch-e")}}}
    cfg["scales"] = {"smoke": {"max_settings": keep}}
    return cfg


def test_lottery_rows_cover_every_method_at_each_protocol():
    check(lottery_config())
    got = rows(lottery_config(), "lottery")
    assert len(got) == 2 * (3 + 3 + 2)
    assert {r.tag for r in got} == {"plain", "plain+protocol=small_lr"}
    assert [r.setting for r in got if r.method == "iterative" and r.tag == "plain"] == ["1x0.2", "2x0.2", "3x0.2"]
    one_lr = lottery_config()
    one_lr["scales"]["smoke"]["max_protocols"] = 1
    assert {r.tag for r in rows(one_lr, "lottery")} == {"plain"}
    thinned = rows(lottery_config(keep=2), "lottery")
    assert [r.setting for r in thinned if r.method == "iterative" and r.tag == "plain"] == ["1x0.2", "2x0.2"]  # a chain keeps its first rounds
    assert [r.setting for r in thinned if r.method == "magnitude" and r.tag == "plain"] == ["0.2", "0.9"]
    first = rows(lottery_config(keep=1), "lottery")
    assert [r.setting for r in first if r.method == "iterative" and r.tag == "plain"] == ["1x0.2", "2x0.2"]  # at least 2: the second prunes a pruned model
    assert [r.setting for r in first if r.method == "magnitude" and r.tag == "plain"] == ["0.2"]


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"method": "magnitude"}, ("give either method and models, or methods",)),
        ({"methods": {"iterative": {"cifar10": {"vgg16": ["1x0.2", "3x0.2"]}}}}, ("3x0.2 builds on 2x0.2", "list every earlier round")),
        ({"methods": {"l1": {"cifar10": {"vgg16": ["A"]}}}}, ("studies.lottery.arms (method l1)", "'winning'")),
        ({"protocol": ["default", "tiny_lr"]}, ("studies.lottery.protocol", "'tiny_lr'", "small_lr")),
        ({"methods": {"iterative": {"cifar10": {"vgg16": ["1x2"]}}}}, ("studies.lottery.methods.iterative.cifar10.vgg16[0]", "ROUNDSxFRACTION")),
        ({"report": "table"}, ("a table compares the arms of one method", "report: lottery or archsearch")),
        ({"report": "archsearch"}, ("the archsearch report shows the arms scratch-b, scratch-e", "drop winning")),
    ],
)
def test_lottery_config_errors(change, needles):
    check_error(lottery_config({**LOTTERY, **change}), *needles)


def test_a_protocol_without_the_winning_schedule_is_named():
    cfg = lottery_config()
    del cfg["protocol"]["arms"]["winning"]
    check_error(cfg, "arm 'winning' has no schedule", "protocol.arms.winning")
