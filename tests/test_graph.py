"""The restoration loop: routing, rollback, budgets, events, and no pixels in state."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoreagent import Configuration, build_graph
from restoreagent.graph.brains.offline import OfflinePolicy
from restoreagent.tools import default_registry
from restoreagent.tools.base import RestorationTool, ToolSpec
from restoreagent.tools.registry import ToolRegistry
from restoreagent.tools.util.synthesis import add_gaussian_noise


class HarmfulDenoiser(RestorationTool):
    """Claims to denoise; really adds more noise (forces a rollback)."""

    spec = ToolSpec(
        name="denoise_harmful", task="noise", model="harmful", license="MIT", commercial=True,
        learned=False, cost=0.01, description="Makes noise worse (test only).",
    )

    def process(self, image, args):
        rng = np.random.default_rng(0)
        return np.clip(image + rng.normal(0, 0.15, image.shape), 0, 1).astype(np.float32)


class BrokenTool(RestorationTool):
    """Returns NaNs: the step must fail cleanly and be rolled back."""

    spec = ToolSpec(
        name="denoise_broken", task="noise", model="broken", license="MIT", commercial=True,
        learned=False, cost=0.01, description="Returns NaN (test only).",
    )

    def process(self, image, args):
        return np.full_like(image, np.nan)




def _config(tmp_path: Path, **kw) -> Configuration:
    return Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "no-weights", **kw)


def _registry(*extra) -> ToolRegistry:
    reg = ToolRegistry([c for c in default_registry.classes() if c.spec.name == "denoise_nlmeans"])
    for cls in extra:
        reg.register(cls)
    return reg


def _assert_no_pixels(value, path="state"):
    """State must be small JSON-like data: no arrays, no bytes, no long lists."""
    assert not isinstance(value, (np.ndarray, bytes, bytearray, memoryview)), path
    if isinstance(value, dict):
        for k, v in value.items():
            _assert_no_pixels(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        assert len(value) < 1000, f"{path} has {len(value)} items"
        for i, v in enumerate(value):
            _assert_no_pixels(v, f"{path}[{i}]")


def test_rollback_of_a_harmful_step(tmp_path, noisy_png):
    brain = OfflinePolicy(preference={"noise": ("denoise_harmful", "denoise_nlmeans")})
    graph = build_graph(_config(tmp_path), brain=brain, registry=_registry(HarmfulDenoiser))
    state = graph.invoke({"image": str(noisy_png)})
    steps = state["steps"]
    assert [s["tool"] for s in steps[:2]] == ["denoise_harmful", "denoise_nlmeans"]
    assert steps[0]["accepted"] is False and "noise" in steps[0]["reason"]
    assert steps[0]["quality_after"] < steps[0]["quality_before"]
    assert steps[1]["accepted"] is True
    # The rolled-back image never became current: step 2 started from the original.
    assert steps[1]["input_id"] == state["original_id"] == steps[0]["input_id"]
    assert state["current_id"] == steps[1]["output_id"]
    assert state["degradations"]["noise"] < steps[0]["degradations_after"]["noise"]


def test_failing_tool_is_rolled_back_and_run_completes(tmp_path, noisy_png):
    brain = OfflinePolicy(preference={"noise": ("denoise_broken", "denoise_nlmeans")})
    graph = build_graph(_config(tmp_path), brain=brain, registry=_registry(BrokenTool))
    state = graph.invoke({"image": str(noisy_png)})
    first = state["steps"][0]
    assert first["tool"] == "denoise_broken" and not first["accepted"]
    assert "NaN" in first["reason"]
    assert state["steps"][1]["accepted"]
    assert Path(state["output"]).is_file()


def test_state_holds_ids_not_pixels(tmp_path, noisy_png):
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
        graph = build_graph(_config(tmp_path), registry=_registry(), checkpointer=saver)
        cfg = {"configurable": {"thread_id": "t1"}}
        t0 = time.perf_counter()
        state = graph.invoke({"image": str(noisy_png)}, cfg)
        wall = time.perf_counter() - t0
        _assert_no_pixels({k: v for k, v in state.items() if k != "messages"})
        assert state["original_id"].startswith("img-") and state["current_id"].startswith("img-")
        # the agent's own time is accounted for: the brain, and the assessments with their verdicts
        tool_seconds = sum(s["seconds"] for s in state["steps"])
        assert state["planning_seconds"] > 0 and state["observing_seconds"] > 0
        assert state["planning_seconds"] + state["observing_seconds"] + tool_seconds < wall
        # Every persisted checkpoint is small: ids and numbers, not images.
        history = list(graph.get_state_history(cfg))
        assert len(history) > 4
        for snap in history:
            blob = json.dumps({k: v for k, v in snap.values.items() if k != "messages"}, default=str)
            assert len(blob) < 20_000
    image_bytes = noisy_png.stat().st_size
    assert image_bytes > 50_000  # the pixels exist, just not in the state


def test_step_budget_stops_the_loop(tmp_path, noisy_png):
    graph = build_graph(_config(tmp_path, max_steps=1), registry=_registry())
    state = graph.invoke({"image": str(noisy_png)})
    assert len(state["steps"]) == 1
    assert Path(state["output"]).is_file()


def test_progress_events_are_streamed(tmp_path, noisy_png):
    graph = build_graph(_config(tmp_path), registry=_registry())
    events = [e for e in graph.stream({"image": str(noisy_png)}, stream_mode="custom")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "assessed" and kinds[-1] == "finished"
    assert {"tool_start", "tool_end", "observed"} <= set(kinds)
    observed = next(e for e in events if e["event"] == "observed")
    assert observed["quality_after"] is not None and observed["quality_before"] is not None


def test_a_tiled_step_streams_its_progress(tmp_path, noisy_png):
    """A learned tool runs tile by tile; between tool_start and tool_end the graph streams how many
    tiles are done (the command line prints it for long steps)."""
    from scripted import ScriptedBrain, call

    brain = ScriptedBrain(script=[call("deblur_defocus_ours")], seen=[])
    reg = ToolRegistry([default_registry["deblur_defocus_ours"]])
    graph = build_graph(_config(tmp_path, tile_size=64, tile_overlap=8), brain=brain, registry=reg)
    events = list(graph.stream({"image": str(noisy_png)}, stream_mode="custom"))
    kinds = [e["event"] for e in events]
    progress = [e for e in events if e["event"] == "tool_progress"]
    assert progress and kinds.index("tool_start") < kinds.index("tool_progress") < kinds.index("tool_end")
    assert progress[-1]["tiles_done"] == progress[-1]["tiles"] > 1
    assert all(e["tool"] == "deblur_defocus_ours" and e["step"] == 1 for e in progress)


def test_existing_output_is_not_overwritten(tmp_path, noisy_png):
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    graph = build_graph(_config(tmp_path), registry=_registry())
    with pytest.raises(FileExistsError):
        graph.invoke({"image": str(noisy_png), "output": str(target)})
    assert target.read_bytes() == b"keep me"
    state = graph.invoke({"image": str(noisy_png), "output": str(target), "overwrite": True})
    assert Image.open(state["output"]).size == (192, 192)


def test_brain_cannot_pass_paths_or_unknown_ids(tmp_path, noisy_png):
    """A brain that names a file path instead of an image id is told so; no tool ever sees the path."""
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    seen: list = []

    class ScriptedBrain(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

        def _generate(self, messages, *args, **kwargs):
            seen.append(messages)
            return super()._generate(messages, *args, **kwargs)

    call = {"name": "denoise_nlmeans", "args": {"image_id": str(noisy_png)}, "id": "c1", "type": "tool_call"}
    brain = ScriptedBrain(responses=[AIMessage(content="", tool_calls=[call]), AIMessage(content="done")])
    state = build_graph(_config(tmp_path), brain=brain, registry=_registry()).invoke({"image": str(noisy_png)})
    assert state["steps"] == [] and state["current_id"] == state["original_id"]
    assert "image_id must be the current image" in seen[1][-1].content

def test_a_step_that_changes_nothing_is_rolled_back(tmp_path, clean_images):
    """Images are stored by content: a tool that returns its input unchanged (an adaptive gamma on a
    well-exposed photo) is rolled back, so the brain sees it as tried and the task as not done."""
    from langchain_core.messages import AIMessage
    from scripted import ScriptedBrain, call

    path = tmp_path / "bright.png"  # brighter than the gamma's target: it returns its input
    Image.fromarray((np.clip(0.5 + 0.5 * clean_images["coffee"], 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    seen: list = []
    brain = ScriptedBrain(script=[call("lowlight_gamma"), lambda ctx: seen.append(ctx) or AIMessage(content="done")],
                          seen=[])
    reg = ToolRegistry([default_registry["lowlight_gamma"]])
    state = build_graph(_config(tmp_path), brain=brain, registry=reg).invoke({"image": str(path)})
    (step,) = state["steps"]
    assert step["output_id"] == step["input_id"] == state["original_id"]
    assert not step["accepted"] and step["reason"] == "the tool left the image unchanged"
    (history,) = seen[0]["history"]
    assert history["tool"] == "lowlight_gamma" and history["active"] and not history["accepted"]


def test_tools_are_real_langchain_tools(tmp_path, noisy_png):
    """The brain binds StructuredTools whose schema is the tool's pydantic Args; invoking one runs the tool."""
    from langchain_core.tools import BaseTool

    from restoreagent.graph.store import ArtifactStore
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools.util.imageio import load_image

    box = Toolbox(_registry(), _config(tmp_path))
    (tool,) = box.langchain_tools
    assert isinstance(tool, BaseTool) and tool.name == "denoise_nlmeans"
    assert "image_id" in tool.args
    store = ArtifactStore(tmp_path / "store")
    image_id = store.put(load_image(noisy_png).rgb)
    new_id = tool.invoke({"image_id": image_id}, config={"configurable": {"run_dir": str(store.root)}})
    assert new_id in store and new_id != image_id


