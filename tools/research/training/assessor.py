"""Train the learned degradation assessor (:class:`tools.nets.assessor.AssessorNet`).

``python -m restoreagent.tools.research.training.assessor --minutes 25 [--work DIR] [--out checkpoints/assessor.pt]``

* Data: random crops of the ``train`` split (tools/research/datasets.py) only; every 8th
  train image is held out for validation and threshold calibration.
* Samples (synthesized on the fly, one DataLoader worker): ~17 % clean, ~13 %
  restoration-like (clean or degraded-then-restored images: mild smoothing,
  bilateral / non-local-means on clean crops, gamma changes, noisy → NLM, dark →
  adaptive gamma; labelled with their *residual* degradation, ≈ clean), ~70 %
  degraded with 1–3 degradations (a third of those are the MiO combinations),
  half at MiO strengths (tools.util.synthesis.sample_params) and half from wider
  ranges (weaker and stronger). Camera-like variants (``realistic.py``): 40 % of
  noise is camera noise (raw mosaic, shot + read noise, demosaic, sharpening), 15 %
  correlated noise; 45 % of JPEGs are web JPEGs (chroma subsampling, resized after
  compression or saved twice); 12 % of samples start from a cartoon-like crop.
* Severity targets (:func:`severity_targets`), all clipped to [0, 1]:

  ============== ==========================================================================
  noise          (σ_eff / 55)^0.65, σ_eff = measured std of the added noise on the 0–255 scale
                 (present from σ_eff ≈ 4.5; Gaussian σ 20–50 → 0.52–0.94)
  jpeg           ((95 − q) / 90)^2 (q 30 → 0.52, q 10 → 0.89, q 60 → 0.15)
  low_light      1.2 · (1 − mean L_after / mean L_before) (γ 0.7 → ≈0.35, γ 0.5 → ≈0.65)
  haze           1.4 · mean(1 − t) · min(1, A / 0.7), t = exp(−β·depth) (β 0.6–1.8 → ≈0.35–0.8)
  motion_blur    (ρ / 8)^0.8, ρ = RMS radius of the blur kernel in pixels (MiO → ≈0.45–0.85)
  defocus_blur   (ρ / 6)^0.8 (disk r 3/4/6 → ≈0.43/0.55/0.75)
  rain           0.9 · sqrt(density·length·intensity / (0.004·40·0.8)) (MiO → ≈0.64–0.9)
  low_resolution log2(f) / 3 for an image upsampled back by factor f (×2 → 0.33, ×4 → 0.67);
                 a *small* image is judged as the network sees it: images with a short side
                 under 96 px are bicubic-upsampled to 96 before cropping, and labelled by that
                 factor. Pixel count itself is handled by a size prior in tools/perception/rules.py.
  ============== ==========================================================================

  A degradation counts as present (presence label) when its target is ≥ 0.2.
* Loss: BCE on the presence logits + 3 · soft-target BCE on the severities (see :func:`loss_fn`).
* Resumable: model, optimizer, step, elapsed time and RNG states are saved to
  ``<work>/state.pt`` every ``--save-every`` seconds (atomically) and loaded on start.
  The data stream of a resumed run is re-seeded from (seed, step).
* At the end (or alone, ``--calibrate-only STATE.pt``): calibration of the per-type
  presence thresholds (:func:`calibrate_images`: image level, through the whole
  assess pipeline, on the held-out train images; the raw-severity threshold that
  maximizes F1, separately for small images) and export of an inference
  checkpoint (weights in float16 + thresholds + metadata) to ``--out``, with a
  JSON sidecar of the calibration.
* The shipped checkpoint: 24 min from scratch with an L1 severity loss (five
  severity outputs collapsed to 0 under it), then 20 min warm-started from that
  state (``--init``) with the current loss, then 70 min warm-started again with the
  camera-like data (``--init … --lr 1e-3 --minutes 70``), then 50 min more from that
  state with another data stream (``--init … --lr 5e-4 --minutes 50 --seed S``, S ≠ 0;
  the run's log did not keep which); 2,269 + 3,407 + 17,162 + 12,727 steps of batch 48.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from restoreagent.checkpoints import REPO
from restoreagent.tools.nets.assessor import CROP, DEGRADATIONS, AssessorNet
from restoreagent.tools.research.datasets import load_rgb, random_crop, split_files
from restoreagent.tools.research.training import realistic as real
from restoreagent.tools.util import synthesis as syn

IDX = {k: i for i, k in enumerate(DEGRADATIONS)}
N = len(DEGRADATIONS)



# -- severity targets ---------------------------------------------------------------
def _lum(rgb: np.ndarray) -> float:
    return float((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).mean())


def kernel_rms_radius(k: np.ndarray) -> float:
    h, w = k.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    k = k / k.sum()
    cy, cx = (k * yy).sum(), (k * xx).sum()
    return float(np.sqrt((k * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum()))


def noise_severity(sigma_255: float) -> float:
    return float(np.clip((max(sigma_255, 0.0) / 55.0) ** 0.65, 0, 1))


def jpeg_severity(q: float) -> float:
    return float(np.clip((95.0 - q) / 90.0, 0, 1) ** 2)


def lowlight_severity(lum_before: float, lum_after: float) -> float:
    return float(np.clip(1.2 * (1.0 - lum_after / max(lum_before, 1e-4)), 0, 1))


def haze_severity(mean_one_minus_t: float) -> float:
    return float(np.clip(1.4 * mean_one_minus_t, 0, 1))


def motion_severity(rho: float) -> float:
    return float(np.clip(rho / 8.0, 0, 1) ** 0.8)


def defocus_severity(rho: float) -> float:
    return float(np.clip(rho / 6.0, 0, 1) ** 0.8)


def rain_severity(density: float, length: float, intensity: float) -> float:
    return float(np.clip(0.9 * math.sqrt(density * length * intensity / (0.004 * 40 * 0.8)), 0, 1))


def lowres_severity(factor: float) -> float:
    return float(np.clip(math.log2(max(factor, 1.0)) / 3.0, 0, 1))


def apply_with_target(name: str, rgb: np.ndarray, params: dict[str, Any], rng: np.random.Generator
                      ) -> tuple[np.ndarray, float]:
    """Apply one degradation (as tools.util.synthesis.apply, same RNG use) and return its severity target.

    For low_resolution the target is that of the factor (the image returned is the small one)."""
    if name == "rain" and ("density" in params or "intensity" in params):
        d, it = params.get("density", 0.004), params.get("intensity", 0.8)
        out = syn.add_rain(rgb, params["length"], params["angle"], np.random.default_rng(params["rain_seed"]),
                           density=d, intensity=it)
    else:
        out = syn.apply(name, rgb, params, rng)
    if name == "noise":
        sev = noise_severity(float(np.std(out - rgb)) * 255.0)
    elif name == "jpeg":
        sev = jpeg_severity(params["quality"])
    elif name == "low_light":
        sev = lowlight_severity(_lum(rgb), _lum(out))
    elif name == "haze":
        depth = syn.pseudo_depth(*rgb.shape[:2], np.random.default_rng(params["depth_seed"]))
        sev = haze_severity(float(np.mean(1 - np.exp(-params["beta"] * depth))) * min(1.0, params["airlight"] / 0.7))
    elif name == "motion_blur":
        sev = motion_severity(kernel_rms_radius(syn.line_kernel(2 * params["radius"] + 1, params["angle"], params["sigma"])))
    elif name == "defocus_blur":
        sev = defocus_severity(kernel_rms_radius(syn.disk_kernel(params["radius"])))
    elif name == "rain":
        sev = rain_severity(params.get("density", 0.004), params["length"], params.get("intensity", 0.8))
    else:
        sev = lowres_severity(params["factor"])
    return out, sev


def degrade_with_targets(rgb: np.ndarray, combo, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Exactly :func:`tools.util.synthesis.degrade` (same parameters, same output) plus severity targets."""
    rng = np.random.default_rng(seed)
    out = np.asarray(rgb, np.float32)
    targets: dict[str, float] = {}
    for name in syn.SYNTHESIS_ORDER:
        if name in combo:
            params = syn.sample_params(name, rng)
            out, targets[name] = apply_with_target(name, out, params, rng)
    return out, targets


