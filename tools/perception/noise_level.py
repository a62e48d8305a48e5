"""How strongly to denoise: a learned estimate of the σ to tell FFDNet, and of the gain to expect.

Why it exists: the blind σ of :func:`~restoreagent.tools.perception.noise_sigma.estimate_sigma` (the finest-scale
Haar MAD) is right for white noise, but real camera noise has been demosaicked, sharpened and
JPEG-compressed: it is spatially correlated and the finest scale hardly sees it. On the PolyU
calibration photos it reads 0–5/255 where the σ that serves FFDNet best is 6–15, so the agent
under-denoised real photos, or, with a noise severity read near 0, did not denoise at all.

:func:`noise_features` reads the noise at three scales and two quantiles, in colour and in luminance,
with the JPEG quality and the tone of the photo; a small ensemble of MLPs trained on synthetic camera
noise (a raw pipeline with demosaicking, tone curve and JPEG), white noise, JPEG-only and clean crops
(``tools/research/training/noise_level.py``, splits in docs/VERIFIER.md) predicts the best FFDNet σ and the
ΔPSNR that σ gives. The σ feeds FFDNet when no σ is given; the gain is a measure of the assessment
(``denoise_gain_db``) from which the planner offers denoising. Whether a denoising step is kept is still
the verifier's decision, on the image the step made.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.nets.mlp import load_ensemble
from restoreagent.tools.perception.jpeg_quality import estimate_jpeg_quality
from restoreagent.tools.perception.noise_sigma import haar_sigma
from restoreagent.tools.perception.report import luminance

DEFAULT_CHECKPOINT = checkpoint_file("noise_level.pt")
#: Hidden width of the MLPs.
CHECKPOINT_HIDDEN = 48
#: Features are read on a centre crop of at most this side (the noise is the same everywhere).
CROP = 384

FEATURE_NAMES: tuple[str, ...] = (
    *(f"rgb_s{s}_q{q}" for s in (0, 1, 2) for q in (30, 50)),
    *(f"lum_s{s}_q50" for s in (0, 1, 2)),
    "jpeg_found", "jpeg_quality",
    "lum_mean", "lum_p10", "lum_p90", "log_grad", "log_lap",
)


def _centre(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    return rgb[top:top + CROP, left:left + CROP]


def noise_features(rgb: np.ndarray) -> np.ndarray:
    """The regressor's input for one RGB image in [0, 1]."""
    x = np.asarray(_centre(rgb), np.float64)
    y = luminance(x.astype(np.float32)).astype(np.float64)[..., None]
    row = [np.log1p(255 * haar_sigma(x, coarsen=s, quantile=q / 100)) for s in (0, 1, 2) for q in (30, 50)]
    row += [np.log1p(255 * haar_sigma(y, coarsen=s)) for s in (0, 1, 2)]
    quality = estimate_jpeg_quality(x.astype(np.float32))
    row += [0.0 if quality is None else 1.0, 0.0 if quality is None else quality / 100.0]
    y32 = y[..., 0].astype(np.float32)
    gx, gy = cv2.Sobel(y32, cv2.CV_32F, 1, 0), cv2.Sobel(y32, cv2.CV_32F, 0, 1)
    row += [float(y32.mean()), *np.percentile(y32, (10, 90)).tolist(),
            float(np.log(np.sqrt(gx * gx + gy * gy).mean() + 1e-4)),
            float(np.log(np.abs(cv2.Laplacian(y32, cv2.CV_32F)).mean() + 1e-4))]
    return np.nan_to_num(np.asarray(row, np.float32))


class NoiseLevel:
    """``NoiseLevel()(rgb) → (sigma_255, gain_db)``: the σ to tell FFDNet and the gain it should bring."""

    def __init__(self, checkpoint: Path | str = DEFAULT_CHECKPOINT) -> None:
        ckpt, self.members = load_ensemble(checkpoint, FEATURE_NAMES, 2, "tools/research/training/noise_level.py")
        self.mean, self.std = ckpt["mean"].float(), ckpt["std"].float()

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """σ (0–255) and gain (dB) for rows of features: the members' mean."""
        import torch

        x = (torch.as_tensor(np.atleast_2d(features)) - self.mean) / self.std
        with torch.no_grad():
            out = torch.stack([m(x) for m in self.members]).mean(0).numpy()
        return np.clip(np.expm1(out[:, 0]), 0.0, 75.0), out[:, 1] * GAIN_SCALE

    def __call__(self, rgb: np.ndarray) -> tuple[float, float]:
        sigma, gain = self.predict(noise_features(rgb))
        return float(sigma[0]), float(gain[0])


#: The gain head is trained on ΔPSNR / GAIN_SCALE (dB).
GAIN_SCALE = 5.0


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> NoiseLevel:
    return NoiseLevel(path)


def load_noise_level(checkpoint: Path | str | None = None) -> NoiseLevel | None:
    """The shipped regressor (cached per file and modification time), or None without a checkpoint."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not path.is_file():
        return None
    return _load(str(path), path.stat().st_mtime_ns)
