"""NIQE (Mittal et al. 2013), our implementation, with the published pristine parameters.

A no-reference naturalness score (lower is more natural). The parameters (``niqe_pris_params``) resolve
through :class:`~restoreagent.tools.weights.WeightsResolver`; without them :func:`niqe_params` is None and
the assessor leaves NIQE out.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from restoreagent.tools.perception.report import as_rgb, luminance


@lru_cache(maxsize=4)
def _niqe_params_cached(weights_dir: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        from restoreagent.tools.weights import WeightsResolver

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
    y = (luminance(as_rgb(rgb)) * 255.0).astype(np.float64)
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
