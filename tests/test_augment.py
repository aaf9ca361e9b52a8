"""Batched augmentation: each transform does what it says, per sample, reproducibly; and the preview command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from regsweep.data.augment import AugmentSettings, _smooth, augment_batch
from regsweep.schema import check_fields
from regsweep.errors import ConfigError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
ALL_ON = AugmentSettings(
    noise_std=0.1, noise_p=1, shift_max_px=2, shift_p=1, rotate_max_deg=15, rotate_p=1,
    elastic_alpha=34, elastic_sigma=4, elastic_p=1,
)


def generator(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch(n: int = 16, seed: int = 0, shape: tuple[int, int] = (28, 28), device: str = "cpu") -> torch.Tensor:
    return torch.rand(n, 1, *shape, generator=generator(seed)).to(device)


def centroid(image: torch.Tensor) -> torch.Tensor:
    """(y, x) center of mass of a [H, W] image above its minimum."""
    weights = image - image.min()
    ys, xs = torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]), indexing="ij")
    return torch.stack([(weights * ys).sum(), (weights * xs).sum()]) / weights.sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved(device, dtype):
    x = torch.rand(8, 3, 20, 24, generator=generator(0)).to(device, dtype)
    out = augment_batch(x, ALL_ON, generator(1, device))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)


def test_probability_zero_is_identity():
    x = batch()
    off = replace(ALL_ON, noise_p=0, shift_p=0, rotate_p=0, elastic_p=0)
    assert torch.equal(augment_batch(x, off, generator(0)), x)
    assert torch.equal(augment_batch(x, AugmentSettings(), generator(0)), x)


def test_probability_applies_per_sample_and_leaves_others_untouched():
    x = batch(400)
    out = augment_batch(x, AugmentSettings(rotate_max_deg=30, rotate_p=0.5), generator(0))
    untouched = (out == x).flatten(1).all(dim=1)
    assert 0.4 < untouched.float().mean() < 0.6
    assert ((out - x).flatten(1).abs().amax(dim=1)[~untouched] > 1e-3).all()  # the others really rotated


def test_same_seed_same_output_different_seed_different_output():
    x = batch()
    first = augment_batch(x, ALL_ON, generator(7))
    assert torch.equal(first, augment_batch(x, ALL_ON, generator(7)))
    assert not torch.allclose(first, augment_batch(x, ALL_ON, generator(8)))


def test_shift_moves_a_pixel_by_whole_pixels_within_the_maximum():
    x = torch.full((64, 1, 28, 28), -0.5)  # a normalized background below zero
    x[:, :, 14, 14] = 1.0
    out = augment_batch(x, AugmentSettings(shift_max_px=3, shift_p=1), generator(0))
    offsets = []
    for image in out[:, 0]:
        peak = torch.nonzero(image > 0.99)
        assert len(peak) == 1  # moved whole, not smeared by interpolation
        offsets.append((peak[0] - torch.tensor([14, 14])).tolist())
        assert torch.allclose(image.sum(), x[0, 0].sum(), atol=1e-3)
    offsets = torch.tensor(offsets)
    assert offsets.abs().max() == 3 and len({tuple(o) for o in offsets.tolist()}) > 10
    assert torch.allclose(out.min(), torch.tensor(-0.5))  # uncovered area filled with the background


def test_geometric_transforms_keep_a_constant_image_constant():
    """The fill is the image's own minimum, so no frame appears whatever the normalization."""
    x = torch.full((8, 1, 28, 28), -0.4242)
    settings = replace(ALL_ON, noise_p=0, shift_max_px=5, rotate_max_deg=40, elastic_alpha=50)
    assert torch.allclose(augment_batch(x, settings, generator(0)), x, atol=1e-6)


def test_rotation_keeps_a_centered_blob_centered():
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blob = torch.exp(-((ys - 13.5) ** 2 / 30 + (xs - 13.5) ** 2 / 6))  # elongated: rotation is visible
    x = blob.expand(16, 1, 28, 28).clone()
    out = augment_batch(x, AugmentSettings(rotate_max_deg=60, rotate_p=1), generator(0))
    for image in out[:, 0]:
        assert torch.allclose(centroid(image), torch.tensor([13.5, 13.5]), atol=0.1)
    assert (out - x).abs().amax() > 0.2


