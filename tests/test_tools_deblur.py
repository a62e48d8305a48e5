"""Deblurring tools and our colour JPEG model, on their own MiO degradation.

Each image of the ``clean_images`` fixture is degraded with
``synthesis.degrade(img, (task,), seed=i)``. Every tool must recover at least half
of the mean PSNR gain measured when it was written (and more than 0 dB), and each
of our learned models must beat its classical fallback on those crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import restoreagent.tools.deblur  # noqa: F401  (registration)
import restoreagent.tools.jpeg  # noqa: F401
from restoreagent.tools.base import ToolContext, ToolUnavailable
from restoreagent.tools.deblur import estimate_defocus_radius, estimate_motion_angle
from restoreagent.tools.registry import default_registry
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import apply, degrade
from restoreagent.tools.weights import WeightsResolver

#: Mean PSNR gain (dB) over the four crops, measured on a 2-core CPU when the tools were written.
MEASURED_GAIN = {
    "deblur_motion_wiener": 1.09,
    "deblur_defocus_wiener": 4.82,
    "jpeg_deblock": 0.80,
    "deblur_motion_ours": 1.46,
    "deblur_defocus_ours": 6.87,
    "jpeg_ours": 1.08,
}
CLASSICAL = {"deblur_motion_ours": "deblur_motion_wiener", "deblur_defocus_ours": "deblur_defocus_wiener",
             "jpeg_ours": "jpeg_deblock"}
LEARNED = tuple(CLASSICAL)


def _tool(name: str, context: ToolContext):
    tool = default_registry[name](context)
    try:
        tool.check_available()
    except ToolUnavailable as exc:  # our checkpoints ship in the repository; this is a broken install
        pytest.fail(f"{name} unavailable: {exc}")
    return tool


_cache: dict[str, float] = {}


def _mean_gain(name: str, context: ToolContext, clean_images: dict[str, np.ndarray]) -> float:
    if name not in _cache:
        tool = _tool(name, context)
        gains = []
        for i, clean in enumerate(clean_images.values()):
            degraded, _ = degrade(clean, (tool.spec.task,), seed=i)
            out = tool(degraded, tool.Args(image_id="x"))
            gains.append(psnr(out, clean) - psnr(degraded, clean))
        _cache[name] = float(np.mean(gains))
    return _cache[name]


@pytest.mark.parametrize("name", list(MEASURED_GAIN))
def test_tool_improves_its_degradation(name: str, offline_context, clean_images) -> None:
    gain = _mean_gain(name, offline_context, clean_images)
    measured = MEASURED_GAIN[name]
    assert gain > 0
    if measured is not None:
        assert gain >= 0.5 * measured, f"{name}: mean gain {gain:.2f} dB, measured {measured:.2f} dB"


@pytest.mark.parametrize("name", LEARNED)
def test_ours_beats_classical(name: str, offline_context, clean_images) -> None:
    ours = _mean_gain(name, offline_context, clean_images)
    classical = _mean_gain(CLASSICAL[name], offline_context, clean_images)
    assert ours > classical, f"{name} {ours:.2f} dB vs {CLASSICAL[name]} {classical:.2f} dB"


@pytest.mark.parametrize("name", LEARNED)
def test_learned_specs(name: str) -> None:
    spec = default_registry[name].spec
    assert spec.weights == () and spec.learned and spec.commercial and spec.license == "MIT"


def test_missing_checkpoint_is_unavailable(tmp_path: Path) -> None:
    ctx = ToolContext(
        weights=WeightsResolver(weights_dir=tmp_path, cache_dir=tmp_path),
        extra={"checkpoints": {"deblur_motion_ours": str(tmp_path / "nope.pt")}},
    )
    with pytest.raises(ToolUnavailable, match="nope.pt"):
        default_registry["deblur_motion_ours"](ctx).check_available()
    status = {s.name: s for s in default_registry.status(ctx)}
    assert not status["deblur_motion_ours"].available and "\n" not in status["deblur_motion_ours"].reason


def test_tiling_matches_whole_image(tmp_path: Path, clean_images) -> None:
    clean = clean_images["chelsea"]
    degraded, _ = degrade(clean, ("defocus_blur",), seed=1)
    ctxs = [ToolContext(weights=WeightsResolver(weights_dir=tmp_path, cache_dir=tmp_path), tile_size=t, tile_overlap=16)
            for t in (512, 80)]
    whole, tiles = (default_registry["deblur_defocus_ours"](c) for c in ctxs)
    a = whole(degraded, whole.Args(image_id="x"))
    b = tiles(degraded, tiles.Args(image_id="x"))
    assert a.shape == b.shape == clean.shape
    assert psnr(b, a) > 35.0  # seams are blended away
    assert abs(psnr(b, clean) - psnr(a, clean)) < 0.3


def test_estimators_recover_mio_parameters(clean_images) -> None:
    clean = clean_images["astronaut"]
    for radius in (3, 4, 6):
        blurred = apply("defocus_blur", clean, {"radius": radius}, np.random.default_rng(0))
        assert estimate_defocus_radius(blurred) == pytest.approx(radius, abs=0.5)
    # The angle estimate is biased by the scene's own anisotropy (up to ~15-35° on some crops),
    # so it is checked on a crop without a dominant direction.
    for angle in (20.0, 75.0, 130.0):
        blurred = apply("motion_blur", clean_images["chelsea"], {"radius": 15, "sigma": 5, "angle": angle}, None)
        diff = abs(estimate_motion_angle(blurred) - angle) % 180
        assert min(diff, 180 - diff) < 12
