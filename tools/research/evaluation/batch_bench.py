"""``restoreagent bench-batch``: photos per minute, folder mode against Ray with 1, 2, ... workers.

The same photos, in the same process, one mode after the other, each into a fresh output folder
(nothing is resumed). Ray is started once, with every CPU of this machine, before the Ray rows; its
start-up is reported apart. Each row's time runs from the call to the last result, so it includes
loading the models (once in folder mode, once per actor on Ray); "after the first" leaves the time to
the first result out (model loading, mostly), the rate a long batch approaches.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from pydantic import BaseModel

from restoreagent.batch import restore_many, summary
from restoreagent.graph.configuration import Configuration


class BenchRow(BaseModel):
    mode: str
    workers: int
    threads: int
    photos: int
    restored: int
    seconds: float
    first_result_s: float
    photos_per_minute: float
    after_first_per_minute: float


def _timed(mode: str, count: int, per_worker: int, photos: Sequence[Path], out: Path, **kwargs) -> BenchRow:
    t0 = time.perf_counter()
    first, results = None, []
    for r in restore_many(photos, out, **kwargs):
        first = first or time.perf_counter() - t0
        results.append(r)
    seconds = time.perf_counter() - t0
    return BenchRow(mode=mode, workers=count, threads=per_worker, photos=len(photos),
                    restored=summary(results)["restored"], seconds=round(seconds, 2),
                    first_result_s=round(first or 0.0, 2), photos_per_minute=round(60 * len(photos) / seconds, 2),
                    after_first_per_minute=round(60 * (len(photos) - 1) / max(seconds - (first or 0.0), 1e-9), 2))


def benchmark(photos: Sequence[Path], out_dir: Path, config: Configuration, ray_workers: Sequence[int] = (1, 2),
              threads: int = 1) -> tuple[list[BenchRow], float]:
    """The rows (folder mode with all cores, then Ray with each worker count × ``threads``) and Ray's start-up s."""
    import cv2
    import ray
    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    cv2.setNumThreads(cores)
    rows = [_timed("folder", 1, cores, photos, out_dir / "folder", config=config)]
    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        for n in ray_workers:
            rows.append(_timed("ray", n, threads, photos, out_dir / f"ray-{n}", ray_address="local", config=config,
                               workers=n, threads=threads))
    finally:
        ray.shutdown()
    return rows, round(startup, 2)


def table(rows: Sequence[BenchRow], startup: float) -> str:
    lines = ["| mode | workers × threads | photos | restored | time (s) | first result (s) | photos/min "
             "| photos/min after the first |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.mode} | {r.workers} × {r.threads} | {r.photos} | {r.restored} | {r.seconds:.1f} | "
              f"{r.first_result_s:.1f} | {r.photos_per_minute:.1f} | {r.after_first_per_minute:.1f} |" for r in rows]
    lines.append(f"\nRay start-up (ray.init, not in the rows): {startup:.1f} s.")
    return "\n".join(lines)
