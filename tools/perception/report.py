"""What every assessor returns: an :class:`Assessment`, and how one is put together.

``make_report`` turns severities into the report (clipped, the ``present`` list, ``quality`` = 1 − RMS
severity); the learned assessor (:mod:`.assess`) and the rule-based one (:mod:`.rules`) both use it.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from restoreagent.tools.base import DEGRADATIONS

ASSESSOR = "assessornet-v1"

RULE_ASSESSOR = "heuristic-v1"


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


def ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def make_report(severities: dict[str, float], measures: dict[str, float], assessor: str) -> Assessment:
    severities = {k: round(float(np.clip(severities.get(k, 0.0), 0.0, 1.0)), 4) for k in DEGRADATIONS}
    present = sorted((k for k, v in severities.items() if v >= PRESENT), key=lambda k: -severities[k])
    rms = float(np.sqrt(np.mean(np.square(list(severities.values())))))
    return Assessment(degradations=severities, present=present, quality=round(1.0 - rms, 4), measures=measures,
                      assessor=assessor)


def as_rgb(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, dtype=np.float32)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(np.clip(x[..., :3], 0.0, 1.0))
