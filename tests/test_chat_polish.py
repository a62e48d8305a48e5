"""Chat that reads like a person (issue #32, item 7): no duplicate turn images, no internal ids,
"stronger"/"weaker" on the last step, "no visible change", what is left after a refusal,
approval answers limited to yes / no / skip, and turns that pause for approval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage
from scripted import ScriptedBrain, call
from typer.testing import CliRunner

from restoreagent.cli import app
from restoreagent.graph.brains.intents import Intent, parse_intent
from restoreagent.graph.chat import Conversation, approval_answer

from test_chat import _conversation, _pixels, config  # noqa: F401 (config: a fixture)

#: denoise_dncnn needs weights that are not here: it is what a `weights download` would add.
TOOLS = ("denoise_oidn", "denoise_nlmeans", "lowlight_clahe", "denoise_dncnn")


def _chat(config, tmp_path, **kwargs) -> Conversation:
    return _conversation(config, tmp_path, tools=TOOLS, **kwargs)


def test_stronger_and_weaker_alone_apply_to_the_last_step():
    assert parse_intent("stronger") == Intent("stronger")
    assert parse_intent("a bit weaker please") == Intent("weaker")
    assert parse_intent("that is too strong") == Intent("weaker")
    assert parse_intent("use a stronger denoiser") == Intent("stronger", "noise")
    assert parse_intent("more") == Intent("unknown")  # "more" alone names nothing


def test_a_conversation_in_the_users_words(config, tmp_path, noisy_png):
    with _chat(config, tmp_path) as chat:
        first = chat.start(noisy_png)
        assert [s.tool for s in first.steps if s.accepted] == ["denoise_oidn"], first.steps
        run_dir = Path(chat.state()["run_dir"])

        # a turn that changes nothing writes no file and says so
        asked = chat.say("what did you do?")
        assert not asked.changed and asked.output == first.output and "Nothing changed" in asked.reply
        assert not (run_dir / "restored-turn2.png").exists()

        # "weaker": the last step again at half its strength, on the image before it
        weaker = chat.say("weaker")
        assert [s.tool for s in weaker.steps] == ["revert", "denoise_oidn"], weaker.steps
        assert weaker.steps[1].args["strength"] == 0.5 and weaker.steps[1].accepted and weaker.changed
        original, full = _pixels(noisy_png), _pixels(first.output)
        half = _pixels(weaker.output)
        assert 0 < np.abs(half - original).mean() < np.abs(full - original).mean()

        # "stronger" alone: one more step of the last step's task
        stronger = chat.say("stronger")
        assert stronger.steps and all(s.task == "noise" for s in stronger.steps), stronger.steps

        # undoing names no internal id, in the reply or in the steps' reasons
        undone = chat.say("undo the last step")
        assert undone.steps[0].tool == "revert"
        texts = [undone.reply, *(s.reason for s in undone.steps), chat.say("what did you do?").reply]
        assert not any("img-" in t for t in texts), texts
        assert "the result of step" in undone.reply or "the original photo" in undone.reply


def test_a_step_that_changes_almost_nothing_is_no_visible_change(config, tmp_path, noisy_png):
    brain = ScriptedBrain(script=[call("denoise_oidn", strength=0.002)], seen=[],
                          default=lambda ctx: AIMessage(content="That is all."))
    with _chat(config, tmp_path, brain=brain) as chat:
        turn = chat.start(noisy_png)
        step = turn.steps[0]
        assert not step.accepted and step.reason.startswith("no visible change"), step
        assert step.mean_change is not None and step.mean_change < 0.2
    with _chat(config, tmp_path, thread_id=chat.thread_id) as again:
        assert "no visible change" in again.say("what did you do?").reply


def test_an_llm_reply_that_names_an_image_id_is_put_in_words(config, tmp_path, noisy_png):
    brain = ScriptedBrain(script=[lambda ctx: AIMessage(content=f"I left {ctx['original_image_id']} as it was.")],
                          seen=[])
    with _chat(config, tmp_path, brain=brain) as chat:
        assert chat.start(noisy_png).reply == "I left the original photo as it was."


def test_after_a_refusal_the_agent_lists_what_can_still_be_tried(config, tmp_path, noisy_png):
    approving = config.model_copy(update={"approve_tools": True})
    with _chat(approving, tmp_path, approver=lambda request: "reject") as chat:
        turn = chat.start(noisy_png)
    assert turn.steps and all(s.reason.startswith("rejected by the user") for s in turn.steps)
    assert "You can still ask for: noise (" in turn.reply, turn.reply
    assert "`restoreagent weights download` would add: denoise_dncnn (noise)" in turn.reply


def test_approval_answers_are_yes_no_skip_or_an_edit():
    assert approval_answer("yes") == approval_answer(" Y ") == "approve"
    assert approval_answer("no")["action"] == "reject" and approval_answer("skip") == "skip"
    assert approval_answer('{"strength": 0.5}') == {"action": "edit", "args": {"strength": 0.5}}
    for other in ("", "sure", "undo the last step", "{not json", "[1]"):
        assert approval_answer(other) is None


def test_a_turn_pauses_for_approval_and_skip_closes_the_task(config, tmp_path, noisy_png):
    approving = config.model_copy(update={"approve_tools": True})
    with _chat(approving, tmp_path) as chat:
        assert chat.start(noisy_png) is None  # no approver: the turn waits
        request = chat.pending_approval()
        assert request["tool"].startswith("denoise") and "img-" not in request["description"]
        with pytest.raises(ValueError, match="waits for approval"):
            chat.say("undo")
        turn = chat.resume("skip")
        assert turn is not None and [s.task for s in turn.steps] == ["noise"] and not turn.steps[0].accepted
        assert chat.pending_approval() is None  # no other denoiser was proposed after "skip"
        assert "You can still ask for:" in turn.reply and "noise (" not in turn.reply


def test_the_chat_command_asks_again_until_yes_no_or_skip(tmp_path, noisy_png, monkeypatch):
    monkeypatch.setenv("RESTOREAGENT_WORK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("RESTOREAGENT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    args = ["chat", str(noisy_png), "--out-dir", str(tmp_path / "c"), "--db", str(tmp_path / "t.sqlite"), "--approve",
            "--max-steps", "1"]
    result = CliRunner().invoke(app, args, input="sure\nyes please\nno\nquit\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("please answer yes, no or skip") == 2
    assert "rejected by the user" in result.output and "img-" not in result.output