class SlowTool(RestorationTool):
    """Hangs far past the timeout."""

    spec = ToolSpec(
        name="denoise_slow", task="noise", model="slow", license="MIT", commercial=True,
        learned=False, cost=0.01, description="Sleeps (test only).",
    )

    def process(self, image, args):
        import time

        time.sleep(3)
        return image


class WrongShapeTool(RestorationTool):
    spec = ToolSpec(
        name="denoise_wrongshape", task="noise", model="wrong", license="MIT", commercial=True,
        learned=False, cost=0.01, description="Returns a cropped image (test only).",
    )

    def process(self, image, args):
        return image[:10, :10]


class CrashingTool(RestorationTool):
    spec = ToolSpec(
        name="denoise_crash", task="noise", model="crash", license="MIT", commercial=True,
        learned=False, cost=0.01, description="Raises (test only).",
    )

    def process(self, image, args):
        raise IndexError("index 7 is out of bounds")


class UnloadableTool(RestorationTool):
    """Its library lacks an API it needs (as OpenCV 5.1 dropped readNetFromTensorflow)."""

    spec = ToolSpec(
        name="denoise_unloadable", task="noise", model="unloadable", license="MIT", commercial=True,
        learned=True, cost=0.01, description="Fails to load (test only).",
    )

    def load(self):
        raise AttributeError("module 'cv2.dnn' has no attribute 'readNetFromTensorflow'")

    def process(self, image, args):
        return image


