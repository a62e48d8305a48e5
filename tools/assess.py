"""Degradation assessment: which degradations an image has, and how strong.

Two assessors behind one interface, :func:`assess` (image → :class:`Assessment`):

**Learned (default, ``assessornet-v1``)** — our compact CNN
(:class:`tools.nets.assessor.AssessorNet`, trained by ``tools/training/assessor.py``,
weights in ``checkpoints/assessor.pt``) gives, for each of the eight degradations,
a presence probability and a severity in [0, 1]:

* the image (H×W×3 float in [0, 1]) is bicubic-upsampled if its short side is
  under 96 px (so a tiny image shows its interpolation traces, as in training),
  then up to 8 crops of 96×96 on an even grid are scored and averaged; haze, a property
  of the whole scene, is also read on the photo scaled to a short side of
  :data:`SCENE_SIDE` (256 px) and the larger reading counts;
* each severity is mapped through its calibrated threshold τ (validation F1
  maximum on held-out train images, see ``checkpoints/assessor.json``) by the
  piecewise-linear map τ ↦ :data:`PRESENT` (0.2), 0 ↦ 0, 1 ↦ 1, so that
  ``severity ≥ PRESENT`` means "present" for every degradation; small images
  (short side ≤ :data:`SMALL_SIDE`) have their own thresholds, calibrated on the small
  calibration images: a blur or rain applied before a ×1/4 downscale is 4× smaller
  in the pixels the network sees;
* low light combines two readings (:func:`apply_low_light_rule`): the exposure measure
  :func:`lowlight_from_luminance` (mean luminance 0.42 → 0, 0.12 → 1, as in the
  rule-based assessor) and the network's own low-light output
  (``measures["low_light_learned"]``). The exposure alone calls every naturally dark
  photo (a night street, a dark-haired portrait) underexposed; the network tells those
  apart but under-reads darkness under noise (the noise masks it: 0.22 → 0.54 on the
  test mixture once denoised). So the network may veto a moderate exposure reading
  (severity < :data:`SURELY_DARK`) when the photo was noise-free, and under noise only
  where it reads the photo as clearly not dark (:func:`trusts_network_low_light`); the graph
  makes that choice once, on the input photo, and keeps it for the run (a dark noisy photo
  stays dark after denoising);
* low resolution: the CNN judges *content* (missing detail, interpolation
  traces of an upsampled image); pixel count is a documented size prior relative
  to the short side a photo should have, ``full_resolution_side`` R (default 512;
  the benchmark passes its crop size): ``clip(log2(R / short side) / 3, 0, 1)``, the
  severity scale of an upsampled image (R → 0, 0.66·R → 0.2, so below 338 px by default;
  R/2 → 0.33, R/4 → 0.67, ≤ R/8 → 1), and the
  reported severity is the maximum of the two. Small images (short side ≤ 179 px,
  as calibrated) use the thresholds calibrated on small images;
* blur in a small image is also read from its fine detail per direction
  (:func:`add_small_image_blur`): a blur applied before a ×1/4 downscale is under a pixel
  wide afterwards, too faint for the network, but it still evens out the finest detail,
  every way (defocus) or along one direction (motion).

**Rule-based fallback (``heuristic-v1``)** — used when the checkpoint is missing
or unreadable (``assessor`` then says so): fast signal measures mapped to a
severity, calibrated on Kodak24/CBSD68 crops synthesized with tools.synthesis:

* noise — the blind σ estimate the denoisers use (:func:`tools.denoise.estimate_sigma`);
* jpeg — 8×8 blockiness: the strongest column/row phase of the gradient
  against the median phase (≈1.0–1.1 on clean images, 1.3–3.5 after JPEG q10–30);
* low_light — mean luminance below that of ordinary exposures;
* the other five degradations read 0 (it cannot see them).

Both report ``quality`` = 1 − RMS severity over the eight degradations, and raw
signal ``measures``: the rule-based ones (σ, blockiness, mean luminance; with
the learned assessor σ and blockiness are read on the central ≤ 256×256 region
to stay cheap), the learned presence probabilities ``p_<name>``, and NIQE
(:func:`niqe`, our implementation) when its pristine parameters
(``niqe_pris_params``) resolve through :class:`tools.weights.WeightsResolver`
(``RESTOREAGENT_WEIGHTS_DIR``, or the ``weights_dir`` argument); without them
NIQE is omitted.

The observe node re-runs the assessor after every step: the residual
severities and ``quality`` decide accept or roll back.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, Field

from .base import DEGRADATIONS
from .denoise import estimate_sigma
from .noise_level import load_noise_level

ASSESSOR = "assessornet-v1"
RULE_ASSESSOR = "heuristic-v1"
#: Severity at or above which a degradation counts as present.
PRESENT = 0.2
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "assessor.pt"
MAX_CROPS = 8
#: Short side (px) at and above which a photo is not low resolution by its pixel count.
FULL_RESOLUTION_SIDE = 512
#: Short side (px) up to which the small-image thresholds apply (how they were calibrated).
SMALL_SIDE = 179
#: Exposure severity from which a photo is underexposed whatever the network says.
SURELY_DARK = 0.5
#: On a noisy input the network's low-light reading still vetoes the exposure below these
#: (:func:`trusts_network_low_light`), fitted on train-split cases by
#: ``python -m restoreagent.tools.training.low_light_veto``.
NOISY_VETO = 0.14
NOISY_JPEG_VETO = 0.08
#: Short side (px) of the second, scene-scale reading of a larger photo: the crop size of the
#: planner's training cases and of the benchmark.
SCENE_SIDE = 256
#: Degradations of the whole scene, read at both scales (the larger reading counts).
SCENE_SCALE = ("haze",)
BLURS = ("defocus_blur", "motion_blur")
#: The small-image blur reading (:func:`small_image_blur`), fitted on small train-split cases by
#: ``python -m restoreagent.tools.training.detail_rule``: blurred every way when even the sharpest
#: direction's detail is below DETAIL_DEFOCUS; along a line when the blurriest direction's is below
#: DETAIL_MOTION and under DETAIL_ANISOTROPY times the sharpest's.
DETAIL_DEFOCUS = 0.90
DETAIL_MOTION = 0.64
DETAIL_ANISOTROPY = 0.67
#: Mean luminance step (a quarter of a grey level) below which an image is flat for that reading.
FLAT = 0.25 / 255
#: Severity per unit of detail below the threshold (fitted: the median blurred case reads its median target).
DETAIL_SLOPE = 2.0


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


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _report(severities: dict[str, float], measures: dict[str, float], assessor: str) -> Assessment:
    severities = {k: round(float(np.clip(severities.get(k, 0.0), 0.0, 1.0)), 4) for k in DEGRADATIONS}
    present = sorted((k for k, v in severities.items() if v >= PRESENT), key=lambda k: -severities[k])
    rms = float(np.sqrt(np.mean(np.square(list(severities.values())))))
    return Assessment(degradations=severities, present=present, quality=round(1.0 - rms, 4), measures=measures,
                      assessor=assessor)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, dtype=np.float32)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(np.clip(x[..., :3], 0.0, 1.0))


# -- rule-based fallback --------------------------------------------------------------
def rule_measures(rgb: np.ndarray) -> dict[str, float]:
    sigma = estimate_sigma(rgb) * 255.0
    return {"noise_sigma_255": round(sigma, 3), "blockiness": round(blockiness(rgb), 4),
            "mean_luminance": round(float(luminance(rgb).mean()), 4)}


def rule_based_assess(rgb: np.ndarray, note: str = "") -> Assessment:
    """The rule-based assessor (``heuristic-v1``): noise, JPEG and low light only."""
    rgb = _as_rgb(rgb)
    m = rule_measures(rgb)
    severities = {
        "noise": _ramp(m["noise_sigma_255"], 6.0, 46.0),
        "jpeg": _ramp(m["blockiness"], 1.08, 2.0),
        "low_light": lowlight_from_luminance(m["mean_luminance"]),
    }
    return _report(severities, m, RULE_ASSESSOR + (f" ({note})" if note else ""))


def lowlight_from_luminance(mean_lum: float) -> float:
    """Low-light severity from the mean luminance: 0.42 → 0, 0.12 → 1 (0.36 → 0.2)."""
    return _ramp(-mean_lum, -0.42, -0.12)


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
    return _report({**report.degradations, "low_light": severity}, measures, report.assessor)


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


# -- learned ------------------------------------------------------------------------------
def size_prior(h: int, w: int, full_resolution_side: int = FULL_RESOLUTION_SIDE) -> float:
    """Low-resolution prior from pixel count: clip(log2(R / short side) / 3, 0, 1), R = ``full_resolution_side``
    (the severity scale of an image upsampled by R / short side: ×2 → 0.33, ×4 → 0.67)."""
    return float(np.clip(math.log2(full_resolution_side / max(1, min(h, w))) / 3.0, 0.0, 1.0))


def calibrate_severity(s: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Piecewise-linear: 0 → 0, τ → PRESENT, 1 → 1."""
    tau = np.clip(tau, 1e-3, 1 - 1e-3)
    low = PRESENT * s / tau
    high = PRESENT + (1 - PRESENT) * (s - tau) / (1 - tau)
    return np.clip(np.where(s < tau, low, high), 0.0, 1.0)


