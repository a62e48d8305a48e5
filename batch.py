"""Many photos: restore folders (or lists) of photos into one output folder, here or on a Ray cluster.

:func:`restore_many` plans the batch, checks it before any model loads, then restores photo after
photo in this process, or on Ray actors (``ray_address``) that each load the toolbox and the assessor
once. Both modes share the plan, the output layout and the resume records, so a batch can move
between them and pick up where it stopped.

Output names: a photo's output is ``OUT/<its subfolder>/<stem>.png``. When photos in one folder share
a stem (``a.jpg``, ``a.png``), the PNG keeps ``a.png`` and the others keep their suffix (``a.jpg.png``);
a name still taken gets ``-2``, ``-3``... A name once given is kept: it is read back from the records.

Resume records: ``OUT/.restoreagent-batch.jsonl``, one JSON line per photo started, restored or
failed, keyed on the input's path relative to its folder plus its size and modification time. A photo
is done when its latest record matches the input as it is now and its output exists (outputs are
written atomically, so an output that exists is whole). A changed input is restored again, over its
own earlier output. A photo that failed on a worker is listed as failed again, not retried, unless
``retry_failed`` (or it changed).

Why plain actors rather than Ray Data: each photo is one path in and one path out, and the batch
needs per-photo retries on *another* worker, per-photo failure records and results streamed to the
driver as they finish (progress, resume records). Ray Data retries whole blocks, hides which worker ran
what, and adds pyarrow to the install.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

from pydantic import BaseModel, Field

from restoreagent.graph.configuration import Configuration
from restoreagent.tools.util.imageio import IMAGE_SUFFIXES as STILL_SUFFIXES

RECORDS = ".restoreagent-batch.jsonl"
IMAGE_SUFFIXES = STILL_SUFFIXES + (".webp", ".gif")
_SR_MAX = 4  # the largest upscaling a tool does


class BatchError(Exception):
    """A batch that cannot start (unwritable output, no space, nothing to do): one line for the user."""


class PhotoJob(BaseModel):
    """One photo to restore."""

    input: Path
    output: Path
    key: str = Field(description="The input's path relative to its folder: the resume key.")
    size: int
    mtime_ns: int
    replace: bool = Field(default=False, description="Write over the output (ours from an earlier run, or --overwrite).")
    output_bytes: int = Field(default=0, description="An upper bound on the result's size (the disk check).")


class PhotoResult(BaseModel):
    """What became of one input."""

    input: Path
    output: Path | None = None
    status: Literal["restored", "done", "skipped", "failed"]
    reason: str = Field(default="", description="Why it was skipped or failed.")
    pipeline: list[str] = Field(default_factory=list)
    quality_before: float | None = None
    quality: float | None = None
    seconds: float | None = None
    attempts: int = 0
    worker: str | None = Field(default=None, description="host:pid of the process that restored it.")


class BatchPlan(BaseModel):
    jobs: list[PhotoJob]
    settled: list[PhotoResult] = Field(description="Inputs decided before any model runs: done, skipped, refused.")


# -- records ---------------------------------------------------------------------------------------------
def read_records(out_dir: Path) -> dict[str, dict]:
    """The latest record per input key (a torn last line, from a killed driver, is ignored)."""
    latest: dict[str, dict] = {}
    path = out_dir / RECORDS
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                latest[rec["input"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return latest


def _append_record(out_dir: Path, job: PhotoJob, status: str, reason: str = "") -> None:
    rec = {"input": job.key, "size": job.size, "mtime_ns": job.mtime_ns,
           "output": job.output.relative_to(out_dir).as_posix(), "status": status, "reason": reason}
    # One short line per write with O_APPEND: whole lines, even with a reader at the same time. A line
    # torn by a killed driver is ended first, so that it cannot swallow the next record.
    with open(out_dir / RECORDS, "a+b") as f:
        line = json.dumps(rec).encode() + b"\n"
        if f.tell():  # "a+" starts at the end
            f.seek(-1, os.SEEK_END)
            line = line if f.read(1) == b"\n" else b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


# -- planning and checks -----------------------------------------------------------------------------------
def _inputs(paths: Sequence[Path], out_dir: Path, recursive: bool) -> tuple[list[tuple[Path, str]], list[PhotoResult]]:
    """(photo, key) pairs and the entries skipped (not images, folders without --recursive). With several
    folders, each one's photos go under its name in ``out_dir``."""
    photos: list[tuple[Path, str]] = []
    skipped: list[PhotoResult] = []
    out_abs = out_dir.resolve()
    for root in paths:
        if not root.exists():
            raise BatchError(f"{root}: no such file or folder")
        if root.is_file():
            entries, base = [root], root.parent
        else:
            entries = sorted(root.rglob("*") if recursive else root.iterdir())
            base = root.parent if len(paths) > 1 else root
        for p in entries:
            if out_abs == p.resolve() or out_abs in p.resolve().parents:
                continue  # our own outputs, when OUT lies inside the input folder
            if p.is_dir():
                if not recursive:
                    skipped.append(PhotoResult(input=p, status="skipped", reason="a folder (pass --recursive)"))
            elif p.name == RECORDS:
                continue
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(PhotoResult(input=p, status="skipped", reason=f"not an image ({p.suffix or 'no suffix'})"))
            else:
                photos.append((p, p.relative_to(base).as_posix()))
    keys: dict[str, Path] = {}
    for p, key in photos:
        if keys.setdefault(key, p) != p:
            raise BatchError(f"{keys[key]} and {p} would share the output {key}: restore them into separate folders")
    return photos, skipped