# -- wider-than-MiO parameter ranges ------------------------------------------------
def wide_params(name: str, rng: np.random.Generator) -> dict[str, Any]:
    if name == "noise":
        if rng.random() < 0.6:
            return {"kind": "gaussian", "sigma": float(rng.uniform(3, 60))}
        return {"kind": "poisson", "scale": float(rng.uniform(0.3, 4))}
    if name == "jpeg":
        return {"quality": int(rng.integers(5, 75))}
    if name == "low_light":
        kind = ("gamma", "shift", "scale")[int(rng.integers(3))]
        if kind == "gamma":
            return {"kind": kind, "gamma": float(rng.uniform(0.35, 0.95))}
        if kind == "shift":
            return {"kind": kind, "shift": float(rng.uniform(0.02, 0.3))}
        return {"kind": kind, "scale": float(rng.uniform(0.15, 0.9))}
    if name == "haze":
        return {"airlight": float(rng.uniform(0.6, 1.0)), "beta": float(rng.uniform(0.1, 2.5)),
                "depth_seed": int(rng.integers(2**31))}
    if name == "motion_blur":
        return {"radius": int(rng.integers(2, 21)), "sigma": float(rng.uniform(1.0, 10.0)),
                "angle": float(rng.uniform(0, 180))}
    if name == "defocus_blur":
        return {"radius": float(rng.uniform(0.7, 8.0))}
    if name == "rain":
        return {"length": int(rng.integers(8, 46)), "angle": float(rng.uniform(-35, 35)),
                "rain_seed": int(rng.integers(2**31)), "density": float(rng.uniform(0.001, 0.008)),
                "intensity": float(rng.uniform(0.4, 1.0))}
    if name == "low_resolution":
        return {"factor": int(rng.choice([2, 3, 4, 4]))}
    raise ValueError(name)


