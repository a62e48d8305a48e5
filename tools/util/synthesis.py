"""Seeded synthesis of the eight degradations (AgenticIR's MiO protocol).

Each ``add_*``/``*`` function takes an RGB float32 image in [0, 1] and returns a
new one; none modifies its input. :func:`degrade` applies a combination in the
order a camera produces them — scene (dark, haze, rain) → optics (defocus,
motion) → resolution → sensor noise → codec (JPEG) — with parameters drawn
from the MiO ranges (:func:`sample_params`), and returns them for the record.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image

#: The order in which a combination is applied (camera / imaging chain).
SYNTHESIS_ORDER: tuple[str, ...] = (
    "low_light",
    "haze",
    "rain",
    "defocus_blur",
    "motion_blur",
    "low_resolution",
    "noise",
    "jpeg",
)

#: AgenticIR's MiO100 combinations, by group.
MIO_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("rain", "haze"),
        ("motion_blur", "low_resolution"),
        ("low_light", "noise"),
        ("defocus_blur", "jpeg"),
        ("noise", "jpeg"),
        ("rain", "low_resolution"),
        ("motion_blur", "low_light"),
        ("defocus_blur", "haze"),
    ),
    "B": (
        ("motion_blur", "jpeg"),
        ("haze", "noise"),
        ("defocus_blur", "low_resolution"),
        ("rain", "low_light"),
    ),
    "C": (
        ("haze", "motion_blur", "low_resolution"),
        ("rain", "noise", "low_resolution"),
        ("low_light", "defocus_blur", "jpeg"),
        ("motion_blur", "defocus_blur", "noise"),
    ),
}
#: All 16, group by group.
MIO_COMBOS: tuple[tuple[str, ...], ...] = tuple(c for combos in MIO_GROUPS.values() for c in combos)

#: Short names accepted on the command line (``--combo noise+jpeg``).
ALIASES: dict[str, str] = {
    "dark": "low_light",
    "lowlight": "low_light",
    "motion": "motion_blur",
    "defocus": "defocus_blur",
    "lowres": "low_resolution",
    "low-res": "low_resolution",
    "sr": "low_resolution",
}


def parse_combo(text: str) -> tuple[str, ...]:
    """``"noise+jpeg"`` → ``("noise", "jpeg")``; raises ValueError on unknown names."""
    names = []
    for part in text.replace(",", "+").split("+"):
        name = ALIASES.get(part.strip().lower(), part.strip().lower())
        if name not in SYNTHESIS_ORDER:
            raise ValueError(f"unknown degradation {part!r}; choose from {', '.join(SYNTHESIS_ORDER)}")
        names.append(name)
    return tuple(dict.fromkeys(names))


# -- single degradations ---------------------------------------------------------
def add_gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise; ``sigma`` on the 0–255 scale."""
    return np.clip(rgb + rng.normal(0.0, sigma / 255.0, rgb.shape), 0, 1).astype(np.float32)


def add_poisson_noise(rgb: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise of an 8-bit sensor, amplified ``scale`` times."""
    shot = rng.poisson(np.clip(rgb, 0, 1) * 255.0) / 255.0 - rgb
    return np.clip(rgb + scale * shot, 0, 1).astype(np.float32)


def jpeg_compress(rgb: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """Encode and decode with Pillow's JPEG at ``quality``; chroma ``subsampling`` 0 = 4:4:4,
    1 = 4:2:2, 2 = 4:2:0 (the MiO protocol's)."""
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        buf, format="JPEG", quality=int(quality), subsampling=int(subsampling))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float32) / 255.0