def crop_grid(h: int, w: int, crop: int, n: int = MAX_CROPS) -> list[tuple[int, int]]:
    """Top-left corners of up to ``n`` crops spread evenly over an H×W image (H, W ≥ crop)."""
    rows, cols = (2, 4) if w >= h else (4, 2)
    if n < 8:
        rows, cols = (1, n) if w >= h else (n, 1)
    ys = np.linspace(0, h - crop, rows).round().astype(int)
    xs = np.linspace(0, w - crop, cols).round().astype(int)
    return list(dict.fromkeys((int(y), int(x)) for y in ys for x in xs))


class LearnedAssessor:
    """AssessorNet with its calibration; call it on an RGB float image."""

    def __init__(self, checkpoint: Path) -> None:
        import torch

        from .nets.assessor import AssessorNet

        ckpt = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
        self.names = tuple(ckpt["degradations"])
        self.crop = int(ckpt["crop"])
        self.tau = np.array([ckpt["thresholds"][k] for k in self.names], np.float32)
        small = ckpt.get("thresholds_small", ckpt["thresholds"])
        self.tau_small = np.array([small[k] for k in self.names], np.float32)
        self.model = AssessorNet(n=len(self.names))
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
        self.model.eval()
        self.model.fuse_batchnorm()
        self.path = Path(checkpoint)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assessor")

    def _crops(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        s = min(h, w)
        if s < self.crop:
            f = self.crop / s
            rgb = np.clip(cv2.resize(rgb, (max(self.crop, round(w * f)), max(self.crop, round(h * f))),
                                     interpolation=cv2.INTER_CUBIC), 0, 1)
            h, w = rgb.shape[:2]
        c = self.crop
        return np.stack([rgb[y : y + c, x : x + c] for y, x in crop_grid(h, w, c)])

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (presence probabilities, severities) averaged over the crops.

        A photo larger than :data:`SCENE_SIDE` is also read scaled down to it, in the same
        batch, and the :data:`SCENE_SCALE` degradations take the larger of the two readings:
        a 96-px crop of a large photo sees too little of the scene to judge haze (held-out
        MiO mixtures at full size: haze recall 0.88 → 0.95, precision unchanged).
        """
        import torch

        h, w = rgb.shape[:2]
        crops = self._crops(rgb)
        n = len(crops)
        if min(h, w) > SCENE_SIDE:
            f = SCENE_SIDE / min(h, w)
            scene = cv2.resize(rgb, (max(SCENE_SIDE, round(w * f)), max(SCENE_SIDE, round(h * f))),
                               interpolation=cv2.INTER_AREA)
            crops = np.concatenate([crops, self._crops(scene)])
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
        with self._lock, torch.inference_mode():
            logits, sev = self.model(x)
        prob, sev = torch.sigmoid(logits).numpy(), sev.numpy()
        p, r = prob[:n].mean(0), sev[:n].mean(0)
        if len(crops) > n:
            for k in (self.names.index(name) for name in SCENE_SCALE if name in self.names):
                p[k], r[k] = max(p[k], prob[n:, k].mean()), max(r[k], sev[n:, k].mean())
        return p, r

    def __call__(self, rgb: np.ndarray, weights_dir: Path | None = None,
                 full_resolution_side: int = FULL_RESOLUTION_SIDE) -> Assessment:
        rgb = _as_rgb(rgb)
        # The network runs beside the signal measures (torch, OpenCV and NumPy release the GIL), on
        # one worker: on two cores a third busy thread only slows the others. NIQE queues behind the
        # network, and the calling thread takes it over if it is still waiting once the signal
        # measures are done (256²: 31 → 25 ms per assessment, paid again after every step).
        network = self._pool.submit(self.predict, rgb)
        params = niqe_params(weights_dir)
        quality = self._pool.submit(niqe, rgb, *params) if params is not None else None
        h, w = rgb.shape[:2]
        cy, cx = max(0, (h - 256) // 2), max(0, (w - 256) // 2)
        measures = rule_measures(rgb[cy : cy + 256, cx : cx + 256])
        measures["mean_luminance"] = round(float(luminance(rgb).mean()), 4)
        if quality is not None:
            try:
                measures["niqe"] = round(niqe(rgb, *params) if quality.cancel() else quality.result(), 3)
            except ValueError:  # too small for NIQE
                pass
        prob, raw = network.result()
        prior = size_prior(h, w, full_resolution_side)
        sev = calibrate_severity(raw, self.tau_small if min(h, w) <= SMALL_SIDE else self.tau)
        severities = dict(zip(self.names, map(float, sev)))
        learned_low_light = severities.get("low_light", 0.0)
        severities["low_resolution"] = max(severities.get("low_resolution", 0.0), prior)
        if min(h, w) <= SMALL_SIDE:
            add_small_image_blur(severities, rgb, measures)
        measures["low_resolution_size_prior"] = round(prior, 4)
        measures["low_light_learned"] = round(learned_low_light, 4)
        measures.update({f"p_{k}": round(float(p), 4) for k, p in zip(self.names, prob)})
        level = load_noise_level()
        if level is not None:  # how much FFDNet should gain here, and at which σ (the planner offers denoising from it)
            sigma, gain = level(rgb)
            measures["denoise_sigma_255"], measures["denoise_gain_db"] = round(sigma, 2), round(gain, 3)
        report = _report(severities, measures, ASSESSOR)
        return apply_low_light_rule(report, trusts_network_low_light(report))  # judged as an input photo


@lru_cache(maxsize=4)
def _load_learned(path: str, mtime_ns: int) -> LearnedAssessor:
    return LearnedAssessor(Path(path))


def checkpoint_path() -> Path:
    env = os.environ.get("RESTOREAGENT_ASSESSOR_CHECKPOINT")
    return Path(env) if env else DEFAULT_CHECKPOINT


def load_learned(checkpoint: Path | str | None = None) -> LearnedAssessor:
    """The learned assessor (cached); raises OSError/RuntimeError/KeyError if the checkpoint is unusable."""
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path()
    return _load_learned(str(path), path.stat().st_mtime_ns)


def assess(rgb: np.ndarray, checkpoint: Path | str | None = None, weights_dir: Path | str | None = None,
           full_resolution_side: int = FULL_RESOLUTION_SIDE) -> Assessment:
    """Assess an H×W×3 float32 image in [0, 1] (learned; rule-based if the checkpoint is unusable).

    ``checkpoint``: default ``RESTOREAGENT_ASSESSOR_CHECKPOINT`` or ``checkpoints/assessor.pt``.
    ``weights_dir``: where to find NIQE's parameters (default ``RESTOREAGENT_WEIGHTS_DIR``).
    ``full_resolution_side``: the short side a photo should have; smaller ones read as low resolution.

    The image is judged as an input photo, which decides whether the network may veto low light
    (:func:`trusts_network_low_light`); :func:`apply_low_light_rule` re-applies another choice, as the
    graph does after each step.
    """
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path()
    try:
        model = load_learned(path)
    except Exception as exc:  # missing or unreadable checkpoint: fall back, and say so
        reason = "checkpoint missing" if not path.is_file() else f"checkpoint unusable: {type(exc).__name__}"
        return rule_based_assess(rgb, note=f"fallback, {reason}: {path.name}")
    return model(rgb, Path(weights_dir) if weights_dir else None, full_resolution_side)


# -- NIQE (our implementation of Mittal et al. 2013, with published pristine parameters) --------
@lru_cache(maxsize=4)
def _niqe_params_cached(weights_dir: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        from .weights import WeightsResolver

        resolver = WeightsResolver(weights_dir=Path(weights_dir) if weights_dir else None)
        with np.load(resolver.resolve("niqe_pris_params")) as z:
            mu = np.asarray(z["mu_pris_param"], np.float64).ravel()
            cov = np.asarray(z["cov_pris_param"], np.float64)
        return mu, cov
    except Exception:
        return None


def niqe_params(weights_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """NIQE's pristine (mu, cov), or None when they cannot be resolved."""
    d = weights_dir or os.environ.get("RESTOREAGENT_WEIGHTS_DIR")
    return _niqe_params_cached(str(d) if d else None)


def _gauss_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g)
    return w / w.sum()


