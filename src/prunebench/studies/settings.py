"""The config's settings refused as the commands refuse them, so that ``snakemake -n`` stops a value
a job would stop on, in one line, before any job runs: the results and data folders, ImageNet's
block, crop, resize and decoder, Nesterov momentum per protocol, and the models the bench times.
The rules themselves are shared with the commands (:mod:`prunebench.core.limits`, and
:func:`prunebench.pruning.labelled_cfg` for the bench's models), so the two sides cannot drift."""

from __future__ import annotations

from pathlib import Path

from prunebench.core.errors import UserError, config_check
from prunebench.core.limits import check_crop_fits, check_decoder, check_image_sizes, check_nesterov

from .study import protocol, study_methods


def _refuse(check) -> None:
    """Run a shared check given config keys for names; its UserError becomes a config error."""
    try:
        check()
    except UserError as e:
        raise UserError(f"config: {e}") from None


def check_folder(key: str, path: str) -> None:
    """A folder to write under (results) or read from (data_root): a missing one is created, a
    file in its place (or in place of a folder above it) fails every job that touches it."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == Path(path) else f"is under {p}, a file"
                raise UserError(f"config: {key} = {path!r} {where}, not a folder; point {key} at a folder (a missing one is created)")
            return


def imagenet_archs(config: dict) -> dict[str, str]:
    """{arch: the first study training it on ImageNet}."""
    out: dict[str, str] = {}
    for name, study in config["studies"].items():
        for models_ in study_methods(study).values():
            for arch in models_.get("imagenet", {}):
                out.setdefault(arch, name)
    return out


def check(config: dict) -> None:
    """Every setting a command checks on its own, after the schema and the studies."""
    if "{" in config["results"] or "}" in config["results"]:
        raise UserError(f"config: results = {config['results']!r} holds braces, which Snakemake reads as wildcards in every path under it; choose a folder name without {{ or }}")
    check_folder("results", config["results"])
    check_folder("data_root", config["data_root"])
    _check_imagenet(config)
    for name in (None, *config.get("protocols", {})):
        where = f"protocols.{name}" if name else "protocol"
        own = config["protocols"][name] if name else config["protocol"]
        p = protocol(config, name)
        momentum = f"{where}.momentum" if "momentum" in own else "protocol.momentum"
        _refuse(lambda: check_nesterov(p.get("nesterov", False), p["momentum"], f"{where}.nesterov", momentum))
    from prunebench.pruning import labelled_cfg  # as `prunebench bench --models` reads them

    for i, text in enumerate(config["bench"]["models"]):
        config_check(f"bench.models[{i}] = {text!r}", lambda: labelled_cfg(text))


def _check_imagenet(config: dict) -> None:
    """The ``imagenet`` block where a study trains on ImageNet; every scale's crop and resize as
    the train command takes them, large enough for each ImageNet model; the decoder on the device."""
    archs = imagenet_archs(config)
    if archs and "imagenet" not in config:
        study = next(iter(archs.values()))
        raise UserError(f"config: studies.{study} trains on ImageNet but the config has no imagenet block; add imagenet: {{decoder: auto, nodes: 1}}")
    for name, scale in config["scales"].items():
        if "imagenet" not in scale:
            continue
        key, sizes = f"scales.{name}.imagenet", scale["imagenet"]
        _refuse(lambda: check_image_sizes(sizes["crop"], sizes["resize"], f"{key}.crop", f"{key}.resize"))
        for arch in archs:
            _refuse(lambda: check_crop_fits(arch, sizes["crop"], f"{key}.crop"))
    if "imagenet" in config:
        _refuse(lambda: check_decoder(config["imagenet"]["decoder"], config["device"], decoder_name="imagenet.decoder"))