def _preferred_names(keys: list[str]) -> dict[str, str]:
    """Output path (relative) per input key, by the rule in the module docstring."""
    by_stem: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        k = Path(key)
        by_stem.setdefault((k.parent.as_posix(), k.stem.casefold()), []).append(key)
    names = {}
    for group in by_stem.values():
        for key in group:
            k = Path(key)
            keeps_stem = len(group) == 1 or k.suffix.lower() == ".png"
            names[key] = (k.parent / (f"{k.stem}.png" if keeps_stem else f"{k.name}.png")).as_posix()
    return names


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.casefold() in taken:  # case-insensitive file systems
        n += 1
        candidate = f"{name[:-4]}-{n}.png"
    taken.add(candidate.casefold())
    return candidate


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write a probe file in it; raise BatchError naming ``folder``."""
    if folder.exists() and not folder.is_dir():
        raise BatchError(f"{folder} is a file; the output must be a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BatchError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def check_space(folder: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise BatchError(f"not enough space in {folder}: the results need up to {need_bytes / 1e6:,.0f} MB, "
                         f"{free / 1e6:,.0f} MB free")


def output_bytes(width: int, height: int, full_side: int) -> int:
    """An upper bound on one result's PNG: raw 8-bit RGBA (a PNG of a photo is smaller), at the size
    the agent may upscale to (photos with a short side below ``full_side``, at most ×4)."""
    scale = min(_SR_MAX, math.ceil(full_side / min(width, height)))
    return width * height * 4 * max(1, scale) ** 2


def plan_batch(paths: Sequence[Path], out_dir: Path, *, recursive: bool = False, overwrite: bool = False,
               retry_failed: bool = False, config: Configuration | None = None) -> BatchPlan:
    """Decide every input before any model loads: what to restore where, what is done, what is refused.

    Raises :class:`BatchError` when the output folder cannot be written or lacks the space.
    """
    from restoreagent.tools.util.imageio import ImageError, read_size

    config = config or Configuration.from_env()
    # Absolute: Ray workers run in folders of their own, on other nodes.
    out_dir, paths = out_dir.absolute(), [p.absolute() for p in paths]
    check_writable(out_dir)
    photos, settled = _inputs(paths, out_dir, recursive)
    if not photos and not settled:
        raise BatchError(f"{', '.join(map(str, paths))}: no images found")
    records = read_records(out_dir)
    taken = {r["output"].casefold() for r in records.values()}
    preferred = _preferred_names([key for _, key in photos])
    jobs: list[PhotoJob] = []
    for path, key in photos:
        stat = path.stat()
        rec = records.get(key)
        same = rec is not None and (rec["size"], rec["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
        name = rec["output"] if rec else _unique(preferred[key], taken)
        target = out_dir / name
        if same and target.is_file():
            settled.append(PhotoResult(input=path, output=target, status="done"))
            continue
        if same and rec["status"] == "failed" and not retry_failed:
            settled.append(PhotoResult(input=path, status="failed",
                                       reason=f"failed in an earlier run: {rec['reason']} (pass --retry-failed)"))
            continue
        if target.exists() and rec is None and not overwrite:
            settled.append(PhotoResult(input=path, output=target, status="skipped",
                                       reason=f"{target} exists (pass --overwrite to replace it)"))
            continue
        try:
            w, h = read_size(path, config.max_pixels)
        except ImageError as exc:
            settled.append(PhotoResult(input=path, status="failed", reason=str(exc)))
            continue
        jobs.append(PhotoJob(input=path, output=target, key=key, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                             replace=overwrite or rec is not None,
                             output_bytes=output_bytes(w, h, config.full_resolution_side)))
    check_space(out_dir, sum(j.output_bytes for j in jobs))
    return BatchPlan(jobs=jobs, settled=settled)


# -- restoring ---------------------------------------------------------------------------------------------
class Restorer:
    """A graph built once (toolbox, assessor, verifier) that restores one job at a time."""

    def __init__(self, config: Configuration, brain: str | None = None, registry: Any = None) -> None:
        from restoreagent.graph.brains.factory import make_brain
        from restoreagent.graph.graph import build_graph
        from restoreagent.graph.toolbox import Toolbox
        from restoreagent.tools import default_registry

        self.config = config
        self.toolbox = Toolbox(registry or default_registry, config)
        self.graph = build_graph(config, toolbox=self.toolbox, brain=make_brain(brain))
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, job: PhotoJob) -> PhotoResult:
        from restoreagent.graph.api import restore
        from restoreagent.tools.util.imageio import ImageError

        if not os.access(job.input, os.R_OK):
            return PhotoResult(input=job.input, status="failed", worker=self.name,
                               reason=f"{job.input} cannot be read on {self.name}: inputs and outputs must be on "
                               "storage that every node sees")
        try:
            r = restore(job.input, job.output, overwrite=job.replace, config=self.config, graph=self.graph)
        except (ImageError, OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return PhotoResult(input=job.input, status="failed", reason=reason, worker=self.name)
        return PhotoResult(input=job.input, output=job.output, status="restored",
                           pipeline=[s.tool for s in r.accepted_steps], quality_before=r.quality_before,
                           quality=r.quality, seconds=round(sum(s.seconds for s in r.steps), 2), worker=self.name)


def restore_many(
    paths: Path | Sequence[Path],
    out_dir: Path,
    ray_address: str | None = None,
    *,
    config: Configuration | None = None,
    recursive: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    brain: str | None = None,
    registry: Any = None,
    workers: int | None = None,
    threads: int = 2,
    plan: BatchPlan | None = None,
) -> Iterator[PhotoResult]:
    """Restore photos into ``out_dir``; yield one :class:`PhotoResult` per input, as each is settled.

    Args:
        paths: photos and folders (a folder's photos keep their subfolders under ``out_dir``).
        out_dir: the output folder, with the resume records.
        ray_address: None: in this process. ``"local"``: a Ray instance started here (or the one this
            process already joined); ``"auto"`` or ``"HOST:PORT"``: an existing cluster.
        recursive: also restore subfolders, mirrored in ``out_dir``.
        overwrite: replace outputs that this batch did not write.
        retry_failed: try again the photos that failed on a worker in an earlier run.
        brain: a brain spec (``make_brain``), built in every worker.
        registry: the tools (default: every built-in tool).
        workers: Ray actors (default: one per GPU, else cluster CPUs // ``threads``).
        threads: torch / OpenCV threads per CPU actor.
        plan: a plan from :func:`plan_batch` (the CLI makes it first, to fail before loading anything).
    """
    config = config or Configuration.from_env()
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out_dir = Path(out_dir).absolute()
    plan = plan or plan_batch([Path(p) for p in paths], out_dir, recursive=recursive, overwrite=overwrite,
                              retry_failed=retry_failed, config=config)
    yield from plan.settled
    if not plan.jobs:
        return
    if ray_address is None:
        restorer = Restorer(config, brain, registry)
        for job in plan.jobs:
            _append_record(out_dir, job, "started")
            result = restorer(job).model_copy(update={"attempts": 1})
            _append_record(out_dir, job, result.status, result.reason)
            yield result
    else:
        yield from _on_ray(plan.jobs, out_dir, ray_address, config, brain, registry, workers, threads)


def _on_ray(jobs: list[PhotoJob], out_dir: Path, address: str, config: Configuration, brain: str | None,
            registry: Any, workers: int | None, threads: int) -> Iterator[PhotoResult]:
    """Jobs on a pool of actors: one job per actor at a time; a job whose actor dies is retried once elsewhere."""
    try:
        import ray
        from ray.exceptions import RayActorError, RayTaskError
    except ImportError:
        raise BatchError("Ray is not installed: pip install 'restoreagent[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise BatchError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            count, options, device = workers or gpus, {"num_gpus": 1}, "cuda"
        else:
            largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
            if threads > largest:  # such an actor would wait for a node forever
                raise BatchError(f"{threads} threads per worker: no node of this cluster has that many CPUs "
                                 f"(the largest has {largest:g})")
            cpus = int(ray.cluster_resources().get("CPU", 1))
            count, options, device = workers or max(1, cpus // threads), {"num_cpus": threads}, "cpu"
        worker_config = config.model_copy(update={"device": device})
        # Ray does not restart a dead actor (a tool that crashed its process, a lost node): a task sent
        # to an actor while Ray restarts it fails at once. The loop below starts a fresh one instead,
        # which loads its models again, and retries the job the dead one held on another worker.
        actor = ray.remote(max_restarts=0, max_task_retries=0, **options)(RestoreWorker)
        batch, started_actors = uuid.uuid4().hex[:8], 0

        def new_worker() -> Any:
            nonlocal started_actors
            started_actors += 1  # named, so that `ray list actors` shows whose workers they are
            name = f"restoreagent-{batch}-{started_actors}"
            return actor.options(name=name).remote(worker_config, brain, registry, threads)

        pool = [new_worker() for _ in range(min(count, len(jobs)))]
        queue: deque[tuple[PhotoJob, int, int | None]] = deque((job, 1, None) for job in jobs)
        busy: dict[Any, tuple[PhotoJob, int, int]] = {}  # ref → (job, attempt, pool index)
        idle = set(range(len(pool)))
        while queue or busy:
            for _ in range(len(queue)):
                if not idle:
                    break
                job, attempt, avoid = queue.popleft()
                choice = next((i for i in idle if i != avoid or len(pool) == 1), None)
                if choice is None:
                    queue.append((job, attempt, avoid))
                    continue
                idle.discard(choice)
                _append_record(out_dir, job, "started")
                busy[pool[choice].restore.remote(job)] = (job, attempt, choice)
            [ref], _ = ray.wait(list(busy), num_returns=1)
            job, attempt, index = busy.pop(ref)
            idle.add(index)
            try:
                result = PhotoResult.model_validate(ray.get(ref))
            except (RayActorError, RayTaskError) as exc:
                if isinstance(exc, RayActorError):
                    pool[index] = new_worker()
                if attempt < 2:
                    queue.appendleft((job, attempt + 1, index))
                    continue
                why = ("its worker died twice" if isinstance(exc, RayActorError)
                       else f"it raised {type(exc.cause).__name__} twice: {(str(exc.cause).splitlines() or [''])[0]}")
                result = PhotoResult(input=job.input, status="failed", reason=why)
            result = result.model_copy(update={"attempts": attempt})
            _append_record(out_dir, job, result.status, result.reason)
            yield result
    finally:
        if started:
            ray.shutdown()


class RestoreWorker:
    """A Ray worker: the toolbox and assessor loaded once, ``threads`` threads for torch and OpenCV."""

    def __init__(self, config: Configuration, brain: str | None, registry: Any, threads: int) -> None:
        import cv2
        import torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        self.restorer = Restorer(config, brain, registry)

    def restore(self, job: PhotoJob) -> dict:
        return self.restorer(job).model_dump(mode="json")


def summary(results: Iterable[PhotoResult]) -> dict[str, int]:
    """Counts per status."""
    counts = {"restored": 0, "done": 0, "skipped": 0, "failed": 0}
    for r in results:
        counts[r.status] += 1
    return counts
