"""Haze and rain tools on real images and real weights (no mocks).

Each tool must raise the mean PSNR of the four ``clean_images`` crops (their
central 128×128, to keep PReNet fast on one thread), degraded with the MiO
protocol (:func:`restoreagent.tools.util.synthesis.degrade`, haze or rain alone, two
seeds each), by at least half of the gain measured on CPU (``MEASURED_GAIN``), so
a broken colour order, scale, input convention or network layout fails while
BLAS differences do not.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from restoreagent.tools.base import RestorationTool, ToolContext, ToolUnavailable
from restoreagent.tools.dehaze import DehazeAODNet, DehazeDCP, DehazeGCANet
from restoreagent.tools.derain import (
    DEFAULT_PRENET_VARIANT,
    PRENET_VARIANTS,
    DerainClassical,
    DerainGCANet,
    DerainPReNet,
    estimate_rain_angle,
)
from restoreagent.tools.registry import default_registry
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import degrade
from restoreagent.tools.weights import WeightsResolver, load_manifest

IMAGE_ID = "img-0000000000000000"
SEEDS = (0, 1)

# Mean PSNR gain (dB) over the 4 crops × 2 seeds, measured on CPU with one thread.
# Inputs: haze 11.36 dB, rain 25.67 dB.
MEASURED_GAIN: dict[str, float] = {
    "dehaze_aodnet": 5.20,  # -> 16.56
    "dehaze_gcanet": 5.60,  # -> 16.95
    "dehaze_dcp": 8.96,  # -> 20.31
    "derain_prenet": 9.09,  # -> 34.75 (default variant rain100l_prn)
    "derain_gcanet": 0.40,  # -> 26.07 (rain-layer output; the network's own output loses ~1.4 dB)
    "derain_classical": 4.62,  # -> 30.29
}

TOOLS: list[tuple[type[RestorationTool], str]] = [
    (DehazeAODNet, "tool_context"),
    (DehazeGCANet, "tool_context"),
    (DehazeDCP, "offline_context"),
    (DerainPReNet, "tool_context"),
    (DerainGCANet, "tool_context"),
    (DerainClassical, "offline_context"),
]


@pytest.fixture(scope="module")
def mio_sets(clean_images) -> dict[str, list[tuple[np.ndarray, np.ndarray, dict]]]:
    """Per task: (clean, degraded, parameters) for every crop and seed."""
    out: dict[str, list] = {"haze": [], "rain": []}
    for task in out:
        for i, full in enumerate(clean_images.values()):
            clean = np.ascontiguousarray(full[32:160, 32:160])
            for seed in SEEDS:
                degraded, params = degrade(clean, (task,), seed=100 * i + seed)
                out[task].append((clean, degraded, params[task]))
    return out


@pytest.mark.parametrize("cls,context_fixture", TOOLS, ids=[c.spec.name for c, _ in TOOLS])
def test_raises_psnr_on_its_mio_degradation(cls, context_fixture, mio_sets, request):
    tool = cls(request.getfixturevalue(context_fixture))
    args = cls.Args(image_id=IMAGE_ID)
    gains = []
    for clean, degraded, _ in mio_sets[cls.spec.task]:
        out = tool(degraded, args)
        assert out.shape == clean.shape and out.dtype == np.float32
        gains.append(psnr(out, clean) - psnr(degraded, clean))
    gain = float(np.mean(gains))
    assert gain > 0
    assert gain >= 0.5 * MEASURED_GAIN[cls.spec.name], f"mean gain {gain:.2f} dB"


def test_licences_and_commercial_flags():
    expected = {
        "dehaze_aodnet": ("MIT", True),
        "dehaze_gcanet": ("research-only", False),
        "dehaze_dcp": ("MIT", True),
        "derain_prenet": ("unspecified", False),
        "derain_gcanet": ("research-only", False),
        "derain_classical": ("MIT", True),
    }
    manifest = load_manifest()
    for cls, _ in TOOLS:
        assert cls.spec.name in default_registry
        assert (cls.spec.license, cls.spec.commercial) == expected[cls.spec.name]
        assert cls.spec.cost > 0 and cls.spec.description
        for wid in cls.spec.weights:  # a weight file's licence never allows more than the tool says
            assert wid in manifest
            assert cls.spec.commercial <= manifest[wid].commercial
    # A permissive-only agent still covers both tasks.
    for task in ("haze", "rain"):
        assert any(c.spec.commercial and c.spec.task == task for c, _ in TOOLS)


def test_weight_free_tools_run_offline(offline_context):
    for cls in (DehazeDCP, DerainClassical):
        cls(offline_context).check_available()
    for cls in (DehazeAODNet, DehazeGCANet, DerainPReNet, DerainGCANet):
        with pytest.raises(ToolUnavailable, match="not found"):
            cls(offline_context).check_available()


def test_prenet_variants(weights_dir, tmp_path, mio_sets):
    assert DEFAULT_PRENET_VARIANT in PRENET_VARIANTS
    assert set(DerainPReNet.spec.weights) == {wid for wid, _ in PRENET_VARIANTS.values()}
    # Only the default variant's file present: available, and another variant fails cleanly.
    manifest = load_manifest()
    entry = manifest[PRENET_VARIANTS[DEFAULT_PRENET_VARIANT][0]]
    (tmp_path / entry.file).parent.mkdir(parents=True)
    os.symlink(weights_dir / entry.file, tmp_path / entry.file)
    context = ToolContext(weights=WeightsResolver(weights_dir=tmp_path, cache_dir=tmp_path / "cache"))
    tool = DerainPReNet(context)
    tool.check_available()
    _, degraded, _ = mio_sets["rain"][0]
    small = degraded[:64, :64]
    assert tool(small, DerainPReNet.Args(image_id=IMAGE_ID)).shape == small.shape
    with pytest.raises(ToolUnavailable):
        tool(small, DerainPReNet.Args(image_id=IMAGE_ID, variant="rain100h"))


def test_real_prenet_layout_is_sane(tool_context, mio_sets):
    # The "real" files use a different stage layout; read as standard PReNets they lose ~6 dB.
    tool = DerainPReNet(tool_context)
    clean, degraded, _ = mio_sets["rain"][0]
    out = tool(degraded, DerainPReNet.Args(image_id=IMAGE_ID, variant="real1"))
    assert psnr(out, clean) > psnr(degraded, clean) - 1.0


def test_tiled_matches_untiled(tool_context, clean_images):
    # 192×192 input, 96 px tiles: 3×3 tiles with overlap, against one pass.
    degraded, _ = degrade(clean_images["coffee"], ("rain",), seed=3)
    args = DerainPReNet.Args(image_id=IMAGE_ID)
    whole = DerainPReNet(tool_context)(degraded, args)
    small_tiles = dataclasses.replace(tool_context, tile_size=96, tile_overlap=24)
    tiled = DerainPReNet(small_tiles)(degraded, args)
    assert tiled.shape == whole.shape == degraded.shape
    assert psnr(tiled, whole) > 40.0  # measured 64.8 dB


def test_rain_angle_estimate(mio_sets):
    errors = []
    for _, degraded, params in mio_sets["rain"]:
        angle, confidence = estimate_rain_angle(degraded)
        errors.append(abs(angle - params["angle"]))
        assert confidence > 1.0
    assert float(np.median(errors)) <= 3.0, errors


def test_classical_tools_take_their_parameters(offline_context, mio_sets):
    clean, degraded, params = mio_sets["rain"][0]
    tool = DerainClassical(offline_context)
    told = tool(degraded, DerainClassical.Args(image_id=IMAGE_ID, angle=params["angle"]))
    assert psnr(told, clean) > psnr(degraded, clean)
    untouched = tool(degraded, DerainClassical.Args(image_id=IMAGE_ID, strength=0))
    np.testing.assert_allclose(untouched, degraded, atol=1e-6)
    clean, hazy, _ = mio_sets["haze"][0]
    dcp = DehazeDCP(offline_context)
    mild = dcp(hazy, DehazeDCP.Args(image_id=IMAGE_ID, omega=0.6))
    full = dcp(hazy, DehazeDCP.Args(image_id=IMAGE_ID))
    assert np.mean(np.abs(mild - hazy)) < np.mean(np.abs(full - hazy))
