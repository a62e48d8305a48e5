"""The hand-written signal rules of perception, and the rule-based assessor (``heuristic-v1``).

Fast measures with a documented threshold each: 8×8 blockiness, fine detail per direction (blur in a
small image), the exposure reading of low light and the network's veto of it, and the pixel-count prior
of low resolution. :func:`rule_based_assess` is the fallback when the learned checkpoint is missing.
"""

from __future__ import annotations

import math

import numpy as np

from restoreagent.tools.perception.noise_sigma import estimate_sigma
from restoreagent.tools.perception.report import (
    PRESENT,
    RULE_ASSESSOR,
    Assessment,
    as_rgb,
    luminance,
    make_report,
    ramp,
)

#: Short side (px) at and above which a photo is not low resolution by its pixel count.
FULL_RESOLUTION_SIDE = 512

#: Exposure severity from which a photo is underexposed whatever the network says.
SURELY_DARK = 0.5

#: On a noisy input the network's low-light reading still vetoes the exposure below these
#: (:func:`trusts_network_low_light`), fitted on train-split cases by
#: ``python -m restoreagent.tools.research.training.assessor_rules low-light-veto``.
NOISY_VETO = 0.14

NOISY_JPEG_VETO = 0.08


BLURS = ("defocus_blur", "motion_blur")

#: The small-image blur reading (:func:`small_image_blur`), fitted on small train-split cases by
#: ``python -m restoreagent.tools.research.training.assessor_rules detail``: blurred every way when even the sharpest
#: direction's detail is below DETAIL_DEFOCUS; along a line when the blurriest direction's is below
#: DETAIL_MOTION and under DETAIL_ANISOTROPY times the sharpest's.
DETAIL_DEFOCUS = 0.90

DETAIL_MOTION = 0.64


DETAIL_ANISOTROPY = 0.67

#: Mean luminance step (a quarter of a grey level) below which an image is flat for that reading.
FLAT = 0.25 / 255

#: Severity per unit of detail below the threshold (fitted: the median blurred case reads its median target).
DETAIL_SLOPE = 2.0


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


