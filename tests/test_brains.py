"""LLM brains that misbehave: error back to the brain, bounded retries, then the offline policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from scripted import ScriptedBrain, call

from restoreagent import Configuration, build_graph
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry


def _run(tmp_path, noisy_png, script):
    brain = ScriptedBrain(script=script, seen=[])
    reg = ToolRegistry([default_registry[n] for n in ("denoise_nlmeans", "lowlight_gamma")])
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "none", brain_retries=2),
                        brain=brain, registry=reg)
    events = []
    state = None
    for mode, chunk in graph.stream({"image": str(noisy_png)}, stream_mode=["custom", "values"]):
        if mode == "custom":
            events.append(chunk)
        else:
            state = chunk
    return state, brain.seen, events


def test_a_valid_call_after_one_unknown_tool(tmp_path, noisy_png):
    state, seen, events = _run(tmp_path, noisy_png, [call("denoise_magic"), call("denoise_nlmeans")])
    assert "unknown tool 'denoise_magic'" in seen[1][-1].content
    assert state["steps"][0]["tool"] == "denoise_nlmeans" and state["steps"][0]["accepted"]
    assert not any(e["event"] == "brain_fallback" for e in events)


@pytest.mark.parametrize(
    "bad, expected",
    [
        (call("denoise_nlmeans", sigma="loud"), "invalid arguments for denoise_nlmeans: sigma"),
        (call("denoise_nlmeans", colour="red"), "invalid arguments for denoise_nlmeans: colour"),
        (lambda ctx: AIMessage(content="", invalid_tool_calls=[
            {"name": "denoise_nlmeans", "args": "{image_id: oops", "id": "c", "error": "bad JSON",
             "type": "invalid_tool_call"}]), "malformed tool call"),
        (lambda ctx: AIMessage(content=""), "empty reply"),
        (lambda ctx: TimeoutError("the model server did not answer"), "TimeoutError"),
    ],
    ids=["wrong-type", "extra-arg", "malformed-json", "no-decision", "exception"],
)
def test_bad_brains_get_bounded_retries_then_the_offline_policy(tmp_path, noisy_png, bad, expected):
    state, seen, events = _run(tmp_path, noisy_png, [bad, bad, bad])
    assert len(seen) >= 3  # first try + 2 retries
    assert expected in seen[1][-1].content and expected in seen[2][-1].content
    fallback = [e for e in events if e["event"] == "brain_fallback"]
    assert fallback and expected in fallback[0]["reason"]
    # The offline policy took over for that step: the run completed and restored the photo.
    assert state["steps"][0]["tool"] == "denoise_nlmeans" and state["steps"][0]["accepted"]
    assert Path(state["output"]).is_file()