# -- the network's view of an image ---------------------------------------------------
def upsample_if_small(rgb: np.ndarray, crop: int = CROP) -> tuple[np.ndarray, float]:
    """What the assessor does with images smaller than a crop: bicubic-upsample the short side to
    ``crop``. Returns the image and the upsampling factor (1 if unchanged)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    if s >= crop:
        return rgb, 1.0
    f = crop / s
    out = cv2.resize(rgb, (max(crop, round(w * f)), max(crop, round(h * f))), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0, 1).astype(np.float32), f


_UPSAMPLERS = (cv2.INTER_CUBIC, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4, cv2.INTER_AREA)


def _restoration_op(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A restoration-like operation on an (almost) clean image: its output counts as clean."""
    op = int(rng.integers(6))
    if op == 0:
        return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 0.7)))
    if op == 1:
        return cv2.bilateralFilter(img, 5, float(rng.uniform(0.03, 0.1)), float(rng.uniform(1, 3)))
    if op == 2:
        u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        h = float(rng.uniform(2, 6))
        return cv2.fastNlMeansDenoisingColored(u8, None, h, h, 5, 11).astype(np.float32) / 255.0
    if op == 3:
        return np.power(np.clip(img, 0, 1), float(rng.uniform(0.6, 1.05))).astype(np.float32)
    if op == 4:  # mild unsharp mask
        blur = cv2.GaussianBlur(img, (0, 0), 1.0)
        return np.clip(img + float(rng.uniform(0.2, 0.6)) * (img - blur), 0, 1).astype(np.float32)
    return cv2.medianBlur((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), 3).astype(np.float32) / 255.0


