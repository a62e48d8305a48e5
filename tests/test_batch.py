"""Folder batches (restoreagent.batch): names, resume records, checks before work, and Ray."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoreagent.batch import (
    RECORDS,
    BatchError,
    check_space,
    check_writable,
    plan_batch,
    read_records,
    restore_many,
    summary,
)
from restoreagent.graph.configuration import Configuration

CLI = [sys.executable, "-m", "restoreagent"]


def _noisy(seed: int, side: int = 48) -> np.ndarray:
    from skimage import data

    rng = np.random.default_rng(seed)
    y, x = 60 + 20 * seed, 120 + 10 * seed
    clean = data.astronaut()[y : y + side, x : x + side].astype(np.float32)
    return np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)


def _config(tmp_path: Path) -> Configuration:
    # No weights: the classical tools only, fast; 48-px photos are not upscaled (scale 1: the output keeps the input's size).
    return Configuration(weights_dir=tmp_path / "no-weights", cache_dir=tmp_path / "no-weights",
                         work_dir=tmp_path / "runs", full_resolution_side=32, scale=1, max_steps=2, device="cpu")


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_plan_gives_every_photo_its_own_output_and_lists_the_rest(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "A.tif", "b.jpg", "sub/a.png", "tiny.png"):
        Image.fromarray(_noisy(0)[: 4 if name == "tiny.png" else None]).save(src / name)
    (src / "notes.txt").write_text("not a photo")
    (src / "broken.png").write_bytes(b"\x89PNG garbage")

    flat = plan_batch([src], tmp_path / "out")
    outputs = {j.key: j.output.relative_to((tmp_path / "out").absolute()).as_posix() for j in flat.jobs}
    assert outputs == {"a.jpg": "a.jpg.png", "a.png": "a.png", "A.tif": "A.tif.png", "b.jpg": "b.png"}
    reasons = {r.input.name: (r.status, r.reason) for r in flat.settled}
    assert reasons["notes.txt"] == ("skipped", "not an image (.txt)")
    assert reasons["sub"] == ("skipped", "a folder (pass --recursive)")
    assert reasons["tiny.png"][0] == "failed" and "too small" in reasons["tiny.png"][1]
    assert reasons["broken.png"][0] == "failed" and str(src / "broken.png") in reasons["broken.png"][1]

    deep = plan_batch([src], tmp_path / "out", recursive=True)
    assert "sub/a.png" in {j.output.relative_to((tmp_path / "out").absolute()).as_posix() for j in deep.jobs}
    with pytest.raises(BatchError, match="would share the output a.png"):
        plan_batch([src / "a.png", src / "sub" / "a.png"], tmp_path / "out")


def test_checks_before_work_name_the_users_path(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_noisy(0)).save(src / "a.png")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(BatchError, match=f"{blocker}/out"):
        plan_batch([src], blocker / "out")
    with pytest.raises(BatchError, match="is a file"):
        check_writable(blocker)
    with pytest.raises(BatchError, match=f"not enough space in {tmp_path}"):
        check_space(tmp_path, 10**18)
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BatchError, match=f"cannot write to {locked}"):
            check_writable(locked)
    # An output this batch did not write is left alone, and said so, before any model runs.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"the user's own file")
    plan = plan_batch([src], tmp_path / "out")
    assert not plan.jobs and plan.settled[0].status == "skipped" and "--overwrite" in plan.settled[0].reason
    assert len(plan_batch([src], tmp_path / "out", overwrite=True).jobs) == 1


def test_resume_is_keyed_on_each_input(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(("a.jpg", "a.png")):
        Image.fromarray(_noisy(i)).save(src / name)
    config = _config(tmp_path)
    first = list(restore_many(src, out, config=config))
    assert sorted(r.status for r in first) == ["restored", "restored"]
    assert {p.name for p in out.iterdir()} == {"a.jpg.png", "a.png", RECORDS}
    stamp = (out / "a.png").stat().st_mtime_ns

    Image.fromarray(_noisy(5)).save(src / "a.jpg")  # this input changed; the other did not
    again = {r.input.name: r for r in restore_many(src, out, config=config)}
    assert again["a.png"].status == "done" and again["a.jpg"].status == "restored"
    assert again["a.jpg"].output == out.absolute() / "a.jpg.png"
    assert (out / "a.png").stat().st_mtime_ns == stamp
    assert summary(restore_many(src, out, config=config)) == {"restored": 0, "done": 2, "skipped": 0, "failed": 0}


def test_cli_refuses_tiny_images_and_unwritable_outputs_before_work(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.fromarray(_noisy(0)).save(tmp_path / "a.png")
    (tmp_path / "file.txt").write_text("x")
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs")}
    tiny = subprocess.run([*CLI, "restore", "dot.png", "-o", "out.png"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert tiny.returncode == 2 and "1×1 px is too small" in tiny.stderr and "Traceback" not in tiny.stderr
    bad = subprocess.run([*CLI, "restore", "a.png", "-o", "file.txt/out.png"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "file.txt" in bad.stderr and ".part" not in bad.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run started


# -- Ray ------------------------------------------------------------------------------------------------
MAGENTA = (255, 0, 255)


def _crashing_registry():
    """Every built-in tool, made to crash its process (as a native library would) on a photo whose
    top-left pixel is pure magenta: the real failure a Ray worker must survive."""
    from restoreagent.tools import default_registry
    from restoreagent.tools.registry import ToolRegistry

    def crashing(base):
        def __call__(self, image, args):
            if tuple(image[0, 0]) == (1.0, 0.0, 1.0):
                os.abort()
            return base.__call__(self, image, args)

        return type(base.__name__, (base,), {"__call__": __call__})

    return ToolRegistry(crashing(cls) for cls in default_registry.classes())


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_batch_survives_a_crashing_tool_and_a_killed_worker_and_resumes(tmp_path, ray_cluster):
    ray = ray_cluster
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(10):
        Image.fromarray(_noisy(i)).save(src / f"photo{i:02d}.png")
    crash = _noisy(11)
    crash[0, 0] = MAGENTA
    Image.fromarray(crash).save(src / "crash.png")
    Image.fromarray(_noisy(12)).save(src / "corrupt.jpg", quality=90)
    data = (src / "corrupt.jpg").read_bytes()
    (src / "corrupt.jpg").write_bytes(data[: len(data) // 3])  # a whole header, a truncated body
    before = _digests(src)
    config = _config(tmp_path)

    results, killed = [], False
    for r in restore_many(src, out, "local", config=config, registry=_crashing_registry(), workers=2, threads=1):
        results.append(r)
        if r.status == "restored" and not killed:  # kill one worker in the middle of the batch
            for name in ray.util.list_named_actors():
                try:
                    ray.kill(ray.get_actor(name))
                    killed = True
                    break
                except ValueError:  # a worker that the crashing tool has just taken down
                    continue
    assert killed
    by_name = {r.input.name: r for r in results}
    assert len(results) == 12 and len(by_name) == 12
    assert by_name["crash.png"].status == "failed" and by_name["crash.png"].attempts == 2
    assert "died twice" in by_name["crash.png"].reason
    assert by_name["corrupt.jpg"].status == "failed" and "corrupt.jpg" in by_name["corrupt.jpg"].reason
    restored = sorted(n for n, r in by_name.items() if r.status == "restored")
    assert restored == [f"photo{i:02d}.png" for i in range(10)]
    # each restored exactly once (one record of success each), and written whole
    records = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()]
    assert sorted(r["input"] for r in records if r["status"] == "restored") == restored
    for name in restored:
        assert Image.open(out / name).size == (48, 48)
    assert _digests(src) == before

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = list(restore_many(src, out, "local", config=config, registry=_crashing_registry(), workers=2, threads=1))
    assert summary(again) == {"restored": 0, "done": 10, "skipped": 0, "failed": 2}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    assert len((out / RECORDS).read_text().splitlines()) == len(records)  # nothing started again


def test_a_killed_batch_resumes_where_it_stopped(tmp_path):
    import signal
    import time

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(4):
        Image.fromarray(_noisy(i)).save(src / f"p{i}.png")
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none"),
           "RESTOREAGENT_FULL_RESOLUTION_SIDE": "32", "COLUMNS": "200"}
    cmd = [*CLI, "restore", "in", "-o", "out", "--max-steps", "2", "--report", "r.json"]
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while '"restored"' not in ((out / RECORDS).read_text() if (out / RECORDS).is_file() else ""):
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)  # a dead driver: no clean-up of any kind
    driver.wait()
    first = [key for key, rec in read_records(out).items() if rec["status"] == "restored"]
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rows = {Path(r["input"]).name: r["status"] for r in json.loads((tmp_path / "r.json").read_text())}
    assert all(rows[name] == "done" for name in first) and sorted(rows) == ["p0.png", "p1.png", "p2.png", "p3.png"]
    restored = [json.loads(line)["input"] for line in (out / RECORDS).read_text().splitlines()
                if json.loads(line)["status"] == "restored"]
    assert sorted(restored) == sorted(rows)  # each photo restored exactly once over the two runs


def test_a_torn_record_does_not_swallow_the_next(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_noisy(0)).save(src / "a.png")
    out.mkdir()
    (out / RECORDS).write_text('{"input": "x.png", "size": 1, "mtime_')  # a driver killed mid-line
    list(restore_many(src, out, config=_config(tmp_path)))
    assert read_records(out)["a.png"]["status"] == "restored"
