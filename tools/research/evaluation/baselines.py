"""Baseline planners the agent is compared with.

* fixed: MAIR's prior — undo compression first, then imaging degradations,
  then scene degradations — with the best measured tool per task; the exact
  order is :data:`FIXED_ORDER`;
* random: a random order with a random tool per task (seeded);
* all-in-one: one general model for everything (:data:`ALL_IN_ONE`).

All of them are told the true degradations (an advantage the agent does not
have: it must find them itself).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: Compression → imaging (sensor noise, optics, resolution) → scene (weather, light).
FIXED_ORDER: tuple[str, ...] = (
    "jpeg",
    "noise",
    "motion_blur",
    "defocus_blur",
    "low_resolution",
    "rain",
    "haze",
    "low_light",
)

#: General models that treat several degradations at once, best first.
ALL_IN_ONE: tuple[str, ...] = ("jpeg_dncnn3", "sr_realesrgan_compact")


def fixed_pipeline(tasks: Sequence[str], tools_by_task: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The fixed-order plan, with each task's first (best measured) tool."""
    return tuple(tools_by_task[t][0] for t in FIXED_ORDER if t in tasks)


def random_pipeline(
    tasks: Sequence[str], tools_by_task: Mapping[str, Sequence[str]], rng: np.random.Generator
) -> tuple[str, ...]:
    order = list(tasks)
    rng.shuffle(order)
    return tuple(str(rng.choice(list(tools_by_task[t]))) for t in order)


def all_in_one_tool(available: Sequence[str]) -> str | None:
    return next((name for name in ALL_IN_ONE if name in available), None)
