"""The step verifier: did a tool's step make the photo *closer to the truth*?

The observe node used to keep a step when the assessor that proposed it read a lower severity
afterwards. On photos we never tuned on that accepted harmful steps: a gamma on a dim but correctly
exposed indoor shot reads "less low light" and loses 20 dB. The verifier is a separate, learned
critic: it looks at the image before and after the step and predicts the change of PSNR against
the (unknown) clean image. It was trained on tool outputs with ground truth
(``tools/research/training/verifier.py``, data in docs/VERIFIER.md), so it learns what a helpful step looks
like from fidelity, not from the assessor's own readings going down.

Features (:func:`step_features`) are cheap signal measures of both images and of what the step
removed or added (tone, contrast, clipping, gradient energy at two scales, the structure of the
removed residual, blind σ, blockiness), the assessor's readings of both images, the task, and the
photo's size. An ensemble of small MLPs maps them to ΔPSNR (clipped to ±10 dB); the decision uses
the members' mean minus ``risk`` × their spread, against a ``margin`` chosen on the calibration
split and stored in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.base import DEGRADATIONS
from restoreagent.tools.nets.mlp import load_ensemble
from restoreagent.tools.perception.noise_level import load_noise_level
from restoreagent.tools.perception.noise_sigma import estimate_sigma
from restoreagent.tools.perception.report import luminance
from restoreagent.tools.perception.rules import blockiness

DEFAULT_CHECKPOINT = checkpoint_file("verifier.pt")
#: ΔPSNR targets are clipped to this (dB): a clean input's PSNR is infinite.
CLIP_DB = 10.0
#: A photo's PSNR against itself, for clean inputs.
PSNR_CAP = 50.0
#: Longest side the features are read at (cost stays flat on large photos).
FEATURE_SIDE = 512


def _fit(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    return np.clip(cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


def _shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    f = FEATURE_SIDE / max(h, w)
    if f >= 1:
        return image
    return cv2.resize(image, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)


def _grad(y: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def _image_stats(rgb: np.ndarray) -> list[float]:
    y = luminance(rgb)
    p1, p10, p50, p90, p99 = np.percentile(y, (1, 10, 50, 90, 99))
    sat = rgb.max(axis=2) - rgb.min(axis=2)
    g1 = float(_grad(y).mean())
    g2 = float(_grad(cv2.resize(y, (max(4, y.shape[1] // 2), max(4, y.shape[0] // 2)), interpolation=cv2.INTER_AREA)).mean())
    lap = float(np.abs(cv2.Laplacian(y, cv2.CV_32F)).mean())
    return [float(y.mean()), float(y.std()), p1, p10, p50, p90, p99, float(sat.mean()),
            float((y > 0.98).mean()), float((y < 0.02).mean()),
            np.log(g1 + 1e-4), np.log(g2 + 1e-4), np.log(lap + 1e-4)]


def _autocorr(r: np.ndarray, dy: int, dx: int) -> float:
    a, b = r[: r.shape[0] - dy, : r.shape[1] - dx], r[dy:, dx:]
    den = float(np.sqrt((a * a).mean() * (b * b).mean()))
    return float((a * b).mean()) / den if den > 1e-12 else 0.0


def _change_stats(before: np.ndarray, after: np.ndarray) -> list[float]:
    d = after - before
    yb, ya = luminance(before), luminance(after)
    r = yb - ya  # what the step removed (negative: added)
    r_low = cv2.GaussianBlur(r, (0, 0), 2.0)
    r_high = r - r_low
    ga, gr = _grad(ya).ravel(), np.abs(_grad(r_high)).ravel()
    # Removed residual that follows the image's edges is lost signal (over-smoothing, ringing);
    # residual that does not is noise or artefact: the "method noise" of denoising studies.
    corr = float(np.corrcoef(ga, gr)[0, 1]) if ga.std() > 1e-6 and gr.std() > 1e-6 else 0.0
    # Local tone change: how far the step moved each region's brightness, not only the mean.
    lb, la = cv2.blur(yb, (15, 15)), cv2.blur(ya, (15, 15))
    # Removed noise is nearly white at the camera's scale; removed detail is smooth along its edges.
    lag = [_autocorr(r_high, dy, dx) for dy, dx in ((0, 1), (1, 0), (0, 2))]
    return [*lag, float(np.abs(d).mean()), float(np.sqrt((d * d).mean())), float((ya - yb).mean()),
            float(np.abs(la - lb).mean()), float(r_high.std()), float(r_low.std()), corr,
            float(np.log((ya.std() + 1e-4) / (yb.std() + 1e-4)))]


def _signal_measures(rgb: np.ndarray) -> list[float]:
    # The noise-level regressor's σ and gain: how much denoising this image still has to offer.
    level = load_noise_level()
    sigma, gain = level(rgb) if level is not None else (0.0, 0.0)
    return [float(estimate_sigma(rgb)) * 255.0 / 50.0, float(blockiness(rgb)) - 1.0,
            float(np.log1p(sigma)), float(gain)]


FEATURE_NAMES: tuple[str, ...] = (
    *(f"{side}_{n}" for side in ("before", "after") for n in (
        "lum_mean", "lum_std", "lum_p1", "lum_p10", "lum_p50", "lum_p90", "lum_p99", "sat_mean",
        "clip_high", "clip_low", "log_grad", "log_grad_half", "log_lap", "sigma", "blockiness",
        "denoise_log_sigma", "denoise_gain")),
    "removed_autocorr_x1", "removed_autocorr_y1", "removed_autocorr_x2", "abs_change", "rms_change", "lum_change", "local_tone_change", "removed_high_std", "removed_low_std",
    "removed_edge_corr", "log_contrast_ratio",
    *(f"{side}_{k}" for side in ("before", "after") for k in DEGRADATIONS),
    *(f"{side}_p_{k}" for side in ("before", "after") for k in DEGRADATIONS),
    "before_quality", "after_quality",
    *(f"task_{k}" for k in DEGRADATIONS),
    "log_side", "log_scale",
)


def step_features(before: np.ndarray, after: np.ndarray, task: str,
                  before_assessment: Mapping, after_assessment: Mapping) -> np.ndarray:
    """The verifier's input for one step (``*_assessment``: ``Assessment.model_dump()``-like dicts)."""
    scale = after.shape[0] / max(1, before.shape[0])
    b = _shrink(_fit(before, after.shape[:2]))
    a = _shrink(after)
    row: list[float] = []
    for img in (b, a):
        row += _image_stats(img) + _signal_measures(img)
    row += _change_stats(b, a)
    for rep in (before_assessment, after_assessment):
        row += [float(rep["degradations"].get(k, 0.0)) for k in DEGRADATIONS]
    for rep in (before_assessment, after_assessment):
        row += [float(rep.get("measures", {}).get(f"p_{k}", 0.0)) for k in DEGRADATIONS]
    row += [float(before_assessment.get("quality", 0.0)), float(after_assessment.get("quality", 0.0))]
    row += [1.0 if task == k else 0.0 for k in DEGRADATIONS]
    row += [float(np.log(min(after.shape[:2]))), float(np.log(max(scale, 1e-3)))]
    out = np.asarray(row, np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass(frozen=True)
class Verdict:
    """The verifier's prediction for one step."""

    gain_db: float  #: predicted ΔPSNR (members' mean), dB
    spread_db: float  #: members' standard deviation, dB
    accept: bool
    margin_db: float

    @property
    def reason(self) -> str:
        sign = "gain" if self.accept else "no reliable gain"
        return f"verifier: {sign}, predicted {self.gain_db:+.2f} ± {self.spread_db:.2f} dB (needs > {self.margin_db:+.2f})"


class Verifier:
    """The trained critic: ``verifier(before, after, task, before_report, after_report) → Verdict``."""

    def __init__(self, checkpoint: Path | str = DEFAULT_CHECKPOINT) -> None:
        ckpt, self.members = load_ensemble(checkpoint, FEATURE_NAMES, 1, "tools/research/training/verifier.py")
        self.mean = ckpt["mean"].float()
        self.std = ckpt["std"].float()
        self.margin = float(ckpt["margin"])
        self.margins = {k: float(v) for k, v in ckpt.get("margins", {}).items()}
        self.risk = float(ckpt["risk"])

    def margin_for(self, task: str) -> float:
        """The task's own margin where calibration had enough of its steps, else the overall one."""
        return self.margins.get(task, self.margin)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the members' ΔPSNR for rows of features."""
        import torch

        x = (torch.as_tensor(np.atleast_2d(features)) - self.mean) / self.std
        with torch.no_grad():
            preds = torch.stack([m(x).squeeze(-1) for m in self.members]) * CLIP_DB
        return preds.mean(0).numpy(), preds.std(0).numpy()

    def __call__(self, before: np.ndarray, after: np.ndarray, task: str,
                 before_assessment: Mapping, after_assessment: Mapping) -> Verdict:
        gain, spread = (float(v[0]) for v in self.predict(
            step_features(before, after, task, before_assessment, after_assessment)))
        margin = self.margin_for(task)
        return Verdict(gain, spread, gain - self.risk * spread > margin, margin)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Verifier:
    return Verifier(path)


def load_verifier(checkpoint: Path | str | None = None) -> Verifier:
    """The shipped verifier (cached per file and modification time)."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    return _load(str(path), path.stat().st_mtime_ns)
