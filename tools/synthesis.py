"""Seeded synthesis of degradations, for tests, demos, training and benchmarks.

Each function takes an RGB float32 image in [0, 1] and returns a new one; none
modifies its input. The order used for a mixture follows how a camera and a
codec produce them: scene (dark) → sensor (noise) → codec (JPEG).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def add_gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise; ``sigma`` on the 0–255 scale."""
    return np.clip(rgb + rng.normal(0.0, sigma / 255.0, rgb.shape), 0, 1).astype(np.float32)


def jpeg_compress(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with Pillow's JPEG at ``quality`` (4:2:0 chroma)."""
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float32) / 255.0


def darken(rgb: np.ndarray, gamma: float = 0.6, scale: float = 1.0) -> np.ndarray:
    """Low light as AgenticIR synthesizes it: ``scale · x^(1/gamma)`` (gamma < 1 darkens)."""
    return np.clip(scale * np.power(np.clip(rgb, 0, 1), 1.0 / gamma), 0, 1).astype(np.float32)


def dark_noise_jpeg(
    rgb: np.ndarray, seed: int = 0, gamma: float = 0.6, sigma: float = 25.0, quality: int = 30
) -> np.ndarray:
    """The foundation issue's test mixture: low light, then noise, then JPEG."""
    rng = np.random.default_rng(seed)
    return jpeg_compress(add_gaussian_noise(darken(rgb, gamma), sigma, rng), quality)
