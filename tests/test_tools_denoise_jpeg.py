"""Denoising and JPEG tools on real images and real weights (no mocks).

Thresholds are about 60 % of the mean PSNR gain measured on the four 192×192
crops (noise σ 25 with the seeds below; Pillow JPEG quality 20), so a broken
colour order, scale or padding fails while CPU/BLAS differences do not.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from restoreagent.tools.base import ToolUnavailable
from restoreagent.tools.denoise import DenoiseDnCNN, DenoiseFFDNet, DenoiseNLMeans, DenoiseOIDN
from restoreagent.tools.jpeg import JpegDeblock, JpegDnCNN3
from restoreagent.tools.perception.jpeg_quality import estimate_jpeg_quality
from restoreagent.tools.perception.noise_sigma import estimate_sigma
from restoreagent.tools.util.jpeg_codec import saved_quality
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import add_gaussian_noise, jpeg_compress

IMAGE_ID = "img-0000000000000000"


def noisy_set(clean: dict[str, np.ndarray], sigma: float) -> dict[str, np.ndarray]:
    return {n: add_gaussian_noise(c, sigma, np.random.default_rng(i)) for i, (n, c) in enumerate(clean.items())}


def jpeg_set(clean: dict[str, np.ndarray], quality: int) -> dict[str, np.ndarray]:
    return {n: jpeg_compress(c, quality) for n, c in clean.items()}


def mean_gain(tool, args, degraded: dict[str, np.ndarray], clean: dict[str, np.ndarray]) -> float:
    gains = []
    for name, ref in clean.items():
        out = tool(degraded[name], args)
        assert out.shape == ref.shape and out.dtype == np.float32
        gains.append(psnr(out, ref) - psnr(degraded[name], ref))
    return float(np.mean(gains))


# measured mean gain (dB) on the crops: FFDNet 11.6, DnCNN 11.2, OIDN 8.7, NL-means 7.1
DENOISERS = [
    (DenoiseFFDNet, True, 7.0),
    (DenoiseDnCNN, True, 6.7),
    (DenoiseOIDN, False, 5.2),
    (DenoiseNLMeans, False, 4.3),
]


@pytest.mark.parametrize(("cls", "needs_weights", "min_gain"), DENOISERS, ids=[c.spec.name for c, *_ in DENOISERS])
def test_denoiser_removes_gaussian_noise(cls, needs_weights, min_gain, request, clean_images):
    context = request.getfixturevalue("tool_context" if needs_weights else "offline_context")
    gain = mean_gain(cls(context), cls.Args(image_id=IMAGE_ID), noisy_set(clean_images, 25), clean_images)
    assert gain >= min_gain, f"{cls.spec.name}: mean gain {gain:.2f} dB"


def test_ffdnet_uses_given_sigma(tool_context, clean_images):
    # Telling FFDNet a far too small σ must leave most of the noise: sigma reaches the network.
    tool, noisy = DenoiseFFDNet(tool_context), noisy_set(clean_images, 25)
    right = mean_gain(tool, DenoiseFFDNet.Args(image_id=IMAGE_ID, sigma=25), noisy, clean_images)
    wrong = mean_gain(tool, DenoiseFFDNet.Args(image_id=IMAGE_ID, sigma=3), noisy, clean_images)
    assert right > wrong + 5.0


@pytest.mark.parametrize("cls", [DenoiseOIDN, DenoiseDnCNN], ids=["oidn", "dncnn"])
def test_strength_zero_returns_input(cls, request, clean_images):
    context = request.getfixturevalue("tool_context" if cls.spec.needs_weights else "offline_context")
    noisy = noisy_set(clean_images, 25)["chelsea"]
    out = cls(context)(noisy, cls.Args(image_id=IMAGE_ID, strength=0.0))
    np.testing.assert_allclose(out, noisy, atol=1e-5)


# measured mean gain at q20: DnCNN-3 1.32 dB; deblock 0.98 / 0.79 / 0.78 dB at q 10 / 20 / 30
def test_dncnn3_removes_jpeg_artifacts(tool_context, clean_images):
    tool = JpegDnCNN3(tool_context)
    gain = mean_gain(tool, JpegDnCNN3.Args(image_id=IMAGE_ID), jpeg_set(clean_images, 20), clean_images)
    assert gain >= 0.8, f"mean gain {gain:.2f} dB"


@pytest.mark.parametrize(("quality", "min_gain"), [(10, 0.55), (20, 0.47), (30, 0.45)])
def test_deblock_removes_jpeg_artifacts(offline_context, clean_images, quality, min_gain):
    tool = JpegDeblock(offline_context)
    gain = mean_gain(tool, JpegDeblock.Args(image_id=IMAGE_ID), jpeg_set(clean_images, quality), clean_images)
    assert gain >= min_gain, f"q{quality}: mean gain {gain:.2f} dB"


def test_deblock_with_given_quality(offline_context, clean_images):
    tool, degraded = JpegDeblock(offline_context), jpeg_set(clean_images, 20)
    gain = mean_gain(tool, JpegDeblock.Args(image_id=IMAGE_ID, quality=20), degraded, clean_images)
    assert gain >= 0.47


# --- tiling: an image larger than the tile comes back whole and as good --------------------------
TILED = [
    (DenoiseFFDNet, "noise"),
    (DenoiseOIDN, "noise"),
    (JpegDnCNN3, "jpeg"),
    (JpegDeblock, "jpeg"),
]


@pytest.mark.parametrize(("cls", "kind"), TILED, ids=[c.spec.name for c, _ in TILED])
def test_tiled_matches_untiled(cls, kind, request, clean_images):
    context = request.getfixturevalue("tool_context" if cls.spec.needs_weights else "offline_context")
    ref = clean_images["astronaut"][:189, :171]  # odd sizes: exercises padding too
    degraded = (
        add_gaussian_noise(ref, 25, np.random.default_rng(0)) if kind == "noise" else jpeg_compress(ref, 20)
    )
    small = dataclasses.replace(context, tile_size=96, tile_overlap=16)
    assert max(ref.shape[:2]) > small.tile_size
    args = cls.Args(image_id=IMAGE_ID)
    whole, tiled = cls(context)(degraded, args), cls(small)(degraded, args)
    assert tiled.shape == whole.shape == ref.shape
    assert abs(psnr(tiled, ref) - psnr(whole, ref)) < 0.3
    assert psnr(tiled, ref) > psnr(degraded, ref)


# --- estimators -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_estimate_sigma(clean_images, sigma):
    # measured: within 1.6 of σ on every crop (blocks near black/white are left out)
    estimates = [255 * estimate_sigma(x) for x in noisy_set(clean_images, sigma).values()]
    assert all(abs(e - sigma) <= 3.0 for e in estimates), estimates


@pytest.mark.parametrize("quality", [30, 50])
def test_estimate_sigma_sees_noise_through_jpeg(clean_images, quality):
    # JPEG wipes the finest-scale noise (the plain estimate reads ~3); measured 24-33 here
    estimates = [255 * estimate_sigma(jpeg_compress(x, quality)) for x in noisy_set(clean_images, 25).values()]
    assert all(18 <= e <= 38 for e in estimates), estimates


def test_ffdnet_estimated_sigma_on_noisy_jpeg(tool_context, clean_images):
    # noise, then JPEG q30: measured gain 4.7 dB with the estimated sigma (0.5 dB if told 3)
    degraded = {n: jpeg_compress(x, 30) for n, x in noisy_set(clean_images, 25).items()}
    gain = mean_gain(DenoiseFFDNet(tool_context), DenoiseFFDNet.Args(image_id=IMAGE_ID), degraded, clean_images)
    assert gain >= 2.8, f"mean gain {gain:.2f} dB"


def test_estimate_sigma_low_on_clean(clean_images):
    assert all(255 * estimate_sigma(x) < 6 for x in clean_images.values())


@pytest.mark.parametrize("quality", [10, 20, 30, 50])
def test_estimate_jpeg_quality(clean_images, quality):
    for x in jpeg_set(clean_images, quality).values():
        est = estimate_jpeg_quality(x)
        assert est is not None and abs(est - quality) <= 2
        shifted = estimate_jpeg_quality(x[3:, 5:])  # block grid no longer at (0, 0)
        assert shifted is not None and abs(shifted - quality) <= 2


def test_estimate_jpeg_quality_none_without_jpeg(clean_images):
    assert all(estimate_jpeg_quality(x) is None for x in clean_images.values())


@pytest.mark.parametrize("quality", [5, 30, 75, 96])
def test_saved_quality_reads_the_files_own_table(clean_images, tmp_path, quality):
    from PIL import Image

    x = next(iter(clean_images.values()))
    path = tmp_path / "photo.jpg"
    Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(path, quality=quality)
    assert saved_quality(path) == quality
    Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(tmp_path / "photo.png")
    assert saved_quality(tmp_path / "photo.png") is None and saved_quality(tmp_path / "missing.jpg") is None


# --- availability and argument checks -----------------------------------------------------------
@pytest.mark.parametrize("cls", [DenoiseFFDNet, DenoiseDnCNN, JpegDnCNN3])
def test_weight_tools_unavailable_offline(offline_context, cls):
    with pytest.raises(ToolUnavailable):
        cls(offline_context).check_available()


@pytest.mark.parametrize("cls", [DenoiseOIDN, DenoiseNLMeans, JpegDeblock])
def test_weight_free_tools_available_offline(offline_context, cls):
    cls(offline_context).check_available()


def test_args_are_validated():
    with pytest.raises(ValidationError):
        DenoiseFFDNet.Args(image_id=IMAGE_ID, sigma=200)
    with pytest.raises(ValidationError):
        JpegDeblock.Args(image_id=IMAGE_ID, quality=0)
    with pytest.raises(ValidationError):
        DenoiseNLMeans.Args(image_id=IMAGE_ID, sigma=10, extra=1)