def _apply_realistic(name: str, x: np.ndarray, params: dict[str, Any], rng: np.random.Generator
                     ) -> tuple[np.ndarray, float] | None:
    """Camera noise or a web JPEG instead of the MiO version (tools/research/training/realistic.py), or None."""
    u = rng.random()
    if name == "noise" and u < 0.4:
        noisy, ref = real.camera_noise(x, rng)
        return noisy, noise_severity(float(np.std(noisy - ref)) * 255.0)
    if name == "noise" and u < 0.55:
        sigma = float(rng.uniform(2, 30))
        return real.correlated_noise(x, sigma, rng), noise_severity(sigma)
    if name == "jpeg" and u < 0.45:
        out, visible = real.web_jpeg(x, params["quality"], rng)
        return out, jpeg_severity(params["quality"]) * visible
    return None


def make_sample(images: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training crop (CROP×CROP×3) and its severity targets (8,)."""
    img = images[int(rng.integers(len(images)))]
    if rng.random() < 0.12:  # graphics-like content (see realistic.cartoonize)
        img = real.cartoonize(random_crop(img, min(320, *img.shape[:2]), rng), rng)
    tgt = np.zeros(N, np.float32)
    u = rng.random()
    if u < 0.17:  # clean
        return random_crop(img, CROP, rng).copy(), tgt
    if u < 0.30:  # restoration-like
        kind = int(rng.integers(4))
        x = random_crop(img, 128, rng).astype(np.float32)
        if kind == 0:
            x = _restoration_op(x, rng)
        elif kind == 1:  # noisy → NLM (a classical denoiser): residual ≈ clean
            sigma = float(rng.uniform(8, 45))
            noisy = syn.add_gaussian_noise(x, sigma, rng)
            h = sigma * float(rng.uniform(0.6, 1.0))
            u8 = (noisy * 255 + 0.5).astype(np.uint8)
            x = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 5, 11).astype(np.float32) / 255.0
        elif kind == 2:  # dark → adaptive gamma back to a normal exposure
            g = float(rng.uniform(0.45, 0.8))
            dark = syn.darken(x, g)
            m = float(np.clip(_lum(dark), 1e-3, 0.99))
            x = np.power(dark, np.clip(np.log(float(rng.uniform(0.35, 0.5))) / np.log(m), 0.3, 1.0)).astype(np.float32)
        else:  # dark + noisy → NLM → gamma
            g = float(rng.uniform(0.5, 0.8))
            sigma = float(rng.uniform(8, 35))
            noisy = syn.add_gaussian_noise(syn.darken(x, g), sigma, rng)
            h = sigma * 0.8
            x = cv2.fastNlMeansDenoisingColored((noisy * 255 + 0.5).astype(np.uint8), None, h, h, 5, 11
                                                ).astype(np.float32) / 255.0
            m = float(np.clip(_lum(x), 1e-3, 0.99))
            x = np.power(x, np.clip(np.log(0.42) / np.log(m), 0.3, 1.0)).astype(np.float32)
        y0, x0 = rng.integers(0, 128 - CROP + 1, 2)
        return np.ascontiguousarray(x[y0 : y0 + CROP, x0 : x0 + CROP]), tgt

    # degraded
    if rng.random() < 0.35:
        group = syn.MIO_GROUPS["ABC"[int(rng.integers(3))]]
        combo = group[int(rng.integers(len(group)))]
    else:
        k = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
        combo = tuple(rng.choice(DEGRADATIONS, size=k, replace=False))
    params = {name: (syn.sample_params(name, rng) if rng.random() < 0.5 else wide_params(name, rng)) for name in combo}
    lowres_mode = None
    size = 128
    if "low_resolution" in combo:
        f = params["low_resolution"]["factor"]
        lowres_mode = "back" if rng.random() < 0.6 else "small"
        size = 96 * f if lowres_mode == "back" else int(rng.integers(40, 140)) * f
        size = min(size, 320)
    x = random_crop(img, size, rng).astype(np.float32)
    for name in syn.SYNTHESIS_ORDER:
        if name in combo:
            x, sev = _apply_realistic(name, x, params[name], rng) or apply_with_target(name, x, params[name], rng)
            if name != "low_resolution":
                tgt[IDX[name]] = sev
    if lowres_mode is not None:
        f = params["low_resolution"]["factor"]
        if lowres_mode == "back":
            interp = _UPSAMPLERS[int(rng.integers(len(_UPSAMPLERS)))]
            x = np.clip(cv2.resize(x, (size, size), interpolation=interp), 0, 1).astype(np.float32)
            tgt[IDX["low_resolution"]] = lowres_severity(f)
        else:
            x, up = upsample_if_small(x)
            tgt[IDX["low_resolution"]] = lowres_severity(up)
    if rng.random() < 0.1 and "low_resolution" not in combo:
        # a restoration step applied to a degraded image leaves its degradations in place
        x = _restoration_op(x, rng)
    h, w = x.shape[:2]
    y0, x0 = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
    return np.ascontiguousarray(x[y0 : y0 + CROP, x0 : x0 + CROP]), tgt


class SampleStream(torch.utils.data.IterableDataset):
    def __init__(self, files: list[Path], batch: int, seed: int) -> None:
        self.files, self.batch, self.seed = files, batch, seed

    def __iter__(self):
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        rng = np.random.default_rng(self.seed)
        images = [load_rgb(p) for p in self.files]
        while True:
            xs, ys = zip(*(make_sample(images, rng) for _ in range(self.batch)))
            yield torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.stack(ys))


def split_train_val(clean_dir: Path | None = None) -> tuple[list[Path], list[Path]]:
    files = split_files("train", clean_dir)
    return [p for i, p in enumerate(files) if i % 8 != 3], [p for i, p in enumerate(files) if i % 8 == 3]


def loss_fn(logits: torch.Tensor, sev_logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """BCE on presence + 3 × soft-target BCE on the severities.

    (Soft BCE rather than L1: with most targets 0, an L1 loss drives a sigmoid output to its
    median, 0, where its gradient vanishes — a first run lost five severity heads that way.)"""
    present = (tgt >= 0.2).float()
    return (F.binary_cross_entropy_with_logits(logits, present)
            + 3.0 * F.binary_cross_entropy_with_logits(sev_logits, tgt))


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def calibrate(model: AssessorNet, xs: torch.Tensor, ys: torch.Tensor) -> dict[str, Any]:
    """Per type: the severity-head threshold τ maximizing F1 against the presence labels."""
    model.eval()
    with torch.no_grad():
        sev = torch.cat([model(xs[i : i + 256])[1] for i in range(0, len(xs), 256)]).numpy()
    lab = ys.numpy() >= 0.2
    out: dict[str, Any] = {"thresholds": {}, "f1": {}, "mae": {}}
    for k, name in enumerate(DEGRADATIONS):
        best = (0.0, 0.2)
        for t in np.linspace(0.05, 0.6, 111):
            pred = sev[:, k] >= t
            tp = float((pred & lab[:, k]).sum())
            f1 = 2 * tp / max(1.0, pred.sum() + lab[:, k].sum())
            if f1 > best[0] + 1e-9:
                best = (f1, float(t))
        out["thresholds"][name] = round(best[1], 4)
        out["f1"][name] = round(best[0], 4)
        out["mae"][name] = round(float(np.abs(sev[:, k] - ys.numpy()[:, k]).mean()), 4)
    return out


def _best_threshold(r: np.ndarray, lab: np.ndarray, grid: np.ndarray, th: dict, f1: dict, name: str) -> None:
    if not lab.any():
        return
    f1s = np.array([2 * float(((r >= t) & lab).sum()) / max(1.0, float((r >= t).sum() + lab.sum())) for t in grid])
    best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    th[name] = round(float(grid[best[len(best) // 2]]), 4)
    f1[name] = round(float(f1s.max()), 4)


def calibrate_images(model: AssessorNet, files: list[Path], seeds: int = 2, log=print) -> dict[str, Any]:
    """Image-level calibration on held-out train images, through the full assess pipeline
    (crops, averaging, size prior): per type, the raw-severity threshold τ that maximizes F1.

    Positives/negatives: each image × (the 16 MiO combinations + the 8 single degradations) ×
    ``seeds`` (label = membership of the combination), plus the clean image and
    restoration-like versions of it (all negative). Among thresholds with the best F1, the middle
    of that plateau is taken.
    """
    from restoreagent.tools.perception.assess import SMALL_SIDE, LearnedAssessor

    helper = LearnedAssessor.__new__(LearnedAssessor)
    helper.model, helper.crop = model.eval(), CROP
    import threading

    helper._lock = threading.Lock()
    combos = [*syn.MIO_COMBOS, *((k,) for k in DEGRADATIONS)]
    raws, labels, small = [], [], []
    rng = np.random.default_rng(777)
    for fi, path in enumerate(files):
        img = load_rgb(path)
        cases = [(img, ())] + [(_restoration_op(img, rng), ()) for _ in range(3)]
        for s in range(seeds):
            for ci, combo in enumerate(combos):
                cases.append((degrade_with_targets(img, combo, seed=10_000 * s + 100 * ci + fi)[0], combo))
        for x, combo in cases:
            _, raw = helper.predict(x)
            raws.append(raw)
            labels.append([k in combo for k in DEGRADATIONS])
            small.append(min(x.shape[:2]) <= SMALL_SIDE)
            if "low_resolution" in combo and small[-1]:
                labels[-1][IDX["low_resolution"]] = None  # small after a ×1/4 downscale: the size prior decides
        log(f"calibration image {fi + 1}/{len(files)}")
    raws, small = np.array(raws), np.array(small)
    out: dict[str, Any] = {"thresholds": {}, "f1": {}, "thresholds_small": {}, "f1_small": {}}
    grid = np.linspace(0.02, 0.7, 137)
    for k, name in enumerate(DEGRADATIONS):
        keep = np.array([lab[k] is not None for lab in labels])
        _best_threshold(raws[keep & small, k], np.array([bool(l[k]) for l in labels])[keep & small], grid,
                        out["thresholds_small"], out["f1_small"], name)
        keep &= ~small
        lab = np.array([bool(l[k]) for l, kp in zip(labels, keep) if kp])
        r = raws[keep, k]
        f1s = []
        for t in grid:
            pred = r >= t
            f1s.append(2 * float((pred & lab).sum()) / max(1.0, float(pred.sum() + lab.sum())))
        f1s = np.array(f1s)
        if not lab.any():  # no positives left (e.g. low resolution: all flagged by the size prior)
            continue
        best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
        out["thresholds"][name] = round(float(grid[best[len(best) // 2]]), 4)
        out["f1"][name] = round(float(f1s.max()), 4)
    out["images"] = len(raws)
    return out


def export(model: AssessorNet, calib: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic({"state_dict": state, "degradations": list(DEGRADATIONS), "crop": CROP,
                  "thresholds": calib["thresholds"], "thresholds_small": calib.get("thresholds_small", calib["thresholds"]),
                  "meta": meta}, out)
    out.with_suffix(".json").write_text(json.dumps({**meta, **calib}, indent=1) + "\n")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=25.0, help="total training time budget (over resumes)")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "restoreagent-assessor")
    ap.add_argument("--out", type=Path, default=REPO / "checkpoints" / "assessor.pt")
    ap.add_argument("--clean-dir", type=Path, default=None)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=float, default=120.0, help="seconds between resumable saves")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--calibrate-only", type=Path, default=None, help="calibrate and export this state.pt, no training")
    ap.add_argument("--init", type=Path, default=None, help="start (a fresh run) from this state.pt's weights")
    return ap.parse_args(argv)


def _start(model: AssessorNet, opt: torch.optim.Optimizer, args: argparse.Namespace, state_path: Path) -> tuple[int, float]:
    """(step, elapsed seconds) to go on from: a state to calibrate, the run's own saved state, or fresh."""
    if args.calibrate_only:
        st = torch.load(args.calibrate_only, weights_only=False)
        model.load_state_dict(st["model"])
        return st["step"], st["elapsed"]
    if state_path.is_file():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed at step {st['step']} ({st['elapsed'] / 60:.1f} min)", flush=True)
        return st["step"], st["elapsed"]
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
        print(f"initialized from {args.init}", flush=True)
    return 0, 0.0


def _validation_crops(val_files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """1200 fixed validation crops (the same on every resume)."""
    vrng = np.random.default_rng(12345)
    vimages = [load_rgb(p) for p in val_files]
    vx, vy = zip(*(make_sample(vimages, vrng) for _ in range(1200)))
    return torch.from_numpy(np.stack(vx)).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.stack(vy))


def _train(model: AssessorNet, opt: torch.optim.Optimizer, args: argparse.Namespace, train_files: list[Path],
           step: int, elapsed: float, state_path: Path, vxs: torch.Tensor, vys: torch.Tensor) -> tuple[int, float]:
    """Train until the time budget is spent (cosine learning rate, warm-up), saving resumably on the way."""
    budget = args.minutes * 60.0
    stream = SampleStream(train_files, args.batch, seed=args.seed * 100003 + step)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                         prefetch_factor=4 if args.workers else None)
    t0 = time.time() - elapsed
    last_save = time.time()
    run_loss = None
    for xb, yb in loader:
        elapsed = time.time() - t0
        frac = min(1.0, elapsed / budget)
        lr = args.lr * (0.5 * (1 + math.cos(math.pi * frac))) * min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = max(lr, 1e-5)
        model.train()
        logits, sev = model(xb, severity_logits=True)
        loss = loss_fn(logits, sev, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 50 == 0:
            print(f"step {step} {elapsed / 60:.1f} min loss {run_loss:.4f} lr {lr:.2e}", flush=True)
        done = elapsed >= budget
        if done or time.time() - last_save > args.save_every:
            _save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                          "torch_rng": torch.get_rng_state()}, state_path)
            last_save = time.time()
            model.eval()
            with torch.no_grad():
                vl = loss_fn(*model(vxs[:400], severity_logits=True), vys[:400]).item()
            print(f"saved step {step}; val loss {vl:.4f}", flush=True)
        if done:
            break
    return step, elapsed


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    train_files, val_files = split_train_val(args.clean_dir)
    torch.manual_seed(args.seed)
    model = AssessorNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    state_path = args.work / "state.pt"
    step, elapsed = _start(model, opt, args, state_path)
    vxs, vys = _validation_crops(val_files)
    if args.calibrate_only:
        model.eval()
    else:
        step, elapsed = _train(model, opt, args, train_files, step, elapsed, state_path, vxs, vys)
    calib_and_export(model, vxs, vys, val_files, train_files, step, elapsed, args)


def calib_and_export(model, vxs, vys, val_files, train_files, step, elapsed, args) -> None:
    crop_calib = calibrate(model, vxs, vys)
    calib = calibrate_images(model, val_files)
    # types without image-level positives keep their crop-level threshold
    thresholds = {k: calib["thresholds"].get(k, crop_calib["thresholds"][k]) for k in DEGRADATIONS}
    calib = {"thresholds": thresholds, "f1": calib["f1"],
             "thresholds_small": {k: calib["thresholds_small"].get(k, thresholds[k]) for k in DEGRADATIONS},
             "f1_small": calib["f1_small"], "calibration_images": calib["images"],
             "crop_f1": crop_calib["f1"], "mae": crop_calib["mae"], "crop_thresholds": crop_calib["thresholds"]}
    meta = {"arch": "AssessorNet", "params": sum(p.numel() for p in model.parameters()), "steps": step,
            "minutes": round(elapsed / 60, 1), "batch": args.batch, "train_images": len(train_files),
            "val_images": len(val_files), "val_crops": len(vxs)}
    export(model, calib, meta, args.out)
    print(json.dumps({**meta, **calib}), flush=True)


if __name__ == "__main__":
    main()
