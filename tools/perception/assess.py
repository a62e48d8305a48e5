"""Degradation assessment: which degradations an image has, and how strong.

Two assessors behind one interface, :func:`assess` (image → :class:`Assessment`):

**Learned (default, ``assessornet-v1``)** — our compact CNN
(:class:`tools.nets.assessor.AssessorNet`, trained by ``tools/research/training/assessor.py``,
weights in ``checkpoints/assessor.pt``) gives, for each of the eight degradations,
a presence probability and a severity in [0, 1]:

* the image (H×W×3 float in [0, 1]) is bicubic-upsampled if its short side is
  under 96 px (so a tiny image shows its interpolation traces, as in training),
  then up to 8 crops of 96×96 on an even grid are scored and averaged; haze, a property
  of the whole scene, is also read on the photo scaled to a short side of
  :data:`SCENE_SIDE` (256 px) and the larger reading counts;
* each severity is mapped through its calibrated threshold τ (validation F1
  maximum on held-out train images, see ``checkpoints/assessor.json``) by the
  piecewise-linear map τ ↦ :data:`PRESENT` (0.2), 0 ↦ 0, 1 ↦ 1, so that
  ``severity ≥ PRESENT`` means "present" for every degradation; small images
  (short side ≤ :data:`SMALL_SIDE`) have their own thresholds, calibrated on the small
  calibration images: a blur or rain applied before a ×1/4 downscale is 4× smaller
  in the pixels the network sees;
* low light combines two readings (:func:`apply_low_light_rule`): the exposure measure
  :func:`lowlight_from_luminance` (mean luminance 0.42 → 0, 0.12 → 1, as in the
  rule-based assessor) and the network's own low-light output
  (``measures["low_light_learned"]``). The exposure alone calls every naturally dark
  photo (a night street, a dark-haired portrait) underexposed; the network tells those
  apart but under-reads darkness under noise (the noise masks it: 0.22 → 0.54 on the
  test mixture once denoised). So the network may veto a moderate exposure reading
  (severity < :data:`SURELY_DARK`) when the photo was noise-free, and under noise only
  where it reads the photo as clearly not dark (:func:`trusts_network_low_light`); the graph
  makes that choice once, on the input photo, and keeps it for the run (a dark noisy photo
  stays dark after denoising);
* low resolution: the CNN judges *content* (missing detail, interpolation
  traces of an upsampled image); pixel count is a documented size prior relative
  to the short side a photo should have, ``full_resolution_side`` R (default 512;
  the benchmark passes its crop size): ``clip(log2(R / short side) / 3, 0, 1)``, the
  severity scale of an upsampled image (R → 0, 0.66·R → 0.2, so below 338 px by default;
  R/2 → 0.33, R/4 → 0.67, ≤ R/8 → 1), and the
  reported severity is the maximum of the two. Small images (short side ≤ 179 px,
  as calibrated) use the thresholds calibrated on small images;
* blur in a small image is also read from its fine detail per direction
  (:func:`add_small_image_blur`): a blur applied before a ×1/4 downscale is under a pixel
  wide afterwards, too faint for the network, but it still evens out the finest detail,
  every way (defocus) or along one direction (motion).

**Rule-based fallback (``heuristic-v1``)** — used when the checkpoint is missing
or unreadable (``assessor`` then says so): fast signal measures mapped to a
severity, calibrated on Kodak24/CBSD68 crops synthesized with tools.util.synthesis:

* noise — the blind σ estimate the denoisers use (:func:`tools.perception.noise_sigma.estimate_sigma`);
* jpeg — 8×8 blockiness: the strongest column/row phase of the gradient
  against the median phase (≈1.0–1.1 on clean images, 1.3–3.5 after JPEG q10–30);
* low_light — mean luminance below that of ordinary exposures;
* the other five degradations read 0 (it cannot see them).

Both report ``quality`` = 1 − RMS severity over the eight degradations, and raw
signal ``measures``: the rule-based ones (σ, blockiness, mean luminance; with
the learned assessor σ and blockiness are read on the central ≤ 256×256 region
to stay cheap), the learned presence probabilities ``p_<name>``, and NIQE
(:func:`niqe`, our implementation) when its pristine parameters
(``niqe_pris_params``) resolve through :class:`tools.weights.WeightsResolver`
(``RESTOREAGENT_WEIGHTS_DIR``, or the ``weights_dir`` argument); without them
NIQE is omitted.

The observe node re-runs the assessor after every step: the residual
severities and ``quality`` decide accept or roll back.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.perception.niqe import niqe, niqe_params
from restoreagent.tools.perception.noise_level import load_noise_level
from restoreagent.tools.perception.report import ASSESSOR, PRESENT, Assessment, as_rgb, luminance, make_report
from restoreagent.tools.perception.rules import (
    FULL_RESOLUTION_SIDE,
    add_small_image_blur,
    apply_low_light_rule,
    rule_based_assess,
    rule_measures,
    size_prior,
    trusts_network_low_light,
)

DEFAULT_CHECKPOINT = checkpoint_file("assessor.pt")
MAX_CROPS = 8
#: Short side (px) up to which the small-image thresholds apply (how they were calibrated).
SMALL_SIDE = 179
#: Short side (px) of the second, scene-scale reading of a larger photo: the crop size of the
#: planner's training cases and of the benchmark.
SCENE_SIDE = 256
#: Degradations of the whole scene, read at both scales (the larger reading counts).
SCENE_SCALE = ("haze",)



def calibrate_severity(s: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Piecewise-linear: 0 → 0, τ → PRESENT, 1 → 1."""
    tau = np.clip(tau, 1e-3, 1 - 1e-3)
    low = PRESENT * s / tau
    high = PRESENT + (1 - PRESENT) * (s - tau) / (1 - tau)
    return np.clip(np.where(s < tau, low, high), 0.0, 1.0)


