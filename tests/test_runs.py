"""The run history stays bounded (runs.py); chat threads keep their images; ``runs list|clean``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from restoreagent.graph.configuration import Configuration
from restoreagent.runs import RECORD, list_runs


def _photo(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


def test_runs_stay_bounded_over_many_restores_and_chat_keeps_its_images(tmp_path):
    from restoreagent.graph.api import restore
    from restoreagent.graph.chat import Conversation
    from restoreagent.graph.graph import build_graph

    config = Configuration(weights_dir=tmp_path / "none", cache_dir=tmp_path / "none", work_dir=tmp_path / "runs",
                           full_resolution_side=16, max_steps=1, device="cpu", verify_steps=False)
    photo = _photo(tmp_path / "in.png", 0)
    with Conversation(config, db_path=tmp_path / "threads.sqlite") as conv:
        conv.start(photo, tmp_path / "turn-1.png")
    [chat_run] = list_runs(config.work_dir)
    chat_files = sorted(p.name for p in chat_run.path.iterdir())
    assert chat_run.kind == "other" and any(n.startswith("img-") for n in chat_files)

    graph = build_graph(config)
    for i in range(50):
        r = restore(_photo(tmp_path / f"p{i}.png", i), tmp_path / f"out{i}.png", config=config, graph=graph)
        assert not list(r.run_dir.glob("img-*.png"))  # no step images kept without --keep-steps
    runs = list_runs(config.work_dir)
    restores = [r for r in runs if r.kind == "restore"]
    assert len(restores) == config.run_history == 20
    assert restores[0].output == str(tmp_path / "out49.png")  # the newest stay
    assert sorted(p.name for p in chat_run.path.iterdir()) == chat_files

    kept = restore(photo, None, config=config.model_copy(update={"keep_steps": True, "run_history_mb": 0.001}),
                   graph=graph)
    assert list(kept.run_dir.glob("img-*.png")) and kept.output.parent == kept.run_dir
    # over the MB bound only the run just made stays (and the chat thread)
    assert [r.path for r in list_runs(config.work_dir) if r.kind == "restore"] == [kept.run_dir]
    assert (kept.run_dir / RECORD).is_file() and chat_run.path.is_dir()


def test_runs_list_and_clean_commands(tmp_path):
    work = tmp_path / "runs"
    for i, name in enumerate(("20261201-000000-a", "20261202-000000-b")):
        (work / name).mkdir(parents=True)
        (work / name / RECORD).write_text(f'{{"input": "x", "output": "o{i}.png", "finished": {1e9 + i}}}')
    (work / "chat").mkdir()
    (work / "chat" / "img-0000000000000000.png").write_bytes(b"\0" * 1000)
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(work), "COLUMNS": "200"}
    cli = [sys.executable, "-m", "restoreagent", "runs"]
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "3 runs" in listed.stdout and "o1.png" in listed.stdout and "other" in listed.stdout
    cleaned = subprocess.run([*cli, "clean", "--keep", "1"], env=env, capture_output=True, text=True)
    assert cleaned.returncode == 0 and "removed 1 runs" in cleaned.stdout
    assert sorted(p.name for p in work.iterdir()) == ["20261202-000000-b", "chat"]
    subprocess.run([*cli, "clean", "--include-other"], env=env, check=True, capture_output=True)
    assert not list(work.iterdir())
