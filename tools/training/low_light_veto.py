"""Fit the low-light veto under noise (:func:`tools.assess.trusts_network_low_light`).

``python -m restoreagent.tools.training.low_light_veto [--clean DIR]`` (about 30 s, train split only)
prints ``NOISY_VETO`` and ``NOISY_JPEG_VETO`` as ``tools/assess.py`` ships them, with the low-light F1
they reach on the cases they were fitted on.

The cases: every ``train`` image clean, and under each of the 16 MiO combinations plus dark + noise +
JPEG (a phone's night photo, not among MiO's), with MiO parameters. The two thresholds maximise the
low-light F1 of the assessor's final reading, averaged over each grid point's neighbours (the middle of
the best plateau).
"""

from __future__ import annotations

import itertools

import numpy as np

from .. import assess as A
from .. import synthesis as syn
from .assessor import degrade_with_targets
from .fitting import f1, plateau, train_images

#: MiO's combinations and a dark photo that was both noisy and compressed.
COMBOS: list[tuple[str, ...]] = [*syn.MIO_COMBOS, ("noise", "jpeg", "low_light")]
#: Seeds apart from the held-out evaluation's (1000·combination + image).
SEED = 777_777
GRID = np.round(np.arange(0.0, 0.401, 0.02), 2)


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
    dark_if = {trust: np.array([A.PRESENT <= A.apply_low_light_rule(r["report"], trust).degradations["low_light"]
                                for r in rows]) for trust in (False, True)}
    scores = np.zeros((len(GRID), len(GRID)))
    for (a, noisy), (b, noisy_jpeg) in itertools.product(enumerate(GRID), repeat=2):
        trusted = np.array([A.trusts_network_low_light(r["report"], noisy, noisy_jpeg) for r in rows])
        scores[a, b] = f1(np.where(trusted, dark_if[True], dark_if[False]), truth)
    a, b = plateau(scores)
    return {"NOISY_VETO": float(GRID[a]), "NOISY_JPEG_VETO": float(GRID[b]), "f1": round(float(scores[a, b]), 4),
            "f1_without_veto": round(float(scores[0, 0]), 4)}


def main(argv: list[str] | None = None) -> None:
    images = train_images(argv, __doc__)
    print(f"{len(images)} train images, {len(COMBOS)} combinations and clean")
    print(fit_veto(veto_cases(images, A.load_learned())))


if __name__ == "__main__":
    main()