def directional_detail(rgb: np.ndarray) -> tuple[float, float]:
    """Fine detail along the least and the most detailed of four directions (0°, 45°, 90°, 135°).

    Per direction, mean |second difference| / mean |first difference| of the luminance: high where
    the image changes from pixel to pixel (sharp, noisy), low where it varies smoothly (blurred).
    A ratio, so it does not depend on contrast or exposure.
    """
    y = luminance(rgb)
    h, w = y.shape
    if min(h, w) < 3:
        return 1.0, 1.0  # no second difference to take: nothing to read
    c = y[1:-1, 1:-1]
    readings = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        fwd = y[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        back = y[1 - dy : h - 1 - dy, 1 - dx : w - 1 - dx]
        first = float(np.abs(fwd - back).mean())
        if first < FLAT:
            return 1.0, 1.0  # a flat image has no detail to lose: nothing to read
        readings.append(float(np.abs(fwd - 2 * c + back).mean()) / first)
    return min(readings), max(readings)


def small_image_blur(detail_min: float, detail_max: float) -> tuple[float, float]:
    """(defocus, motion) severities of a small image from :func:`directional_detail`.

    A blur applied before a ×1/4 downscale is under a pixel wide afterwards, too faint for the
    network's 96-px crops (defocus recall 0.30 on held-out MiO defocus + low resolution), but it
    still removes the finest detail, evenly (defocus) or along one direction (motion).
    """
    def severity(below: float) -> float:
        return min(1.0, PRESENT + DETAIL_SLOPE * below) if below > 0 else 0.0

    if detail_min < DETAIL_ANISOTROPY * detail_max:  # along a line
        return 0.0, severity(DETAIL_MOTION - detail_min)
    return severity(DETAIL_DEFOCUS - detail_max), 0.0


def add_small_image_blur(severities: dict[str, float], rgb: np.ndarray, measures: dict[str, float]) -> None:
    """Raise the blur readings of a small image to :func:`small_image_blur`'s where it reads more.

    Noise adds fine detail and JPEG removes it, so the reading means blur only without them. The
    network tells the blur types apart where it sees the blur at all, so the reading adds no type
    beside one the network found (fewer false alarms on the train split).
    """
    measures["detail_min"], measures["detail_max"] = (round(v, 4) for v in directional_detail(rgb))
    if max(severities.get("noise", 0.0), severities.get("jpeg", 0.0)) >= PRESENT:
        return
    network = {k: severities.get(k, 0.0) for k in BLURS}
    for name, other, reading in zip(BLURS, reversed(BLURS), small_image_blur(measures["detail_min"], measures["detail_max"])):
        if network[other] < PRESENT:
            severities[name] = max(severities.get(name, 0.0), reading)


def rule_measures(rgb: np.ndarray) -> dict[str, float]:
    sigma = estimate_sigma(rgb) * 255.0
    return {"noise_sigma_255": round(sigma, 3), "blockiness": round(blockiness(rgb), 4),
            "mean_luminance": round(float(luminance(rgb).mean()), 4)}


def rule_based_assess(rgb: np.ndarray, note: str = "") -> Assessment:
    """The rule-based assessor (``heuristic-v1``): noise, JPEG and low light only."""
    rgb = as_rgb(rgb)
    m = rule_measures(rgb)
    severities = {
        "noise": ramp(m["noise_sigma_255"], 6.0, 46.0),
        "jpeg": ramp(m["blockiness"], 1.08, 2.0),
        "low_light": lowlight_from_luminance(m["mean_luminance"]),
    }
    return make_report(severities, m, RULE_ASSESSOR + (f" ({note})" if note else ""))


def lowlight_from_luminance(mean_lum: float) -> float:
    """Low-light severity from the mean luminance: 0.42 → 0, 0.12 → 1 (0.36 → 0.2)."""
    return ramp(-mean_lum, -0.42, -0.12)


def apply_low_light_rule(report: Assessment, trust_network: bool) -> Assessment:
    """Set the low-light severity from the exposure and, where trusted, the network's veto.

    ``trust_network``: let the network's reading lower a moderate exposure reading
    (< :data:`SURELY_DARK`); decide it on the photo as it came in (:func:`trusts_network_low_light`).
    A report without both readings (the rule-based or a custom assessor) is returned as is.
    """
    m = report.measures
    if "low_light_learned" not in m or "mean_luminance" not in m:
        return report
    exposure = lowlight_from_luminance(m["mean_luminance"])
    severity = min(exposure, m["low_light_learned"]) if trust_network and exposure < SURELY_DARK else exposure
    measures = {**m, "low_light_exposure": round(exposure, 4), "low_light_network_trusted": float(trust_network)}
    return make_report({**report.degradations, "low_light": severity}, measures, report.assessor)


def trusts_network_low_light(report: Assessment, noisy_veto: float = NOISY_VETO,
                              noisy_jpeg_veto: float = NOISY_JPEG_VETO) -> bool:
    """Whether the network's low-light reading may veto the exposure, judged on an input photo.

    Yes without noise. Under noise, which masks darkness to the network, only where it reads the photo
    as clearly not dark: below ``noisy_veto``, or below ``noisy_jpeg_veto`` where JPEG masks it too.
    """
    d = report.degradations
    if d.get("noise", 0.0) < PRESENT:
        return True
    learned = report.measures.get("low_light_learned")
    if learned is None:
        return False
    return learned < (noisy_jpeg_veto if d.get("jpeg", 0.0) >= PRESENT else noisy_veto)


def size_prior(h: int, w: int, full_resolution_side: int = FULL_RESOLUTION_SIDE) -> float:
    """Low-resolution prior from pixel count: clip(log2(R / short side) / 3, 0, 1), R = ``full_resolution_side``
    (the severity scale of an image upsampled by R / short side: ×2 → 0.33, ×4 → 0.67)."""
    return float(np.clip(math.log2(full_resolution_side / max(1, min(h, w))) / 3.0, 0.0, 1.0))
