"""Fit the constants of the assessor's hand rules (:mod:`restoreagent.tools.perception.rules`) on the train split.

``python -m restoreagent.tools.research.training.assessor_rules detail|low-light-veto [--clean DIR]``
prints the constants as ``rules.py`` ships them, with the F1 they reach on the cases they were fitted on.
Each grid search takes the middle of the best plateau (:func:`plateau`), not a lone spike.

**detail** — the small-image blur reading (:func:`~restoreagent.tools.perception.rules.small_image_blur`).
Under a minute; prints ``DETAIL_DEFOCUS``, ``DETAIL_MOTION``, ``DETAIL_ANISOTROPY`` and ``DETAIL_SLOPE``
with the summed F1 they reach.

The cases: every ``train`` image ×1/4 (bicubic) alone, after defocus (radius 3, 4, 6), motion, haze +
motion, haze, rain, and followed by noise or JPEG, all with MiO parameters. The three thresholds maximise
F1(defocus) + F1(motion) of the reading *alone*, averaged over each grid point's neighbours (the middle of
the best plateau): on the images it was trained on the network reads these blurs far better than on
held-out ones (defocus F1 0.88 against 0.57), so fitting the combination here would undervalue the
reading. The slope maps the median defocus and motion case onto their median severity targets.

**low-light-veto** — the low-light veto under noise
(:func:`~restoreagent.tools.perception.rules.trusts_network_low_light`). About 30 s; prints ``NOISY_VETO``
and ``NOISY_JPEG_VETO`` with the low-light F1 they reach.

The cases: every ``train`` image clean, and under each of the 16 MiO combinations plus dark + noise +
JPEG (a phone's night photo, not among MiO's), with MiO parameters. The two thresholds maximise the
low-light F1 of the assessor's final reading, averaged over each grid point's neighbours (the middle of
the best plateau).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from restoreagent.tools.perception import rules
from restoreagent.tools.perception.assess import load_learned
from restoreagent.tools.perception.report import PRESENT
from restoreagent.tools.research.datasets import default_clean_dir, load_rgb, split_files
from restoreagent.tools.research.training.assessor import apply_with_target, degrade_with_targets
from restoreagent.tools.util import synthesis as syn


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(1.0, float(pred.sum() + truth.sum()))


def plateau(scores: np.ndarray) -> tuple[int, ...]:
    """Index of the best score averaged over each point's grid neighbours (edges: those that exist).

    A lone spike on a grid of thresholds is usually luck of the fitting set; the middle of a broad
    plateau is not.
    """
    padded = np.pad(scores, 1, constant_values=np.nan)
    windows = [padded[tuple(slice(1 + d, 1 + d + n) for d, n in zip(shift, scores.shape))]
               for shift in itertools.product((-1, 0, 1), repeat=scores.ndim)]
    return np.unravel_index(int(np.nanargmax(np.nanmean(windows, axis=0))), scores.shape)


# -- detail: the small-image blur reading ------------------------------------------------------------
#: Small cases: degradations applied before the ×1/4 downscale, then after it.
SMALL_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sharp": ((), ()), "defocus3": (("defocus3",), ()), "defocus4": (("defocus4",), ()),
    "defocus6": (("defocus6",), ()), "motion": (("motion_blur",), ()), "haze_motion": (("haze", "motion_blur"), ()),
    "haze": (("haze",), ()), "rain": (("rain",), ()), "rain_noise": (("rain",), ("noise",)),
    "noise": ((), ("noise",)), "jpeg": ((), ("jpeg",)),
}
GRID_DEFOCUS = np.round(np.arange(0.80, 1.001, 0.01), 2)
GRID_MOTION = np.round(np.arange(0.50, 0.801, 0.02), 2)
GRID_ANISOTROPY = np.round(np.arange(0.55, 0.801, 0.02), 2)


def small_cases(images: list[np.ndarray], assessor) -> list[dict]:
    rows = []
    for i, img in enumerate(images):
        rng = np.random.default_rng(10_000 + i)
        for case, (before, after) in SMALL_CASES.items():
            x, target = img, {"defocus_blur": 0.0, "motion_blur": 0.0}
            for name in before:
                if name.startswith("defocus"):
                    x, target["defocus_blur"] = apply_with_target("defocus_blur", x, {"radius": int(name[-1])}, rng)
                else:
                    x, t = apply_with_target(name, x, syn.sample_params(name, rng), rng)
                    target[name] = t
            x = syn.downscale(x)
            for name in after:
                x = syn.apply(name, x, syn.sample_params(name, rng), rng)
            report = assessor(x)
            # Read again at full precision: the report's measures are rounded, and the plateau is flat
            # enough that rounding moves the fitted thresholds.
            rows.append({"case": case, "detail": rules.directional_detail(x), "target": target,
                         "veto": max(report.degradations["noise"], report.degradations["jpeg"]) >= PRESENT})
    return rows


def fit_small(rows: list[dict]) -> dict[str, float]:
    dmin = np.array([r["detail"][0] for r in rows])
    dmax = np.array([r["detail"][1] for r in rows])
    veto = np.array([r["veto"] for r in rows])
    is_defocus = np.array([r["case"].startswith("defocus") for r in rows])
    is_motion = np.array([r["case"] in ("motion", "haze_motion") for r in rows])
    scores = np.zeros((len(GRID_DEFOCUS), len(GRID_MOTION), len(GRID_ANISOTROPY)))
    for (a, t1), (b, t2), (c, t3) in itertools.product(*map(enumerate, (GRID_DEFOCUS, GRID_MOTION, GRID_ANISOTROPY))):
        line = dmin < t3 * dmax
        scores[a, b, c] = (f1(~veto & ~line & (dmax < t1), is_defocus) + f1(~veto & line & (dmin < t2), is_motion))
    a, b, c = plateau(scores)
    t1, t2, t3 = GRID_DEFOCUS[a], GRID_MOTION[b], GRID_ANISOTROPY[c]
    # Severity per unit of detail below the threshold: medians of the blurred cases onto their targets.
    slopes = []
    for mask, reading, t, name in ((is_defocus, dmax, t1, "defocus_blur"), (is_motion, dmin, t2, "motion_blur")):
        below = mask & (reading < t)
        targets = np.array([r["target"][name] for r, m in zip(rows, below) if m])
        slopes.append((np.median(targets) - PRESENT) / np.median(t - reading[below]))
    return {"DETAIL_DEFOCUS": float(t1), "DETAIL_MOTION": float(t2), "DETAIL_ANISOTROPY": float(t3),
            "DETAIL_SLOPE": round(float(np.mean(slopes)), 1), "f1_sum": float(scores[a, b, c])}


# -- low-light-veto: trusting the network's low-light reading under noise ----------------------------
#: MiO's combinations and a dark photo that was both noisy and compressed.
COMBOS: list[tuple[str, ...]] = [*syn.MIO_COMBOS, ("noise", "jpeg", "low_light")]
#: Seeds apart from the held-out evaluation's (1000·combination + image).
SEED = 777_777
GRID_VETO = np.round(np.arange(0.0, 0.401, 0.02), 2)


def veto_cases(images: list[np.ndarray], assessor) -> list[dict]:
    """The assessor's report on every case, and whether the case is dark."""
    rows = [{"report": assessor(img), "dark": False} for img in images]
    for ci, combo in enumerate(COMBOS):
        for ii, img in enumerate(images):
            degraded, _ = degrade_with_targets(img, combo, seed=SEED + 1000 * ci + ii)
            rows.append({"report": assessor(degraded), "dark": "low_light" in combo})
    return rows