def darken(rgb: np.ndarray, gamma: float = 0.6, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Low light: ``scale · x^(1/gamma) − shift`` (gamma < 1 darkens)."""
    return np.clip(scale * np.power(np.clip(rgb, 0, 1), 1.0 / gamma) - shift, 0, 1).astype(np.float32)


def pseudo_depth(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible depth map in [0, 1] without a depth sensor: far at the top, near at the
    bottom, with smooth random relief."""
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    relief = cv2.resize(rng.random((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    depth = 0.7 * rows + 0.3 * relief
    return np.clip((depth - depth.min()) / (np.ptp(depth) + 1e-6), 0, 1)


def add_haze(rgb: np.ndarray, airlight: float, beta: float, depth: np.ndarray) -> np.ndarray:
    """Atmospheric scattering: ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``."""
    t = np.exp(-beta * depth)[..., None]
    return np.clip(rgb * t + airlight * (1 - t), 0, 1).astype(np.float32)


def line_kernel(length: int, angle_deg: float, sigma: float | None = None) -> np.ndarray:
    """A normalized line of ``length`` pixels at ``angle_deg``, optionally Gaussian-weighted
    along its length (std ``sigma`` pixels)."""
    size = length if length % 2 else length + 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    t = np.linspace(-c, c, 4 * size)
    a = np.deg2rad(angle_deg)
    xs, ys = np.round(c + t * np.cos(a)).astype(int), np.round(c - t * np.sin(a)).astype(int)
    weights = np.exp(-0.5 * (t / sigma) ** 2) if sigma else np.ones_like(t)
    np.add.at(k, (ys, xs), weights.astype(np.float32))
    return k / k.sum()


def disk_kernel(radius: float) -> np.ndarray:
    """A normalized, anti-aliased disk (defocus point-spread function)."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def convolve(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.clip(cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT), 0, 1).astype(np.float32)


def add_rain(
    rgb: np.ndarray, length: int, angle_deg: float, rng: np.random.Generator, density: float = 0.004,
    intensity: float = 0.8,
) -> np.ndarray:
    """Rain streaks: sparse drops smeared along a line, screen-blended over the image."""
    h, w = rgb.shape[:2]
    drops = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    streaks = cv2.filter2D(drops, -1, line_kernel(length, 90.0 + angle_deg)) * length * 0.5
    streaks = np.clip(cv2.GaussianBlur(streaks, (3, 3), 0.6) * intensity, 0, 1)[..., None]
    return np.clip(1 - (1 - rgb) * (1 - streaks), 0, 1).astype(np.float32)


def downscale(rgb: np.ndarray, factor: int = 4) -> np.ndarray:
    """Bicubic ×1/``factor`` (Pillow, antialiased as MATLAB's imresize)."""
    h, w = rgb.shape[:2]
    im = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    small = im.resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BICUBIC)
    return np.asarray(small).astype(np.float32) / 255.0


def dark_noise_jpeg(
    rgb: np.ndarray, seed: int = 0, gamma: float = 0.6, sigma: float = 25.0, quality: int = 30
) -> np.ndarray:
    """The foundation tests' mixture: low light, then noise, then JPEG."""
    rng = np.random.default_rng(seed)
    return jpeg_compress(add_gaussian_noise(darken(rgb, gamma), sigma, rng), quality)


# -- the MiO protocol --------------------------------------------------------------
def sample_params(name: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one degradation's parameters from the MiO ranges."""
    if name == "noise":
        if rng.random() < 0.5:
            return {"kind": "gaussian", "sigma": float(rng.uniform(20, 50))}
        return {"kind": "poisson", "scale": float(rng.uniform(1, 3))}
    if name == "jpeg":
        return {"quality": int(rng.integers(10, 30))}
    if name == "low_light":
        kind = ("gamma", "shift", "scale")[int(rng.integers(3))]
        if kind == "gamma":
            return {"kind": kind, "gamma": float(rng.uniform(0.5, 0.7))}
        if kind == "shift":
            return {"kind": kind, "shift": float(rng.uniform(0.1, 0.2))}
        return {"kind": kind, "scale": float(rng.uniform(0.3, 0.6))}
    if name == "haze":
        return {"airlight": float(rng.uniform(0.7, 1.0)), "beta": float(rng.uniform(0.6, 1.8)),
                "depth_seed": int(rng.integers(2**31))}
    if name == "motion_blur":
        radius, sigma = ((10, 3), (15, 5), (15, 8))[int(rng.integers(3))]
        return {"radius": radius, "sigma": sigma, "angle": float(rng.uniform(0, 180))}
    if name == "defocus_blur":
        return {"radius": (3, 4, 6)[int(rng.integers(3))]}
    if name == "rain":
        return {"length": int(rng.integers(20, 41)), "angle": float(rng.uniform(-30, 30)),
                "rain_seed": int(rng.integers(2**31))}
    if name == "low_resolution":
        return {"factor": 4}
    raise ValueError(f"unknown degradation {name!r}")


def apply(name: str, rgb: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Apply one degradation with explicit parameters."""
    if name == "noise":
        if params["kind"] == "gaussian":
            return add_gaussian_noise(rgb, params["sigma"], rng)
        return add_poisson_noise(rgb, params["scale"], rng)
    if name == "jpeg":
        return jpeg_compress(rgb, params["quality"])
    if name == "low_light":
        return darken(rgb, gamma=params.get("gamma", 1.0), scale=params.get("scale", 1.0), shift=params.get("shift", 0.0))
    if name == "haze":
        depth = pseudo_depth(*rgb.shape[:2], np.random.default_rng(params["depth_seed"]))
        return add_haze(rgb, params["airlight"], params["beta"], depth)
    if name == "motion_blur":
        return convolve(rgb, line_kernel(2 * params["radius"] + 1, params["angle"], params["sigma"]))
    if name == "defocus_blur":
        return convolve(rgb, disk_kernel(params["radius"]))
    if name == "rain":
        return add_rain(rgb, params["length"], params["angle"], np.random.default_rng(params["rain_seed"]))
    if name == "low_resolution":
        return downscale(rgb, params["factor"])
    raise ValueError(f"unknown degradation {name!r}")


def degrade(
    rgb: np.ndarray, combo: tuple[str, ...] | list[str], seed: int = 0
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Apply ``combo`` in :data:`SYNTHESIS_ORDER` with MiO parameters drawn from ``seed``.

    Returns the degraded image and the parameters used, per degradation.
    """
    rng = np.random.default_rng(seed)
    out = np.asarray(rgb, np.float32)
    used: dict[str, dict[str, Any]] = {}
    for name in SYNTHESIS_ORDER:
        if name in combo:
            used[name] = sample_params(name, rng)
            out = apply(name, out, used[name], rng)
    return out, used
