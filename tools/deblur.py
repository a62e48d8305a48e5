"""Deblurring: motion blur and defocus blur.

Four tools:

* ``deblur_motion_ours`` / ``deblur_defocus_ours``: compact U-Nets of our own
  (:mod:`restoreagent.tools.nets.restorer`), trained by
  :mod:`restoreagent.tools.research.training.restorers` on the ``train`` split with MiO blur
  parameters; the checkpoints ship in ``restoreagent/checkpoints`` (MIT, no download).
  Both refine the classical result below: the network sees the blurred image and the
  blind Wiener deconvolution, and predicts a correction to the latter.
* ``deblur_motion_wiener`` / ``deblur_defocus_wiener``: classical, weight-free blind
  deconvolution. The point-spread function is chosen from a parametric family (a line of
  given length, Gaussian profile and angle; a disk of given radius) as the one whose
  Wiener deconvolution of the luminance has the *sparsest gradients* (smallest
  ‖∇x‖₁/‖∇x‖₂, the normalised sparsity of Krishnan et al. 2011): a wrong kernel leaves
  blur (dense small gradients) or adds ringing, both of which raise it. The colour image
  is then deconvolved with that kernel; edges are handled by reflective padding with a
  tapered border, so the FFT's wrap-around does not ring.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import RestorerTool
from restoreagent.tools.util.synthesis import disk_kernel, line_kernel

__all__ = [
    "wiener_deconvolve",
    "estimate_defocus_radius",
    "estimate_motion_kernel",
    "DeblurMotionOurs",
    "DeblurDefocusOurs",
    "DeblurMotionWiener",
    "DeblurDefocusWiener",
]


# -- Wiener deconvolution -------------------------------------------------------------------------
def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of ``kernel`` placed with its centre at (0, 0) on a ``shape`` canvas."""
    pad = np.zeros(shape, np.float64)
    kh, kw = kernel.shape
    pad[:kh, :kw] = kernel
    pad = np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.fft.rfft2(pad)


