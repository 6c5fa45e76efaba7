"""Limits on values that a command refuses and that the config check refuses too, before any job
runs: one function per rule, called from both sides, so the two cannot drift. Each takes the
names to print for its values (a command's option, or the config key), so one message serves
both. Torch-free: the commands import it at start."""

from __future__ import annotations

import re

from .errors import UserError

MIN_CROP = 8  # the smallest ImageNet crop side the commands take
# Families whose networks need a larger input: five 2x2 max-pools halve 32 pixels to one.
MIN_CROP_BY_FAMILY = {"vgg": (32, "five 2x2 max-pools")}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_image_sizes(crop, resize, crop_name: str = "crop", resize_name: str = "resize") -> None:
    """ImageNet's crop and resize: evaluation centre-crops the resized image, so resize >= crop."""
    if not _whole(crop) or crop < MIN_CROP:
        raise UserError(f"{crop_name} = {crop!r} is not a whole number of pixels of at least {MIN_CROP}; use e.g. 224 (the protocol's) or 32 (smoke runs)")
    if not _whole(resize) or resize < crop:
        raise UserError(f"{resize_name} = {resize!r} is smaller than {crop_name} = {crop} (evaluation centre-crops the resized image); use at least {crop}, e.g. 256 for a 224 crop")


def check_crop_fits(arch: str, crop: int, crop_name: str = "crop") -> None:
    """An ImageNet network's input must survive its downsampling (a VGG's pools)."""
    least, why = MIN_CROP_BY_FAMILY.get(re.match(r"[a-z]*", arch).group(0), (MIN_CROP, ""))
    if crop < least:
        raise UserError(f"{crop_name} = {crop} is too small for {arch}: its {why} need at least {least} pixels; use {crop_name} {least} or more")


def check_decoder(decoder: str, device: str, cuda: bool = True, decoder_name: str = "decoder", device_name: str = "device") -> None:
    """The GPU decoder decodes on the run's CUDA device: a CPU device has none (``cuda``: whether
    the device, once chosen, is an available CUDA one; unknown before a job runs)."""
    if decoder == "gpu" and (device == "cpu" or not cuda):
        raise UserError(f"{decoder_name}='gpu' needs an available CUDA device, got {device_name}={device}; use {decoder_name}='cpu' or 'auto'")


def check_nesterov(nesterov: bool, momentum: float, nesterov_name: str = "nesterov", momentum_name: str = "momentum") -> None:
    """torch's SGD refuses Nesterov momentum without momentum."""
    if nesterov and momentum <= 0:
        raise UserError(f"{nesterov_name} needs momentum, but {momentum_name} = {momentum}; set {momentum_name} above 0 (e.g. 0.9) or turn {nesterov_name} off")