def fit_veto(rows: list[dict]) -> dict[str, float]:
    truth = np.array([r["dark"] for r in rows])
    # Each case reads dark or not depending only on whether the network is trusted: read both once.
    dark_if = {trust: np.array([PRESENT <= rules.apply_low_light_rule(r["report"], trust).degradations["low_light"]
                                for r in rows]) for trust in (False, True)}
    scores = np.zeros((len(GRID_VETO), len(GRID_VETO)))
    for (a, noisy), (b, noisy_jpeg) in itertools.product(enumerate(GRID_VETO), repeat=2):
        trusted = np.array([rules.trusts_network_low_light(r["report"], noisy, noisy_jpeg) for r in rows])
        scores[a, b] = f1(np.where(trusted, dark_if[True], dark_if[False]), truth)
    a, b = plateau(scores)
    return {"NOISY_VETO": float(GRID_VETO[a]), "NOISY_JPEG_VETO": float(GRID_VETO[b]), "f1": round(float(scores[a, b]), 4),
            "f1_without_veto": round(float(scores[0, 0]), 4)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rule", choices=("detail", "low-light-veto"))
    ap.add_argument("--clean", type=Path, default=None, help="clean images (default: ../shared/data/clean)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    images = [load_rgb(p) for p in split_files("train", args.clean or default_clean_dir())]
    if args.rule == "detail":
        print(f"{len(images)} train images")
        print(fit_small(small_cases(images, load_learned())))
    else:
        print(f"{len(images)} train images, {len(COMBOS)} combinations and clean")
        print(fit_veto(veto_cases(images, load_learned())))


if __name__ == "__main__":
    main()
