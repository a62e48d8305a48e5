"""Fit the assessor's small-image blur reading (:func:`tools.assess.small_image_blur`).

``python -m restoreagent.tools.training.detail_rule [--clean DIR]`` (under a minute, train split only)
prints the constants ``DETAIL_DEFOCUS``, ``DETAIL_MOTION``, ``DETAIL_ANISOTROPY`` and ``DETAIL_SLOPE`` that
``tools/assess.py`` ships, with the summed F1 they reach on the cases they were fitted on.

The cases: every ``train`` image ×1/4 (bicubic) alone, after defocus (radius 3, 4, 6), motion, haze +
motion, haze, rain, and followed by noise or JPEG, all with MiO parameters. The three thresholds maximise
F1(defocus) + F1(motion) of the reading *alone*, averaged over each grid point's neighbours (the middle of
the best plateau): on the images it was trained on the network reads these blurs far better than on
held-out ones (defocus F1 0.88 against 0.57), so fitting the combination here would undervalue the
reading. The slope maps the median defocus and motion case onto their median severity targets.
"""

from __future__ import annotations

import itertools

import numpy as np

from .. import assess as A
from .. import synthesis as syn
from .assessor import apply_with_target
from .fitting import f1, plateau, train_images

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
            rows.append({"case": case, "detail": A.directional_detail(x), "target": target,
                         "veto": max(report.degradations["noise"], report.degradations["jpeg"]) >= A.PRESENT})
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
        slopes.append((np.median(targets) - A.PRESENT) / np.median(t - reading[below]))
    return {"DETAIL_DEFOCUS": float(t1), "DETAIL_MOTION": float(t2), "DETAIL_ANISOTROPY": float(t3),
            "DETAIL_SLOPE": round(float(np.mean(slopes)), 1), "f1_sum": float(scores[a, b, c])}


def main(argv: list[str] | None = None) -> None:
    images = train_images(argv, __doc__)
    print(f"{len(images)} train images")
    print(fit_small(small_cases(images, A.load_learned())))


if __name__ == "__main__":
    main()
