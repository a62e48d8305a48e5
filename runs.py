"""The run folders under ``Configuration.work_dir``: a bounded history, listed and cleaned.

Every graph run keeps its images in a folder of its own (graph/nodes.py). A one-shot ``restore``
(graph/api.py) then calls :func:`finish_run`: it records the run in ``run.json``, drops the
intermediate images unless ``keep_steps`` asks for them, and removes the oldest one-shot runs beyond
``run_history`` runs or ``run_history_mb`` MB, whichever is reached first. Chat threads' folders have no
``run.json``: undo needs their images, so they stay until removed on purpose
(``restoreagent runs clean --include-other``), as do runs that never finished.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from restoreagent.tools.util.files import atomic_write

RECORD = "run.json"
_STEP_IMAGES = "img-*.png"  # the artifact store's files (graph/store.py)


class RunInfo(BaseModel):
    """One run folder."""

    path: Path
    kind: Literal["restore", "other"]
    finished: float
    bytes: int
    input: str | None = None
    output: str | None = None


def _size(folder: Path) -> int:
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size if f.is_file() else 0
        except FileNotFoundError:  # another process is pruning it
            pass
    return total


def list_runs(work_dir: Path) -> list[RunInfo]:
    """Every run folder in ``work_dir``, newest first."""
    if not work_dir.is_dir():
        return []
    runs = []
    for d in work_dir.iterdir():
        try:
            if not d.is_dir():
                continue
            record = d / RECORD
            if record.is_file():
                meta = json.loads(record.read_text())
                runs.append(RunInfo(path=d, kind="restore", finished=meta["finished"], bytes=_size(d),
                                    input=meta.get("input"), output=meta.get("output")))
            else:
                runs.append(RunInfo(path=d, kind="other", finished=d.stat().st_mtime, bytes=_size(d)))
        except (FileNotFoundError, json.JSONDecodeError, KeyError):  # half-removed or half-written by another process
            continue
    return sorted(runs, key=lambda r: r.finished, reverse=True)


def finish_run(run_dir: Path, *, input: str, output: str, keep_steps: bool, history: int, history_mb: float) -> None:
    """Record a finished one-shot run, drop its step images unless ``keep_steps``, bound the history."""
    if not keep_steps:
        for f in run_dir.glob(_STEP_IMAGES):
            f.unlink(missing_ok=True)
    record = {"input": input, "output": output, "finished": time.time(), "steps_kept": keep_steps}
    atomic_write(run_dir / RECORD, json.dumps(record))
    prune(run_dir.parent, history, history_mb, keep=run_dir)


def prune(work_dir: Path, history: int, history_mb: float, keep: Path | None = None,
          include_other: bool = False) -> list[RunInfo]:
    """Remove the oldest runs beyond ``history`` runs or ``history_mb`` MB (``keep`` always stays); the removed."""
    kept, used, removed = 0, 0, []
    for run in list_runs(work_dir):
        if run.kind == "other" and not include_other:
            continue
        if run.path == keep or (kept < history and used + run.bytes <= history_mb * 1e6):
            kept, used = kept + 1, used + run.bytes
            continue
        shutil.rmtree(run.path, ignore_errors=True)
        removed.append(run)
    return removed