def test_a_tool_that_cannot_load_is_unavailable_with_one_line(tmp_path):
    from restoreagent.tools.base import ToolContext, ToolUnavailable
    from restoreagent.tools.weights import WeightsResolver

    tool = UnloadableTool(ToolContext(weights=WeightsResolver(weights_dir=tmp_path, cache_dir=tmp_path)))
    with pytest.raises(ToolUnavailable, match="denoise_unloadable cannot be loaded here: AttributeError: module 'cv2.dnn'"):
        tool(np.zeros((8, 8, 3), np.float32), tool.Args(image_id="img-0000000000000000"))


@pytest.mark.parametrize(
    "cls, message",
    [(SlowTool, "timeout"), (WrongShapeTool, "shape"), (CrashingTool, "IndexError"), (BrokenTool, "NaN"),
     (UnloadableTool, "cannot be loaded here")],
)
def test_failing_tools_are_rolled_back_and_the_brain_moves_on(tmp_path, noisy_png, cls, message):
    import time

    brain = OfflinePolicy(preference={"noise": (cls.spec.name, "denoise_nlmeans")})
    graph = build_graph(_config(tmp_path, tool_timeout_s=0.5), brain=brain, registry=_registry(cls))
    t0 = time.perf_counter()
    state = graph.invoke({"image": str(noisy_png)})
    first, second = state["steps"][:2]
    assert first["tool"] == cls.spec.name and not first["accepted"] and message in first["reason"]
    assert second["accepted"] and second["input_id"] == state["original_id"]
    assert time.perf_counter() - t0 < 2.9 or cls is not SlowTool


def test_a_looping_brain_is_stopped_by_the_step_budget(tmp_path, noisy_png):
    """A brain that calls a tool forever (on whatever the current image is) hits max_steps."""
    from scripted import ScriptedBrain, call

    looping = ScriptedBrain(script=[], default=call("denoise_nlmeans"))
    graph = build_graph(_config(tmp_path, max_steps=4), brain=looping, registry=_registry())
    state = graph.invoke({"image": str(noisy_png)})
    assert len(state["steps"]) == 4
    assert state["done_reason"] == "step budget (4) reached"
    assert Path(state["output"]).is_file()


