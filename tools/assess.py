"""Degradation assessment: which degradations an image has, and how strong.

This is the rule-based assessor (``heuristic-v1``): fast signal measures,
each mapped to a severity in [0, 1] and calibrated on Kodak24/CBSD68 crops
synthesized with tools.synthesis:

* noise — the blind σ estimate the denoisers use (:func:`tools.denoise.estimate_sigma`),
  so the assessor and the tools agree on the noise level;
* jpeg — 8×8 blockiness: the strongest column/row phase of the gradient
  against the median phase (≈1.0–1.1 on clean images, 1.3–3.5 after JPEG q10–30);
* low_light — mean luminance below that of ordinary exposures.

The observe node re-runs it after every step: the residual severities and the
``quality`` score (1 − RMS severity) decide accept or roll back.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from .denoise import estimate_sigma

ASSESSOR = "heuristic-v1"
#: Severity at or above which a degradation counts as present.
PRESENT = 0.2

class Assessment(BaseModel):
    """The assessor's report on one image."""

    degradations: dict[str, float] = Field(description="Severity in [0, 1] per degradation.")
    present: list[str] = Field(description="Degradations at or above the presence threshold, worst first.")
    quality: float = Field(description="1 − RMS severity: 1 is clean, 0 is as bad as it gets.")
    measures: dict[str, float] = Field(description="The raw signal measures behind the severities.")
    assessor: str = ASSESSOR


def luminance(rgb: np.ndarray) -> np.ndarray:
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)


def blockiness(rgb: np.ndarray) -> float:
    """Ratio of the strongest 8-pixel gradient phase to the median phase (≥ 1)."""
    y = luminance(rgb) * 255.0

    def ratio(d: np.ndarray) -> float:
        if d.size < 16:
            return 1.0
        phases = np.array([d[p::8].mean() for p in range(8)])
        return float(phases.max() / (np.median(phases) + 1e-6))

    dh = np.abs(np.diff(y, axis=1)).mean(axis=0)
    dv = np.abs(np.diff(y, axis=0)).mean(axis=1)
    return 0.5 * (ratio(dh) + ratio(dv))


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def assess(rgb: np.ndarray) -> Assessment:
    """Assess an H×W×3 float32 image in [0, 1]."""
    sigma = estimate_sigma(rgb) * 255.0
    block = blockiness(rgb)
    mean_lum = float(luminance(rgb).mean())
    severities = {
        "noise": _ramp(sigma, 6.0, 46.0),
        "jpeg": _ramp(block, 1.08, 2.0),
        "low_light": _ramp(-mean_lum, -0.42, -0.12),
    }
    severities = {k: round(v, 4) for k, v in severities.items()}
    present = sorted((k for k, v in severities.items() if v >= PRESENT), key=lambda k: -severities[k])
    rms = float(np.sqrt(np.mean(np.square(list(severities.values())))))
    return Assessment(
        degradations=severities,
        present=present,
        quality=round(1.0 - rms, 4),
        measures={"noise_sigma_255": round(sigma, 3), "blockiness": round(block, 4), "mean_luminance": round(mean_lum, 4)},
    )
