"""`restoreagent degrade`, `bench-tools` and `tools`: the toolbox's commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restoreagent", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_degrade_is_seeded_and_reproducible(tmp_path, clean_images):
    src = tmp_path / "clean.png"
    Image.fromarray((clean_images["coffee"] * 255).astype(np.uint8)).save(src)
    for name in ("a.png", "b.png"):
        res = _cli("degrade", str(src), "-o", name, "--combo", "haze+motion+lowres", "--seed", "3", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    info = json.loads(res.stdout)
    assert set(info["params"]) == {"haze", "motion_blur", "low_resolution"}
    assert Image.open(tmp_path / "a.png").size == (48, 48)  # ×1/4
    other = _cli("degrade", str(src), "-o", "c.png", "--combo", "haze+motion+lowres", "--seed", "4", cwd=tmp_path)
    assert other.returncode == 0 and (tmp_path / "c.png").read_bytes() != (tmp_path / "a.png").read_bytes()
    bad = _cli("degrade", str(src), "-o", "d.png", "--combo", "noise+fog", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown degradation 'fog'" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_tools_regenerates_the_table(tmp_path, shared_dir):
    res = _cli("bench-tools", "--images", "1", "--crop", "64", "--out", "TOOLS.md", "--scores", "scores.json",
               cwd=tmp_path, RESTOREAGENT_WEIGHTS_DIR=str(tmp_path / "none"),
               RESTOREAGENT_CLEAN_DIR=str(shared_dir / "data" / "clean"))
    assert res.returncode == 0, res.stderr
    table = (tmp_path / "TOOLS.md").read_text()
    scores = json.loads((tmp_path / "scores.json").read_text())["tools"]
    names = {s["name"] for s in scores}
    assert {"denoise_nlmeans", "jpeg_deblock", "lowlight_gamma"} <= names
    assert all(s["error"] is None and s["images"] == 1 for s in scores)
    for name in names:
        assert f"`{name}`" in table
    assert "## Not measured" in table and "denoise_ffdnet" in table  # no weights: listed as missing


def test_tools_lists_availability_and_licences(tmp_path):
    res = _cli("tools", cwd=tmp_path, RESTOREAGENT_WEIGHTS_DIR=str(tmp_path / "none"), COLUMNS="200")
    assert res.returncode == 0, res.stderr
    assert "denoise_nlmeans" in res.stdout and "available" in res.stdout
    assert "missing" in res.stdout and "non-commercial" in res.stdout


def test_batch_restore_is_resumable_and_lists_failures(tmp_path, clean_images):
    from restoreagent.tools.util.synthesis import dark_noise_jpeg

    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(("astronaut", "coffee")):
        Image.fromarray((dark_noise_jpeg(clean_images[name], seed=i) * 255).astype(np.uint8)).save(src / f"{name}.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    env = {"RESTOREAGENT_WORK_DIR": str(tmp_path / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none")}
    first = _cli("restore", "in", "-o", "out", "--report", "batch.json", cwd=tmp_path, COLUMNS="200", **env)
    assert first.returncode == 1  # one failure, reported, batch finished
    assert (tmp_path / "out/astronaut.png").is_file() and (tmp_path / "out/coffee.png").is_file()
    assert "broken.jpg" in first.stdout and "failed" in first.stdout and "2 restored" in first.stdout
    rows = {Path(r["input"]).name: r for r in json.loads((tmp_path / "batch.json").read_text())}
    assert rows["astronaut.png"]["status"] == "restored" and rows["broken.jpg"]["status"] == "failed"
    stamp = (tmp_path / "out/coffee.png").stat().st_mtime_ns
    again = _cli("restore", "in", "-o", "out", cwd=tmp_path, COLUMNS="200", **env)
    assert "2 already done" in again.stdout
    assert (tmp_path / "out/coffee.png").stat().st_mtime_ns == stamp