def _extend(img: np.ndarray, margin: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad by at least ``margin`` (more at the bottom/right, up to a size the FFT is
    fast for) and taper the border towards the mean, so the periodic extension the FFT
    assumes has no jump at the wrap-around. Returns the canvas and the image's offset."""
    h, w = img.shape[:2]
    hh, ww = cv2.getOptimalDFTSize(h + 2 * margin), cv2.getOptimalDFTSize(w + 2 * margin)
    ext = cv2.copyMakeBorder(
        np.ascontiguousarray(img, np.float32), margin, hh - h - margin, margin, ww - w - margin, cv2.BORDER_REFLECT
    ).astype(np.float64)
    if ext.ndim == 2:
        ext = ext[..., None]

    def ramp(n: int) -> np.ndarray:
        # 1 on the image, falling to 0 over the padding on both sides of it.
        i = np.arange(n, dtype=np.float64)
        r = np.clip(np.minimum(i + 0.5, n - i - 0.5) / max(0.8 * margin, 1.0), 0, 1)
        return 0.5 - 0.5 * np.cos(np.pi * r)

    win = np.outer(ramp(hh), ramp(ww))[..., None]
    mean = ext.mean(axis=(0, 1), keepdims=True)
    return ext * win + mean * (1 - win), (margin, margin)


def wiener_deconvolve(
    img: np.ndarray, kernel: np.ndarray, nsr: float = 3e-3, smooth: float = 0.0, margin: int | None = None
) -> np.ndarray:
    """Deconvolve ``img`` (H×W or H×W×C) by ``kernel``:
    ``X = K̄·Y / (|K|² + nsr + smooth·|∇|²)``. Not clipped."""
    if margin is None:
        margin = int(max(kernel.shape)) + 8
    squeeze = img.ndim == 2
    h, w = img.shape[:2]
    ext, (oy, ox) = _extend(img, margin)
    H, W = ext.shape[:2]
    K = _otf(kernel.astype(np.float64), (H, W))
    denom = np.abs(K) ** 2 + nsr
    if smooth:
        fy = np.fft.fftfreq(H)[:, None]
        fx = np.fft.rfftfreq(W)[None, :]
        denom = denom + smooth * ((2 - 2 * np.cos(2 * np.pi * fy)) + (2 - 2 * np.cos(2 * np.pi * fx)))
    gain = np.conj(K) / denom
    out = np.stack([np.fft.irfft2(np.fft.rfft2(ext[..., c]) * gain, s=(H, W)) for c in range(ext.shape[2])], -1)
    out = out[oy : oy + h, ox : ox + w]
    return (out[..., 0] if squeeze else out).astype(np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)


def _center(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return img[y : y + size, x : x + size]


def _sparsity(x: np.ndarray, border: int = 8) -> float:
    """Normalised gradient sparsity ‖∇x‖₁/‖∇x‖₂ (smaller: sharper, fewer artefacts)."""
    gx = np.abs(np.diff(x, axis=1)[:-1])
    gy = np.abs(np.diff(x, axis=0)[:, :-1])
    g = (gx + gy)[border:-border, border:-border]
    return float(g.sum() / (np.sqrt((g.astype(np.float64) ** 2).sum()) + 1e-12))


# -- defocus --------------------------------------------------------------------------------------
DEFOCUS_NSR = 0.0
DEFOCUS_SMOOTH = 2e-3
DEFOCUS_RADII = tuple(float(r) for r in np.arange(1.5, 8.01, 0.5))


def deconvolve_defocus(img: np.ndarray, radius: float) -> np.ndarray:
    return wiener_deconvolve(img, disk_kernel(radius), nsr=DEFOCUS_NSR + 1e-4, smooth=DEFOCUS_SMOOTH)


def estimate_defocus_radius(rgb: np.ndarray, size: int = 256) -> float:
    """The disk radius (1.5–8 px, step 0.5) whose deconvolution of the central luminance
    crop has the sparsest gradients."""
    y = _center(_luma(rgb), size)
    scores = [(_sparsity(deconvolve_defocus(y, r)), r) for r in DEFOCUS_RADII]
    return min(scores)[1]


# -- motion ---------------------------------------------------------------------------------------
MOTION_NSR = 3e-3
#: (radius, σ) of the Gaussian-weighted line kernels searched (MiO's three, plus shorter ones).
MOTION_SHAPES: tuple[tuple[int, float], ...] = ((10, 3.0), (15, 5.0), (15, 8.0))


def motion_kernel(radius: int, sigma: float, angle: float) -> np.ndarray:
    return line_kernel(2 * int(radius) + 1, angle, sigma)


def deconvolve_motion(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return wiener_deconvolve(img, kernel, nsr=MOTION_NSR)


def estimate_motion_angle(rgb: np.ndarray) -> float:
    """Blur direction in degrees (0–180, 0: horizontal, counter-clockwise as
    :func:`~restoreagent.tools.util.synthesis.line_kernel`): the direction along which the
    luminance gradient energy is smallest (minimum of the global structure tensor's
    quadratic form). Within about 7° on MiO blur of the training crops."""
    y = _luma(rgb).astype(np.float64)
    gx = np.diff(y, axis=1)[:-1]
    gy = np.diff(y, axis=0)[:, :-1]
    sxx, syy, sxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
    # Along (cos a, -sin a) in image coordinates (y down): d = cos a·gx - sin a·gy.
    theta = np.deg2rad(np.arange(0.0, 180.0, 1.0))
    energy = np.cos(theta) ** 2 * sxx + np.sin(theta) ** 2 * syy - 2 * np.sin(theta) * np.cos(theta) * sxy
    return float(np.rad2deg(theta[int(np.argmin(energy))]))


def estimate_motion_kernel(rgb: np.ndarray, size: int = 256) -> tuple[int, float, float]:
    """(radius, σ, angle°) of the blur: the angle from :func:`estimate_motion_angle`, the
    length/profile among :data:`MOTION_SHAPES` as the one whose deconvolution of the central
    luminance crop has the sparsest gradients. (Searching the angle by sparsity too was
    unreliable: it favoured short kernels at wrong angles.)"""
    angle = estimate_motion_angle(rgb)
    y = _center(_luma(rgb), size)
    scores = [(_sparsity(deconvolve_motion(y, motion_kernel(r, s, angle))), r, s) for r, s in MOTION_SHAPES]
    _, r, s = min(scores)
    return r, s, angle


# -- checkpoints of our own models ------------------------------------------------------------------


# spec.cost values: measured on a 512×512 photo, 2 CPU cores, torch with one thread.


# --- our learned models -------------------------------------------------------------------------------
@register
class DeblurMotionOurs(RestorerTool):
    """Our compact U-Net refining the blind Wiener deconvolution (estimated line kernel)."""

    spec = ToolSpec(
        name="deblur_motion_ours",
        task="motion_blur",
        model="RestoreAgent compact gated U-Net over blind Wiener deconvolution (ours, 0.44 M parameters)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=True,
        cost=2.2,
        description=(
            "Blind motion-blur removal (linear camera shake up to ~30 px, any direction): estimates "
            "the kernel, deconvolves, and a small network of ours removes ringing and residual "
            "blur; ships with the package, MIT."
        ),
    )
    CHECKPOINT = "deblur_motion.pt"

    def hint(self, image: np.ndarray, args: ToolArgs) -> np.ndarray:
        return deconvolve_motion(image, motion_kernel(*estimate_motion_kernel(image)))


class DefocusArgs(ToolArgs):
    """The blur radius is estimated from the image unless given."""

    radius: float | None = Field(
        None, ge=0.5, le=12, description="Defocus disk radius in pixels; null: estimate it from the image."
    )


@register
class DeblurDefocusOurs(RestorerTool):
    """Our compact U-Net refining the Wiener deconvolution of an estimated defocus disk."""

    spec = ToolSpec(
        name="deblur_defocus_ours",
        task="defocus_blur",
        model="RestoreAgent compact gated U-Net over Wiener deconvolution (ours, 0.44 M parameters)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=True,
        cost=2.3,
        description=(
            "Defocus (out-of-focus) blur removal, disk radius ~1.5-8 px: estimates the radius, "
            "deconvolves, and a small network of ours removes the ringing; ships with the package, MIT."
        ),
    )
    Args = DefocusArgs
    CHECKPOINT = "deblur_defocus.pt"

    def hint(self, image: np.ndarray, args: DefocusArgs) -> np.ndarray:  # type: ignore[override]
        radius = args.radius if args.radius is not None else estimate_defocus_radius(image)
        return deconvolve_defocus(image, radius)


# --- classical -----------------------------------------------------------------------------------------
class MotionWienerArgs(ToolArgs):
    """The blur kernel is estimated from the image unless its angle and length are given."""

    angle: float | None = Field(None, ge=0, le=180, description="Blur direction in degrees (0: horizontal); null: estimate.")
    length: int | None = Field(None, ge=3, le=61, description="Blur length in pixels; null: estimate.")


@register
class DeblurMotionWiener(RestorationTool):
    """Blind Wiener deconvolution with a line kernel found by a sparsity search."""

    spec = ToolSpec(
        name="deblur_motion_wiener",
        task="motion_blur",
        model="Blind Wiener deconvolution, line-kernel search by gradient sparsity (classical)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=False,
        cost=0.2,
        description=(
            "Classical motion-blur removal (no weights): estimates the blur direction and length, "
            "then deconvolves; weaker than the learned model and may ring on strong blur."
        ),
    )
    Args = MotionWienerArgs

    def process(self, image: np.ndarray, args: MotionWienerArgs) -> np.ndarray:  # type: ignore[override]
        r, s, a = estimate_motion_kernel(image)
        if args.angle is not None:
            a = args.angle
        if args.length is not None:
            r, s = max(1, args.length // 2), max(1.0, args.length / 4.0)
        return np.clip(deconvolve_motion(image, motion_kernel(r, s, a)), 0, 1)


@register
class DeblurDefocusWiener(RestorationTool):
    """Wiener deconvolution by a disk whose radius is found by a sparsity search."""

    spec = ToolSpec(
        name="deblur_defocus_wiener",
        task="defocus_blur",
        model="Blind Wiener deconvolution, disk-radius search by gradient sparsity (classical)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=False,
        cost=0.2,
        description=(
            "Classical defocus-blur removal (no weights): estimates the disk radius, then "
            "deconvolves; strong on pure defocus, rings if the image is also noisy."
        ),
    )
    Args = DefocusArgs

    def process(self, image: np.ndarray, args: DefocusArgs) -> np.ndarray:  # type: ignore[override]
        radius = args.radius if args.radius is not None else estimate_defocus_radius(image)
        return np.clip(deconvolve_defocus(image, radius), 0, 1)
