"""Chat-style restoration: threads in a real SQLite checkpointer, offline intents, undo, the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image
from scripted import ScriptedBrain, call
from typer.testing import CliRunner

from restoreagent import Configuration
from restoreagent.cli import app
from restoreagent.graph.brains.intents import Intent, parse_intent
from restoreagent.graph.brains.offline import parse_context
from restoreagent.graph.chat import Conversation
from restoreagent.graph.conversation import active_flags, lineage
from restoreagent.graph.toolbox import Toolbox
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry
from restoreagent.tools.util.synthesis import add_gaussian_noise, darken

TOOLS = ("denoise_nlmeans", "lowlight_gamma", "lowlight_clahe")


@pytest.fixture()
def dark_noisy_png(tmp_path: Path, clean_images) -> Path:
    rgb = add_gaussian_noise(darken(clean_images["coffee"], gamma=0.7), 25, np.random.default_rng(1))
    path = tmp_path / "dark_noisy.png"
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def config(tmp_path: Path) -> Configuration:
    return Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "no-weights")


def _conversation(config, tmp_path, tools=TOOLS, **kwargs) -> Conversation:
    toolbox = Toolbox(ToolRegistry([default_registry[n] for n in tools]), config)
    return Conversation(config, db_path=tmp_path / "threads.sqlite", toolbox=toolbox, **kwargs)


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32)


@pytest.mark.parametrize(
    "text, intent",
    [
        ("What did you do?", Intent("explain")),
        ("undo the last step", Intent("undo")),
        ("please go back", Intent("undo")),
        ("that is too dark", Intent("brighter", "low_light")),
        ("it's too bright now", Intent("darker")),
        ("use a stronger denoiser", Intent("stronger", "noise")),
        ("still noisy", Intent("stronger", "noise")),
        ("skip dehazing", Intent("skip", "haze")),
        ("don't denoise", Intent("skip", "noise")),
        ("no super-resolution please", Intent("skip", "low_resolution")),
        ("keep going", Intent("continue")),
        ("make me a sandwich", Intent("unknown")),
    ],
)
def test_offline_intents(text, intent):
    assert parse_intent(text) == intent


def test_a_conversation_explains_brightens_undoes_and_skips(config, tmp_path, dark_noisy_png):
    with _conversation(config, tmp_path) as chat:
        first = chat.start(dark_noisy_png)
        tools = [s.tool for s in first.steps if s.accepted]
        assert "denoise_nlmeans" in tools, first.steps
        assert first.output.exists()

        explained = chat.say("What did you do?")
        assert explained.steps == [] and "denoise_nlmeans" in explained.reply
        np.testing.assert_array_equal(_pixels(explained.output), _pixels(first.output))
        # a turn that changes nothing writes no new, identical file, and says so
        assert explained.output == first.output and not explained.changed
        assert "Nothing changed" in explained.reply

        brighter = chat.say("that is too dark")
        assert [s.task for s in brighter.steps] == ["low_light"]
        assert brighter.steps[0].accepted and brighter.steps[0].requested
        assert _pixels(brighter.output).mean() > _pixels(explained.output).mean() + 2

        undone = chat.say("undo the last step")
        assert [s.tool for s in undone.steps] == ["revert"] and undone.steps[0].accepted
        np.testing.assert_array_equal(_pixels(undone.output), _pixels(explained.output))

        skipped = chat.say("skip denoising")
        assert skipped.steps[0].tool == "revert"
        state = chat.state()
        active = active_flags(state["current_id"], state["original_id"], state["steps"])
        live = [s for s in state["steps"] if active[s["index"]] and s["accepted"]]
        assert not any(s["task"] == "noise" for s in live)
        # later turns remember the skip: "continue" does not denoise again
        again = chat.say("continue")
        assert not any(s.task == "noise" for s in again.steps)

        puzzled = chat.say("make me a sandwich")
        assert puzzled.steps == [] and "I understand" in puzzled.reply


def test_threads_persist_across_restarts(config, tmp_path, dark_noisy_png):
    with _conversation(config, tmp_path) as chat:
        chat.start(dark_noisy_png)
        thread = chat.thread_id
        before = chat.state()["steps"]
    with _conversation(config, tmp_path, thread_id=thread) as again:
        assert again.started
        turn = again.say("what did you do?")
        assert turn.turn == 2 and before[0]["tool"] in turn.reply
    with _conversation(config, tmp_path) as other:
        assert not other.started and other.thread_id != thread
        with pytest.raises(ValueError, match="no photo yet"):
            other.say("undo")


def test_time_travel_replays_from_an_earlier_checkpoint(config, tmp_path, dark_noisy_png):
    """LangGraph time travel: rerun a thread from the checkpoint before its first tool call."""
    with _conversation(config, tmp_path) as chat:
        chat.start(dark_noisy_png)
        cfg = {"configurable": {"thread_id": chat.thread_id}}
        history = list(chat.graph.get_state_history(cfg))
        before_act = next(s for s in history if s.next == ("act",) and not s.values.get("steps"))
        replay = chat.graph.invoke(None, before_act.config)
        assert [s["tool"] for s in replay["steps"]] == [s["tool"] for s in chat.state()["steps"]]
        forks = [s for s in chat.graph.get_state_history(cfg)]
        assert len(forks) > len(history)


def test_outputs_are_never_overwritten_without_asking(config, tmp_path, dark_noisy_png):
    target = tmp_path / "mine.png"
    target.write_bytes(b"keep me")
    with _conversation(config, tmp_path) as chat:
        chat.start(dark_noisy_png, tmp_path / "turn1.png")
        with pytest.raises(Exception, match="exists"):
            chat.say("that is too dark", target)
    assert target.read_bytes() == b"keep me"


def test_an_llm_brain_sees_the_image_and_the_message_and_can_revert(config, tmp_path, dark_noisy_png):
    brain = ScriptedBrain(script=[
        call("denoise_nlmeans"),
        lambda ctx: AIMessage(content="Denoised."),
        # turn 2: "go back to the original" → the LLM reverts by image id
        lambda ctx: AIMessage(content="", tool_calls=[{"name": "revert", "args": {
            "image_id": ctx["original_image_id"], "reason": "the user wants the original"},
            "id": "c2", "type": "tool_call"}]),
        lambda ctx: AIMessage(content="Back to the original, as you asked."),
    ], seen=[], default=lambda ctx: AIMessage(content="All done."))
    with _conversation(config, tmp_path, brain=brain) as chat:
        first = chat.start(dark_noisy_png)
        assert first.steps[0].tool == "denoise_nlmeans" and first.reply == "Denoised."
        human = brain.seen[0][-1]
        assert isinstance(human, HumanMessage) and isinstance(human.content, list)
        image_blocks = [b for b in human.content if b.get("type") == "image"]
        assert image_blocks and image_blocks[0]["mime_type"] == "image/png" and len(image_blocks[0]["base64"]) > 1000

        turn = chat.say("hmm, I prefer how it looked before you touched it")
        context = parse_context(brain.seen[2])
        assert context["user_message"].startswith("hmm") and context["turn"] == 2
        assert turn.steps[0].tool == "revert" and turn.reply.startswith("Back to the original")
        original = chat.state()["original_id"]
        assert chat.state()["current_id"] == original
        blob = image_blocks[0]["base64"][:200]
    # The image block is built at call time and never persisted in the checkpoints.
    with sqlite3.connect(tmp_path / "threads.sqlite") as db:
        rows = db.execute("select checkpoint from checkpoints").fetchall()
    assert rows and not any(blob.encode() in bytes(r[0]) for r in rows)


def test_lineage_ignores_undone_steps():
    steps = [
        {"index": 1, "tool": "a", "accepted": True, "input_id": "o", "output_id": "x"},
        {"index": 2, "tool": "b", "accepted": False, "input_id": "x", "output_id": "y"},
        {"index": 3, "tool": "c", "accepted": True, "input_id": "x", "output_id": "z"},
        {"index": 4, "tool": "revert", "accepted": True, "input_id": "z", "output_id": "x"},
    ]
    assert lineage("x", "o", steps) == [1]
    assert active_flags("x", "o", steps) == {1: True, 2: True, 3: False, 4: False}
    assert lineage("z", "o", steps[:3]) == [1, 3]


def test_chat_command(tmp_path, dark_noisy_png, monkeypatch):
    monkeypatch.setenv("RESTOREAGENT_WORK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("RESTOREAGENT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    out_dir = tmp_path / "chat"
    args = ["chat", str(dark_noisy_png), "--out-dir", str(out_dir), "--db", str(tmp_path / "t.sqlite")]
    result = CliRunner().invoke(app, args, input="what did you do?\nthat is too dark\nundo the last step\nquit\n")
    assert result.exit_code == 0, result.output
    # "what did you do?" changed nothing: no turn-2.png, and the reply says so
    assert sorted(p.name for p in out_dir.iterdir()) == [f"turn-{i}.png" for i in (1, 3, 4)]
    assert "Nothing changed" in result.output
    assert "Steps so far" in result.output and "requested by the user" in result.output
    # Files of an earlier conversation are not overwritten.
    again = CliRunner().invoke(app, args, input="quit\n")
    assert again.exit_code == 2 and "exists" in again.output and "Traceback" not in again.output


@pytest.mark.parametrize(
    "extra, message",
    [(["--brain", "nonsense:x"], "unknown brain"), (["--brain", "qwen-vl"], "needs a model folder"),
     (["--brain", "qwen-vl:/nonexistent/model"], "config.json missing")],
)
def test_chat_command_bad_input(tmp_path, dark_noisy_png, extra, message):
    result = CliRunner().invoke(app, ["chat", str(dark_noisy_png), "--out-dir", str(tmp_path / "c"), *extra])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["chat", str(tmp_path / "nope.png")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_chat_command_asks_before_each_tool(tmp_path, dark_noisy_png, monkeypatch):
    monkeypatch.setenv("RESTOREAGENT_WORK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("RESTOREAGENT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    args = ["chat", str(dark_noisy_png), "--out-dir", str(tmp_path / "c"), "--db", str(tmp_path / "t.sqlite"),
            "--approve", "--max-steps", "2"]
    result = CliRunner().invoke(app, args, input="n\nn\nquit\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("[y]es / [n]o") == 2 and "rejected by the user" in result.output
    restored = np.asarray(Image.open(tmp_path / "c" / "turn-1.png").convert("RGB"))
    np.testing.assert_array_equal(restored, np.asarray(Image.open(dark_noisy_png).convert("RGB")))
