"""Prepared dataset files, subsets, and the batched augmentation against torchvision's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from prunebench.core.errors import UserError
from prunebench.core.io import save_torch
from prunebench.data import cifar as D
from prunebench.data.cifar import MEAN, STD, Data, TrainBatches
from prunebench.data.sampling import epoch_generator

CPU = torch.device("cpu")
REFERENCE = transforms.Compose(
    [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
)


# --------------------------------------------------------------------------- Data and subsets
def test_data_full(tiny_prepared):
    blob = torch.load(tiny_prepared, weights_only=True)
    d = Data(tiny_prepared)
    assert d.dataset == "cifar10" and d.num_classes == 10
    assert torch.equal(d.train_x, blob["train_x"]) and torch.equal(d.test_y, blob["test_y"])
    d2 = Data(tiny_prepared, train_subset=10_000, test_subset=40)  # larger than the data: all of it
    assert torch.equal(d2.train_x, blob["train_x"]) and torch.equal(d2.test_x, blob["test_x"])


def test_data_subsets_are_deterministic(tiny_prepared):
    blob = torch.load(tiny_prepared, weights_only=True)
    a = Data(tiny_prepared, train_subset=20, test_subset=7)
    b = Data(tiny_prepared, train_subset=20, test_subset=7)
    assert a.train_x.shape == (20, 32, 32, 3) and a.test_x.shape == (7, 32, 32, 3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    # a subset is made of whole (image, label) rows of the full data, without repeats, in file order
    full = blob["train_x"].flatten(1)
    rows = [int(torch.nonzero((full == r.flatten()).all(1)).item()) for r in a.train_x]
    assert rows == sorted(set(rows))
    assert torch.equal(a.train_y, blob["train_y"][rows])
    assert rows != list(range(20))  # random, not the first 20


def test_data_bad_inputs(tiny_prepared, tmp_path):
    with pytest.raises(UserError, match="train_subset must be a positive number"):
        Data(tiny_prepared, train_subset=0)
    with pytest.raises(UserError, match="does not exist"):
        Data(tmp_path / "missing.pt")
    save_torch(tmp_path / "other.pt", {"arch": "resnet20"})
    with pytest.raises(UserError, match="not a prepared dataset"):
        Data(tmp_path / "other.pt")


def test_eval_batches_are_plain_normalised_images(tiny_prepared):
    d = Data(tiny_prepared)
    xs, ys = zip(*D.eval_batches(d.test_x, d.test_y, 16, CPU))
    assert [len(y) for y in ys] == [16, 16, 8]
    x, y = torch.cat(xs), torch.cat(ys)
    assert torch.equal(y, d.test_y)
    for i in (0, 17, 39):
        ref = TF.normalize(TF.to_tensor(Image.fromarray(d.test_x[i].numpy())), MEAN, STD)
        torch.testing.assert_close(x[i], ref)


# --------------------------------------------------------------------------- augmentation
def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _reference_crop(px: np.ndarray, dy: int, dx: int, flip: bool) -> torch.Tensor:
    img = TF.pad(Image.fromarray(px), 4, fill=0)
    img = TF.crop(img, dy, dx, 32, 32)
    if flip:
        img = TF.hflip(img)
    return TF.normalize(TF.to_tensor(img), MEAN, STD)


def _ours(tb: TrainBatches, idx, offsets, flips) -> torch.Tensor:
    crops = tb.crop_flip(torch.as_tensor(idx), torch.as_tensor(offsets), torch.as_tensor(flips))
    assert crops.dtype == torch.uint8 and crops.shape == (len(idx), 32, 32, 3)
    return D._normalise(crops, tb.mean, tb.std)


def test_crop_flip_matches_hand_reference_for_every_offset():
    x = _images(2)
    tb = TrainBatches(x, torch.zeros(2, dtype=torch.int64), 8, CPU)
    combos = [(i, dy, dx, f) for i in range(2) for dy in range(9) for dx in range(9) for f in (False, True)]
    idx = [c[0] for c in combos]
    offsets = [[c[1], c[2]] for c in combos]
    flips = [c[3] for c in combos]
    ours = _ours(tb, idx, offsets, flips)
    ref = torch.stack([_reference_crop(x[i].numpy(), dy, dx, f) for i, dy, dx, f in combos])
    torch.testing.assert_close(ours, ref)


def test_padding_is_black_before_normalisation():
    x = torch.full((1, 32, 32, 3), 200, dtype=torch.uint8)
    tb = TrainBatches(x, torch.zeros(1, dtype=torch.int64), 1, CPU)
    pad_value = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    img_value = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    out = _ours(tb, [0, 0, 0], [[0, 0], [8, 8], [0, 8]], [False, False, True])
    # offset (0, 0): top 4 rows and left 4 columns are padding
    torch.testing.assert_close(out[0, :, :4, :], pad_value[:, None, None].expand(3, 4, 32))
    torch.testing.assert_close(out[0, :, :, :4], pad_value[:, None, None].expand(3, 32, 4))
    torch.testing.assert_close(out[0, :, 4:, 4:], img_value[:, None, None].expand(3, 28, 28))
    # offset (8, 8): bottom rows and right columns
    torch.testing.assert_close(out[1, :, 28:, :], pad_value[:, None, None].expand(3, 4, 32))
    torch.testing.assert_close(out[1, :, :28, :28], img_value[:, None, None].expand(3, 28, 28))
    # offset (0, 8) flipped: padding ends up on the left
    torch.testing.assert_close(out[2, :, :, :4], pad_value[:, None, None].expand(3, 32, 4))
    torch.testing.assert_close(out[2, :, 4:, 4:], img_value[:, None, None].expand(3, 28, 28))


def test_crop_flip_matches_torchvision_pipeline(monkeypatch):
    """Run the reference Compose itself, record its crop parameters, and find our equivalent."""
    x = _images(1, seed=3)
    tb = TrainBatches(x, torch.zeros(1, dtype=torch.int64), 1, CPU)
    pil = Image.fromarray(x[0].numpy())
    seen = []
    original = transforms.RandomCrop.get_params

    def recording(img, output_size):
        i, j, h, w = original(img, output_size)
        seen.append((i, j))
        return i, j, h, w

    monkeypatch.setattr(transforms.RandomCrop, "get_params", staticmethod(recording))
    torch.manual_seed(0)
    flips_seen = set()
    for _ in range(40):
        ref = REFERENCE(pil)
        dy, dx = seen[-1]
        plain, flipped = (_ours(tb, [0], [[dy, dx]], [f])[0] for f in (False, True))
        match = [f for f, out in ((False, plain), (True, flipped)) if torch.allclose(out, ref, rtol=1e-5, atol=1e-6)]
        assert len(match) == 1, (dy, dx)
        flips_seen.add(match[0])
    assert flips_seen == {False, True}
    assert len(set(seen)) > 20


def test_offsets_and_flips_are_uniform():
    n, epochs = 256, 100
    tb = TrainBatches(_images(n), torch.zeros(n, dtype=torch.int64), 64, CPU)
    offs, flips = [], []
    for e in range(epochs):
        order, o, f = tb.draw(epoch_generator(7, e))
        assert torch.equal(order.sort().values, torch.arange(n))
        offs.append(o)
        flips.append(f)
    offs, flips = torch.cat(offs), torch.cat(flips)
    total = n * epochs
    assert offs.min() == 0 and offs.max() == 8
    for axis in (0, 1):
        counts = torch.bincount(offs[:, axis], minlength=9).double()
        assert len(counts) == 9
        expect = total / 9
        chi2 = ((counts - expect) ** 2 / expect).sum().item()
        assert chi2 < 40, (axis, counts)  # 8 dof: p(chi2 > 40) ~ 3e-6; a biased sampler scores in the 1000s
    joint = torch.bincount(offs[:, 0] * 9 + offs[:, 1], minlength=81).double()
    expect = total / 81
    assert ((joint - expect) ** 2 / expect).sum().item() < 150  # 80 dof: p ~ 1e-5
    assert abs(flips.double().mean().item() - 0.5) < 0.02  # sd 0.003
    # flips do not depend on the horizontal offset
    for dx in range(9):
        assert abs(flips[offs[:, 1] == dx].double().mean().item() - 0.5) < 0.05


def test_epoch_covers_every_image_once():
    n = 70
    x = (torch.arange(n, dtype=torch.uint8) * 3)[:, None, None, None].expand(n, 32, 32, 3).contiguous()
    y = torch.arange(n)
    tb = TrainBatches(x, y, 32, CPU)
    assert len(tb) == 3
    for epoch in range(3):
        batches = list(tb.epoch(epoch_generator(1, epoch)))
        assert [len(b[1]) for b in batches] == [32, 32, 6]
        xs, ys = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        assert xs.shape == (n, 3, 32, 32) and xs.dtype == torch.float32
        assert torch.equal(ys.sort().values, y)
        # the image served with each label is that label's image (the centre is never padding)
        expect = (ys[:, None].float() * 3 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
        torch.testing.assert_close(xs[:, :, 16, 16], expect)


def test_epoch_batches_are_the_drawn_crops():
    x, y = _images(50, seed=1), torch.arange(50) % 10
    tb = TrainBatches(x, y, 16, CPU)
    order, offsets, flips = tb.draw(epoch_generator(3, 4))
    served = list(tb.epoch(epoch_generator(3, 4)))
    xs, ys = torch.cat([b[0] for b in served]), torch.cat([b[1] for b in served])
    assert torch.equal(ys, y[order])
    ref = torch.stack(
        [_reference_crop(x[i].numpy(), int(o[0]), int(o[1]), bool(f)) for i, o, f in zip(order, offsets, flips)]
    )
    torch.testing.assert_close(xs, ref)


def test_same_seed_and_epoch_same_batches():
    x, y = _images(50, seed=2), torch.arange(50)
    a = list(TrainBatches(x, y, 16, CPU).epoch(epoch_generator(5, 2)))
    b = list(TrainBatches(x.clone(), y.clone(), 16, CPU).epoch(epoch_generator(5, 2)))
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other_epoch = torch.cat([yb for _, yb in TrainBatches(x, y, 16, CPU).epoch(epoch_generator(5, 3))])
    other_seed = torch.cat([yb for _, yb in TrainBatches(x, y, 16, CPU).epoch(epoch_generator(6, 2))])
    this = torch.cat([ya for _, ya in a])
    assert not torch.equal(this, other_epoch) and not torch.equal(this, other_seed)
