"""The blind noise estimate: σ from the finest Haar detail, robust to texture, clipping and JPEG.

Shared by the assessor (its noise measure), the noise-level regressor's features and the denoisers
(FFDNet's σ when none is given).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from restoreagent.tools.perception.jpeg_quality import estimate_jpeg_quality


def haar_sigma(x: np.ndarray, coarsen: int = 0, quantile: float = 0.5) -> float:
    """Noise std (0–1 scale) from the diagonal Haar detail, after ``coarsen`` 2×2 averagings.

    Each averaging halves white noise, so the detail is scaled back by 2 per step:
    the result estimates the per-pixel σ of noise that is white at that scale.
    ``quantile`` of |detail| is used (0.5: the classic MAD); a lower one is less
    swayed by texture, which only covers part of an image while noise covers all.
    """
    m = x
    for _ in range(coarsen):
        h, w = m.shape[0] // 2 * 2, m.shape[1] // 2 * 2
        m = m[:h, :w]
        m = (m[0::2, 0::2] + m[0::2, 1::2] + m[1::2, 0::2] + m[1::2, 1::2]) / 4.0
    h, w = m.shape[0] // 2 * 2, m.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    m = m[:h, :w]
    a, b, c, d = m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]
    detail = (2.0**coarsen) * np.abs(a - b - c + d).ravel() / 2.0  # orthonormal: σ preserved
    level = ((a + b + c + d) / 4.0).ravel()
    ref = NormalDist().inv_cdf(0.5 + quantile / 2)  # the same quantile of |N(0, 1)| (0.6745 for the median)
    sigma = float(np.quantile(detail, quantile)) / ref
    # Near black or white, clipping hides noise (σ 50 on a photo with dark areas would
    # read ~40): leave those blocks out and refine.
    for _ in range(2):
        keep = (level > 2 * sigma) & (level < 1 - 2 * sigma)
        if keep.sum() < 0.1 * keep.size:  # mostly dark or bright: keep the plain estimate
            break
        sigma = float(np.quantile(detail[keep], quantile)) / ref
    return sigma


# JPEG removes most of the finest-scale noise but keeps it at coarser scales, where
# it is also partly quantised away. Ratio σ / (σ read one scale up), measured on the
# crops for σ 10–40 after Pillow JPEG at these qualities (constant beyond the ends).
_JPEG_QUALITY = (20.0, 30.0, 50.0, 75.0)

_JPEG_COARSE_GAIN = (2.0, 1.6, 1.4, 1.3)


def estimate_sigma(rgb: np.ndarray) -> float:
    """Blind estimate of the Gaussian noise std (0–1 scale) of an image in [0, 1].

    The median absolute diagonal Haar detail (finest scale), pooled over the
    channels: insensitive to edges and smooth gradients. Within ±1.6/255 of the
    true σ for σ 10–50 on the test crops; noise-free photos read about 1–4/255
    from fine texture.

    On a JPEG-compressed image (a block grid is found) the finest scale has lost
    most of the noise (σ 25 then JPEG q30 reads 3/255), so the estimate also
    looks one scale up and corrects for the quality: it then approximates the σ
    before compression, which is what a denoiser needs to be told (σ 25 then q30–75
    reads 24–33; told 3, FFDNet gains 0.5 dB instead of 4.7). Heavily textured
    noise-free JPEGs then read up to about 13/255, and at q10 the noise is gone
    into the blocks (reads ~1).
    """
    x = np.asarray(rgb, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    sigma = haar_sigma(x)
    quality = estimate_jpeg_quality(np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x)
    if quality is not None:
        gain = float(np.interp(quality, _JPEG_QUALITY, _JPEG_COARSE_GAIN))
        sigma = max(sigma, gain * haar_sigma(x, coarsen=1, quantile=0.3))
    return sigma
