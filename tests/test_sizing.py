"""The output size policy (graph/sizing.py): --scale auto|1|2|4, --target-side, RestoreInput.scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from restoreagent import Configuration
from restoreagent.cli import app
from restoreagent.graph.graph import build_graph
from restoreagent.graph.sizing import SizeRequest
from restoreagent.graph.state import RestoreInput
from restoreagent.graph.toolbox import Toolbox
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry


@pytest.fixture()
def small_gif(tmp_path: Path) -> Path:
    """200×160, as in the issue: under the 512 px full-resolution side, so `auto` may upscale it."""
    from skimage import data

    path = tmp_path / "small.gif"
    Image.fromarray(data.astronaut()[100:260, 150:350]).save(path)
    return path


@pytest.fixture()
def graph(tmp_path: Path):
    config = Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "no-weights")
    toolbox = Toolbox(ToolRegistry([default_registry[n] for n in ("sr_lanczos", "denoise_nlmeans")]), config)
    return build_graph(config, toolbox=toolbox)


def test_size_requests():
    assert SizeRequest().factor(100, 200) is None and SizeRequest().sr_scale(100, 200) is None
    assert SizeRequest(scale="2").scale == 2 and SizeRequest(scale=2).size(100, 200) == (200, 400)
    assert SizeRequest(scale=1).sr_scale(100, 200) == 0  # not offered
    assert SizeRequest(target_side=300).size(100, 200) == (300, 600)
    assert SizeRequest(target_side=300).sr_scale(100, 200) == 4 and SizeRequest(target_side=150).sr_scale(100, 200) == 2
    with pytest.raises(ValidationError, match="not both"):
        SizeRequest(scale=2, target_side=300)
    with pytest.raises(ValidationError):
        RestoreInput(image="x.png", scale=3)


@pytest.mark.parametrize("scale, size", [(1, (200, 160)), (2, (400, 320))])
def test_a_fixed_scale_sets_the_output_size(graph, small_gif, scale, size):
    state = graph.invoke({"image": str(small_gif), "scale": scale})
    assert Image.open(state["output"]).size == size
    assert state["size"]["requested"] == f"scale {scale}" and state["size"]["output"] == size
    if scale == 1:  # super-resolution is not even offered
        assert not any(s["task"] == "low_resolution" for s in state["steps"])
        assert "scale 1 (asked)" in state["size"]["reason"]


def test_auto_is_the_agents_decision_and_says_why(graph, small_gif):
    state = graph.invoke({"image": str(small_gif)})
    report = state["size"]
    assert report["requested"] == "scale auto" and report["reason"].startswith("auto (the default)")
    kept_sr = [s for s in state["steps"] if s["task"] == "low_resolution" and s["accepted"]]
    assert (report["output"] != (200, 160)) == bool(kept_sr)
    assert ("upscaled it with" in report["reason"]) == bool(kept_sr)


def test_a_target_side(graph, small_gif):
    state = graph.invoke({"image": str(small_gif), "target_side": 80})
    assert Image.open(state["output"]).size == (100, 80) and "target side 80 px" in state["size"]["reason"]


def test_the_command_line_scale(tmp_path, small_gif, monkeypatch):
    monkeypatch.setenv("RESTOREAGENT_WORK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("RESTOREAGENT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    out, report = tmp_path / "out.png", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["restore", str(small_gif), "-o", str(out), "--scale", "1", "--report", str(report),
                                      "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (200, 160) and "size: scale 1 (asked)" in result.output
    assert '"requested": "scale 1"' in report.read_text()
    both = CliRunner().invoke(app, ["restore", str(small_gif), "-o", str(tmp_path / "b.png"), "--scale", "2",
                                    "--target-side", "300"])
    assert both.exit_code == 2 and "not both" in both.output and "Traceback" not in both.output
    bad = CliRunner().invoke(app, ["restore", str(small_gif), "-o", str(tmp_path / "c.png"), "--scale", "3"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