_GAMMAS = np.arange(0.2, 10.001, 0.001)
_R_GAM = (np.exp(2 * np.vectorize(math.lgamma)(2 / _GAMMAS))
          / (np.exp(np.vectorize(math.lgamma)(1 / _GAMMAS)) * np.exp(np.vectorize(math.lgamma)(3 / _GAMMAS))))


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalized Gaussian fits by moment matching, one per row of ``x`` (n × samples):
    (alpha, left β, right β), each of length n."""
    nl, nr = (x < 0).sum(axis=1), (x > 0).sum(axis=1)
    neg2, pos2 = (np.minimum(x, 0.0) ** 2).sum(axis=1), (np.maximum(x, 0.0) ** 2).sum(axis=1)
    ls = np.where(nl > 0, np.sqrt(neg2 / np.maximum(nl, 1)), 1e-6)
    rs = np.where(nr > 0, np.sqrt(pos2 / np.maximum(nr, 1)), 1e-6)
    gamma_hat = ls / np.maximum(rs, 1e-12)
    rhat = np.abs(x).mean(axis=1) ** 2 / np.maximum((neg2 + pos2) / x.shape[1], 1e-12)
    rhat_norm = rhat * (gamma_hat**3 + 1) * (gamma_hat + 1) / ((gamma_hat**2 + 1) ** 2)
    # the tabulated ratio nearest to rhat_norm (_R_GAM increases with gamma)
    hi = np.clip(np.searchsorted(_R_GAM, rhat_norm), 1, len(_R_GAM) - 1)
    alpha = _GAMMAS[np.where(np.abs(_R_GAM[hi - 1] - rhat_norm) <= np.abs(_R_GAM[hi] - rhat_norm), hi - 1, hi)]
    scale = np.sqrt(_gamma(1 / alpha) / _gamma(3 / alpha))
    return alpha, ls * scale, rs * scale


def _gamma(x: np.ndarray) -> np.ndarray:
    return np.array([math.gamma(v) for v in x])


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """The 18 NIQE features of each MSCN block (n × b × b) → n × 18."""
    flat = blocks.reshape(len(blocks), -1)
    alpha, bl, br = _aggd(flat)
    feats = [alpha, (bl + br) / 2]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(flat * np.roll(blocks, (dy, dx), axis=(1, 2)).reshape(len(blocks), -1))
        feats += [alpha, (br - bl) * _gamma(2 / alpha) / _gamma(1 / alpha), bl, br]
    return np.stack(feats, axis=1)


def _mscn(y: np.ndarray) -> np.ndarray:
    w = _gauss_window()
    mu = cv2.filter2D(y, -1, w, borderType=cv2.BORDER_REPLICATE)
    var = cv2.filter2D(y * y, -1, w, borderType=cv2.BORDER_REPLICATE) - mu * mu
    return (y - mu) / (np.sqrt(np.abs(var)) + 1.0)


def niqe(rgb: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, block: int = 96) -> float:
    """NIQE (lower is better) on the luminance (0–255) with 96×96 blocks at two scales.

    Our implementation of the published method: per block, AGGD fits of the MSCN
    coefficients and of their four pairwise products (18 features per
    scale, 36 in all); the image's multivariate Gaussian (mean, covariance of the
    block features) is compared with the pristine model:
    sqrt((μ₁ − μ₂)ᵀ ((Σ₁ + Σ₂)/2)⁺ (μ₁ − μ₂)). The second scale is a 2×2 area
    downscale (the reference uses MATLAB's antialiased bicubic ``imresize``), so
    values are close to, not identical with, the reference NIQE. Raises
    ValueError on images smaller than two blocks.
    """
    y = (luminance(_as_rgb(rgb)) * 255.0).astype(np.float64)
    h, w = y.shape
    nh, nw = h // block, w // block
    if nh * nw < 2:
        raise ValueError("image too small for NIQE")
    y = y[: nh * block, : nw * block]
    feats = []
    for scale in (1, 2):
        img = y if scale == 1 else cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
        m = _mscn(img)
        b = block // scale
        feats.append(_block_features(m.reshape(nh, b, nw, b).transpose(0, 2, 1, 3).reshape(nh * nw, b, b)))
    f = np.concatenate(feats, axis=1)
    f = f[~np.isnan(f).any(axis=1)]
    mu = f.mean(axis=0)
    cov = np.cov(f, rowvar=False)
    d = mu_pris - mu
    inv = np.linalg.pinv((cov_pris + cov) / 2)
    return float(np.sqrt(max(float(d @ inv @ d), 0.0)))