def crop_grid(h: int, w: int, crop: int, n: int = MAX_CROPS) -> list[tuple[int, int]]:
    """Top-left corners of up to ``n`` crops spread evenly over an H×W image (H, W ≥ crop)."""
    rows, cols = (2, 4) if w >= h else (4, 2)
    if n < 8:
        rows, cols = (1, n) if w >= h else (n, 1)
    ys = np.linspace(0, h - crop, rows).round().astype(int)
    xs = np.linspace(0, w - crop, cols).round().astype(int)
    return list(dict.fromkeys((int(y), int(x)) for y in ys for x in xs))


class LearnedAssessor:
    """AssessorNet with its calibration; call it on an RGB float image."""

    def __init__(self, checkpoint: Path) -> None:
        import torch

        from restoreagent.tools.nets.assessor import AssessorNet

        ckpt = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
        self.names = tuple(ckpt["degradations"])
        self.crop = int(ckpt["crop"])
        self.tau = np.array([ckpt["thresholds"][k] for k in self.names], np.float32)
        small = ckpt.get("thresholds_small", ckpt["thresholds"])
        self.tau_small = np.array([small[k] for k in self.names], np.float32)
        self.model = AssessorNet(n=len(self.names))
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
        self.model.eval()
        self.model.fuse_batchnorm()
        self.path = Path(checkpoint)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assessor")

    def _crops(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        s = min(h, w)
        if s < self.crop:
            f = self.crop / s
            rgb = np.clip(cv2.resize(rgb, (max(self.crop, round(w * f)), max(self.crop, round(h * f))),
                                     interpolation=cv2.INTER_CUBIC), 0, 1)
            h, w = rgb.shape[:2]
        c = self.crop
        return np.stack([rgb[y : y + c, x : x + c] for y, x in crop_grid(h, w, c)])

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (presence probabilities, severities) averaged over the crops.

        A photo larger than :data:`SCENE_SIDE` is also read scaled down to it, in the same
        batch, and the :data:`SCENE_SCALE` degradations take the larger of the two readings:
        a 96-px crop of a large photo sees too little of the scene to judge haze (held-out
        MiO mixtures at full size: haze recall 0.88 → 0.95, precision unchanged).
        """
        import torch

        h, w = rgb.shape[:2]
        crops = self._crops(rgb)
        n = len(crops)
        if min(h, w) > SCENE_SIDE:
            f = SCENE_SIDE / min(h, w)
            scene = cv2.resize(rgb, (max(SCENE_SIDE, round(w * f)), max(SCENE_SIDE, round(h * f))),
                               interpolation=cv2.INTER_AREA)
            crops = np.concatenate([crops, self._crops(scene)])
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
        with self._lock, torch.inference_mode():
            logits, sev = self.model(x)
        prob, sev = torch.sigmoid(logits).numpy(), sev.numpy()
        p, r = prob[:n].mean(0), sev[:n].mean(0)
        if len(crops) > n:
            for k in (self.names.index(name) for name in SCENE_SCALE if name in self.names):
                p[k], r[k] = max(p[k], prob[n:, k].mean()), max(r[k], sev[n:, k].mean())
        return p, r

    def __call__(self, rgb: np.ndarray, weights_dir: Path | None = None,
                 full_resolution_side: int = FULL_RESOLUTION_SIDE) -> Assessment:
        rgb = as_rgb(rgb)
        # The network runs beside the signal measures (torch, OpenCV and NumPy release the GIL), on
        # one worker: on two cores a third busy thread only slows the others. NIQE queues behind the
        # network, and the calling thread takes it over if it is still waiting once the signal
        # measures are done (256²: 31 → 25 ms per assessment, paid again after every step).
        network = self._pool.submit(self.predict, rgb)
        params = niqe_params(weights_dir)
        quality = self._pool.submit(niqe, rgb, *params) if params is not None else None
        h, w = rgb.shape[:2]
        cy, cx = max(0, (h - 256) // 2), max(0, (w - 256) // 2)
        measures = rule_measures(rgb[cy : cy + 256, cx : cx + 256])
        measures["mean_luminance"] = round(float(luminance(rgb).mean()), 4)
        if quality is not None:
            try:
                measures["niqe"] = round(niqe(rgb, *params) if quality.cancel() else quality.result(), 3)
            except ValueError:  # too small for NIQE
                pass
        prob, raw = network.result()
        prior = size_prior(h, w, full_resolution_side)
        sev = calibrate_severity(raw, self.tau_small if min(h, w) <= SMALL_SIDE else self.tau)
        severities = dict(zip(self.names, map(float, sev)))
        learned_low_light = severities.get("low_light", 0.0)
        severities["low_resolution"] = max(severities.get("low_resolution", 0.0), prior)
        if min(h, w) <= SMALL_SIDE:
            add_small_image_blur(severities, rgb, measures)
        measures["low_resolution_size_prior"] = round(prior, 4)
        measures["low_light_learned"] = round(learned_low_light, 4)
        measures.update({f"p_{k}": round(float(p), 4) for k, p in zip(self.names, prob)})
        level = load_noise_level()
        if level is not None:  # how much FFDNet should gain here, and at which σ (the planner offers denoising from it)
            sigma, gain = level(rgb)
            measures["denoise_sigma_255"], measures["denoise_gain_db"] = round(sigma, 2), round(gain, 3)
        report = make_report(severities, measures, ASSESSOR)
        return apply_low_light_rule(report, trusts_network_low_light(report))  # judged as an input photo


@lru_cache(maxsize=4)
def _load_learned(path: str, mtime_ns: int) -> LearnedAssessor:
    return LearnedAssessor(Path(path))


def checkpoint_path() -> Path:
    env = os.environ.get("RESTOREAGENT_ASSESSOR_CHECKPOINT")
    return Path(env) if env else DEFAULT_CHECKPOINT


def load_learned(checkpoint: Path | str | None = None) -> LearnedAssessor:
    """The learned assessor (cached); raises OSError/RuntimeError/KeyError if the checkpoint is unusable."""
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path()
    return _load_learned(str(path), path.stat().st_mtime_ns)


def assess(rgb: np.ndarray, checkpoint: Path | str | None = None, weights_dir: Path | str | None = None,
           full_resolution_side: int = FULL_RESOLUTION_SIDE) -> Assessment:
    """Assess an H×W×3 float32 image in [0, 1] (learned; rule-based if the checkpoint is unusable).

    ``checkpoint``: default ``RESTOREAGENT_ASSESSOR_CHECKPOINT`` or ``checkpoints/assessor.pt``.
    ``weights_dir``: where to find NIQE's parameters (default ``RESTOREAGENT_WEIGHTS_DIR``).
    ``full_resolution_side``: the short side a photo should have; smaller ones read as low resolution.

    The image is judged as an input photo, which decides whether the network may veto low light
    (:func:`trusts_network_low_light`); :func:`apply_low_light_rule` re-applies another choice, as the
    graph does after each step.
    """
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path()
    try:
        model = load_learned(path)
    except Exception as exc:  # missing or unreadable checkpoint: fall back, and say so
        reason = "checkpoint missing" if not path.is_file() else f"checkpoint unusable: {type(exc).__name__}"
        return rule_based_assess(rgb, note=f"fallback, {reason}: {path.name}")
    return model(rgb, Path(weights_dir) if weights_dir else None, full_resolution_side)


# -- NIQE (our implementation of Mittal et al. 2013, with published pristine parameters) --------


