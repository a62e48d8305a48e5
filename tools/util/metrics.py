"""Full-reference quality measures (for tests, tool tables and benchmarks)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    if restored.shape != reference.shape:
        raise ValueError(f"shape mismatch: {restored.shape} vs {reference.shape}")
    mse = float(np.mean((np.clip(restored, 0, 1) - np.clip(reference, 0, 1)) ** 2, dtype=np.float64))
    return float(10.0 * np.log10(1.0 / max(mse, 1e-12)))


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity on RGB images in [0, 1]."""
    if restored.shape != reference.shape:
        raise ValueError(f"shape mismatch: {restored.shape} vs {reference.shape}")
    return float(
        structural_similarity(np.clip(restored, 0, 1), np.clip(reference, 0, 1), channel_axis=2, data_range=1.0)
    )
