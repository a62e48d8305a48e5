"""Camera-like degradations for training the assessor (ours).

The MiO protocol's noise is white and its JPEG is aligned to the 8×8 grid of the
image the assessor sees. Real photos are different, and an assessor trained only
on MiO missed most real noise and real compression (docs/PERCEPTION.md):

* camera noise is signal-dependent (shot + read noise on the raw sensor), has a
  colour component, and is spatially correlated by demosaicing and sharpening;
* web JPEGs are often re-saved, resized after compression (the 8×8 grid is gone,
  the ringing stays), use 4:4:4 or 4:2:0 chroma, and show graphics and cartoons
  as often as photos.

Each function takes an RGB float image in [0, 1] and a NumPy generator and returns
the degraded image plus what its severity target needs. None of this is part of
the MiO synthesis (``tools.util.synthesis``), which stays the benchmark's protocol.
"""

from __future__ import annotations

import cv2
import numpy as np

from restoreagent.tools.util.synthesis import jpeg_compress


def _demosaic(raw: np.ndarray) -> np.ndarray:
    """Bilinear demosaic of an RGGB mosaic (H×W in [0, 1]) with OpenCV, in 16 bit.

    (OpenCV names Bayer patterns from the second row: our RGGB is its ``BayerBG``.)"""
    u16 = (np.clip(raw, 0, 1) * 65535 + 0.5).astype(np.uint16)
    return cv2.cvtColor(u16, cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535.0


def _mosaic(lin: np.ndarray) -> np.ndarray:
    raw = np.empty(lin.shape[:2], np.float32)
    raw[0::2, 0::2] = lin[0::2, 0::2, 0]
    raw[0::2, 1::2] = lin[0::2, 1::2, 1]
    raw[1::2, 0::2] = lin[1::2, 0::2, 1]
    raw[1::2, 1::2] = lin[1::2, 1::2, 2]
    return raw


def camera_noise(rgb: np.ndarray, rng: np.random.Generator, strength: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Shot and read noise added on a simulated raw mosaic, then the camera's processing.

    The image is "unprocessed" (sRGB → linear, white balance undone, RGGB mosaic),
    noise of variance ``shot·x + read`` is added (shot log-uniform, read tied to it as
    in real sensors), and it is processed back (demosaic, white balance, gamma,
    optional sharpening). Returns ``(noisy, reference)``: the reference went through
    the same processing without noise, so ``noisy − reference`` is the noise a viewer sees.
    """
    h, w = rgb.shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    x = np.ascontiguousarray(rgb[:h2, :w2])
    gains = np.array([rng.uniform(1.6, 2.4), 1.0, rng.uniform(1.3, 2.0)], np.float32)
    lin = np.power(np.clip(x, 0, 1), 2.2) / gains
    raw = _mosaic(lin)
    shot = float(np.exp(rng.uniform(np.log(2e-4), np.log(2e-2)))) if strength is None else strength
    read = float(np.exp(np.log(shot) * 2.2 + rng.normal(0.0, 0.25))) * 3.0
    noisy_raw = raw + rng.normal(0.0, 1.0, raw.shape).astype(np.float32) * np.sqrt(shot * np.clip(raw, 0, 1) + read)

    def process(r: np.ndarray) -> np.ndarray:
        out = np.power(np.clip(_demosaic(r) * gains, 1e-8, 1), 1 / 2.2)
        return out.astype(np.float32)

    ref, noisy = process(raw), process(noisy_raw)
    if rng.random() < 0.5:  # in-camera sharpening makes the noise coarser and stronger
        amount = float(rng.uniform(0.3, 1.0))
        ref, noisy = (np.clip(v + amount * (v - cv2.GaussianBlur(v, (0, 0), 1.0)), 0, 1) for v in (ref, noisy))
    return noisy.astype(np.float32), ref.astype(np.float32)


def correlated_noise(rgb: np.ndarray, sigma_255: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise blurred (σ 0.5–1.2 px) and rescaled to ``sigma_255``, partly colour, partly luma."""
    h, w = rgb.shape[:2]
    n = rng.normal(0.0, 1.0, (h, w, 3)).astype(np.float32)
    luma_share = float(rng.uniform(0.0, 0.8))
    n = (1 - luma_share) * n + luma_share * n[..., :1]
    n = cv2.GaussianBlur(n, (0, 0), float(rng.uniform(0.5, 1.2)))
    n *= (sigma_255 / 255.0) / (float(n.std()) + 1e-8)
    return np.clip(rgb + n, 0, 1).astype(np.float32)


def web_jpeg(rgb: np.ndarray, quality: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A JPEG as found on the web: random chroma subsampling, then sometimes a resize
    (the grid is lost, the ringing stays) or a second, higher-quality save.

    Returns the image and the fraction of the artefacts left visible (1 unless the image
    was shrunk, which shrinks and averages them).
    """
    out = jpeg_compress(rgb, quality, int(rng.choice([0, 2, 2])))
    visible = 1.0
    u = rng.random()
    h, w = out.shape[:2]
    if u < 0.3:
        f = float(rng.uniform(0.75, 1.5))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        out = cv2.resize(out, (max(8, round(w * f)), max(8, round(h * f))), interpolation=interp)
        out = np.clip(out, 0, 1).astype(np.float32)
        visible = min(1.0, f)
    elif u < 0.5:
        out = jpeg_compress(out, int(rng.integers(80, 96)), int(rng.choice([0, 2])))
    return out, visible


def cartoonize(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Graphics-like content from a photo: flattened colours, posterized, dark outlines.

    Real JPEGs are often drawings and screenshots, where ringing around hard edges on
    flat colour is what compression looks like; the training photos have none.
    """
    u8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        u8 = cv2.bilateralFilter(u8, 7, 40, 7)
    levels = int(rng.integers(6, 15))
    step = 256 // levels
    flat = (u8 // step) * step + step // 2
    flat = cv2.medianBlur(flat.astype(np.uint8), 5)
    if rng.random() < 0.7:
        edges = cv2.Canny(cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY), 60, 140)
        edges = cv2.dilate(edges, np.ones((2, 2), np.uint8)) > 0
        flat[edges] = (flat[edges] * rng.uniform(0.0, 0.3)).astype(np.uint8)
    return flat.astype(np.float32) / 255.0