def test_rotation_is_rigid_on_non_square_images():
    """An off-center blob stays at its distance from the center: no stretch from the [-1, 1] grid."""
    height, width = 20, 40
    ys, xs = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
    x = torch.exp(-((ys - 9.5) ** 2 + (xs - 28.0) ** 2) / 2).expand(32, 1, height, width).clone()
    out = augment_batch(x, AugmentSettings(rotate_max_deg=90, rotate_p=1), generator(0))
    center = torch.tensor([(height - 1) / 2, (width - 1) / 2])
    distances = torch.stack([torch.linalg.norm(centroid(image) - center) for image in out[:, 0]])
    assert torch.allclose(distances, torch.full_like(distances, 8.5), atol=0.3)
    angles = torch.stack([torch.atan2(*(centroid(image) - center)) for image in out[:, 0]])
    assert angles.std() > 0.3  # the blob did move around the center


def test_noise_std_and_probability():
    x = torch.zeros(400, 1, 28, 28)
    out = augment_batch(x, AugmentSettings(noise_std=0.3, noise_p=1), generator(0))
    assert abs(out.std().item() - 0.3) < 0.005 and abs(out.mean().item()) < 0.005
    half = augment_batch(x, AugmentSettings(noise_std=0.3, noise_p=0.5), generator(0))
    noisy = (half != 0).flatten(1).any(dim=1).float().mean().item()
    assert 0.4 < noisy < 0.6


def test_elastic_alpha_zero_is_identity_and_positive_alpha_distorts():
    x = batch()
    assert torch.equal(augment_batch(x, AugmentSettings(elastic_alpha=0, elastic_p=1), generator(0)), x)
    out = augment_batch(x, AugmentSettings(elastic_alpha=34, elastic_sigma=4, elastic_p=1), generator(0))
    assert (out - x).abs().mean() > 0.05


@pytest.mark.parametrize("sigma", [0.7, 4.0, 30.0])
def test_elastic_smoothing_matches_scipy_gaussian_filter(sigma):
    """The Simard field smoothing: a gaussian of std sigma with zero padding, as in the reference code."""
    field = torch.rand(2, 3, 28, 20, dtype=torch.float64) * 2 - 1
    expected = np.stack([[gaussian_filter(f.numpy(), sigma, mode="constant") for f in pair] for pair in field])
    np.testing.assert_allclose(_smooth(field, sigma).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"noise_std": -0.1}, "augment.noise_std"),
        ({"noise_p": 1.5}, "augment.noise_p"),
        ({"shift_p": -0.1}, "augment.shift_p"),
        ({"shift_max_px": 1.5}, "augment.shift_max_px"),
        ({"shift_max_px": -1}, "augment.shift_max_px"),
        ({"rotate_max_deg": 200}, "augment.rotate_max_deg"),
        ({"rotate_p": float("nan")}, "augment.rotate_p"),
        ({"elastic_alpha": -1}, "augment.elastic_alpha"),
        ({"elastic_sigma": 0}, "augment.elastic_sigma"),
        ({"elastic_p": True}, "augment.elastic_p"),
        ({"noise_std": "0.1"}, "augment.noise_std"),
    ],
)
def test_invalid_settings_raise_config_error(changes, key):
    with pytest.raises(ConfigError) as err:
        AugmentSettings(**changes)
    assert err.value.key == key and err.value.value is not None
    assert str(err.value).startswith(f"Invalid config: {key}=")


def test_check_uses_the_given_prefix():
    settings = AugmentSettings()
    object.__setattr__(settings, "elastic_sigma", -1.0)  # bypass the frozen dataclass's own check
    with pytest.raises(ConfigError, match="train.augment.elastic_sigma"):
        check_fields(settings, prefix="train.augment")


@pytest.mark.parametrize("x", [torch.zeros(4, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8)])
def test_rejects_non_batches(x):
    with pytest.raises(ValueError, match=r"expected a float batch \[B, C, H, W\]"):
        augment_batch(x, ALL_ON, generator(0))


def test_preview_command_writes_a_png(tmp_path):
    import matplotlib.image

    out = tmp_path / "preview" / "grid.png"
    result = subprocess.run(
        [sys.executable, "-m", "regsweep.data.augment_preview", "--out", str(out), "--n", "4", "--seed", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    rows = 6  # original, noise, shift, rotation, elastic, all combined
    assert image.shape[:2] == (round(1.7 * rows * 100), round((1.2 * 4 + 0.4) * 100))
    assert image[..., :3].std() > 0.1  # not a blank canvas