def test_two_runs_at_once_share_one_graph_safely(tmp_path, clean_images):
    """Two threads restoring different photos with the same graph (and loaded models)."""
    import threading

    from restoreagent.tools.util.imageio import load_image
    from restoreagent.tools.util.metrics import psnr

    graph = build_graph(_config(tmp_path), registry=_registry())
    inputs = {}
    for i, name in enumerate(("astronaut", "coffee")):
        noisy = add_gaussian_noise(clean_images[name], 30, np.random.default_rng(i))
        path = tmp_path / f"{name}.png"
        Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(path)
        inputs[name] = path
    results, errors = {}, []

    def work(name):
        try:
            results[name] = graph.invoke({"image": str(inputs[name]), "output": str(tmp_path / f"{name}_out.png")})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, state in results.items():
        out = load_image(state["output"]).rgb
        assert psnr(out, clean_images[name]) > psnr(load_image(inputs[name]).rgb, clean_images[name]) + 3
    assert results["astronaut"]["run_dir"] != results["coffee"]["run_dir"]


def test_judge_weighs_revealed_degradations_against_the_gain():
    from types import SimpleNamespace

    from restoreagent.graph.nodes import judge

    def after(quality, **sev):
        return SimpleNamespace(degradations=sev, quality=quality)

    before = {"noise": 0.7, "motion_blur": 0.25}
    # denoising reveals blur that the noise hid: a small rise against a large drop is kept
    ok, why = judge("noise", before, after(0.9, noise=0.05, motion_blur=0.4), 0.7, 0.03)
    assert ok, why
    # a rise larger than the drop is rolled back, and the reason names it
    ok, why = judge("noise", before, after(0.9, noise=0.5, motion_blur=0.6), 0.7, 0.03)
    assert not ok and "motion_blur worse (0.25 → 0.60)" in why
    # no drop of the target, or a lower quality score, is rolled back too
    assert not judge("noise", before, after(0.9, noise=0.69, motion_blur=0.25), 0.7, 0.03)[0]
    assert not judge("noise", before, after(0.6, noise=0.1, motion_blur=0.25), 0.7, 0.03)[0]
    # a user's request is kept as long as the tool ran
    assert judge("noise", before, after(0.6, noise=0.7, motion_blur=0.9), 0.7, 0.03, requested=True)[0]


def test_judge_rolls_back_a_step_that_raised_niqe_beyond_the_limit():
    from types import SimpleNamespace

    from restoreagent.graph.nodes import judge

    before = {"noise": 0.7}
    step = SimpleNamespace(degradations={"noise": 0.1}, quality=0.9, measures={"niqe": 6.5})
    ok, why = judge("noise", before, step, 0.7, 0.03, niqe_before=5.0, niqe_rise_limit=1.0)
    assert not ok and why == "NIQE rose (5.00 → 6.50)"
    assert judge("noise", before, step, 0.7, 0.03, niqe_before=5.0, niqe_rise_limit=2.0)[0]
    # without a limit, or where NIQE was not read (a photo too small for it), NIQE is not judged
    assert judge("noise", before, step, 0.7, 0.03, niqe_before=5.0)[0]
    assert judge("noise", before, step, 0.7, 0.03, niqe_before=None, niqe_rise_limit=1.0)[0]
    unread = SimpleNamespace(degradations={"noise": 0.1}, quality=0.9, measures={})
    assert judge("noise", before, unread, 0.7, 0.03, niqe_before=5.0, niqe_rise_limit=1.0)[0]
    # a user's request is kept whatever NIQE says
    assert judge("noise", before, step, 0.7, 0.03, requested=True, niqe_before=5.0, niqe_rise_limit=1.0)[0]


def test_observe_reads_niqe_from_the_configured_weights_folder(tmp_path, noisy_png, weights_dir):
    # `--weights-dir` reaches the assessor: each observation carries NIQE beside the severities
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=weights_dir), registry=_registry())
    state = graph.invoke({"image": str(noisy_png)})
    assert state["steps"] and state["steps"][0]["accepted"]
    assert state["assessment"]["measures"]["niqe"] > 0
    first = state["steps"][0]  # each step records NIQE before and after (the CLI prints both)
    assert first["niqe_before"] > 0 and first["niqe_after"] == state["assessment"]["measures"]["niqe"]
