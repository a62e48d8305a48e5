"""What the offline policy understands of a chat message.

An LLM brain reads the user's message itself; the offline policy recognises a
defined set of intents with keyword rules (documented in the README):

==========  =====================================================  ==========================================
intent      examples                                               what happens
==========  =====================================================  ==========================================
explain     "what did you do?", "explain", "summary"               lists the steps; no tool runs
undo        "undo the last step", "go back", "revert"              back to the image before the last step
brighter    "that is too dark", "brighter please"                  one more low-light step (the user's call)
darker      "too bright", "too light"                              undoes the last low-light step
stronger    "use a stronger denoiser", "still noisy", "sharper"    one more pass of that task's best tool
skip        "skip dehazing", "don't denoise", "no super-resolution" undoes that task's step, redoes the rest
                                                                   without it, and never does it again
continue    "continue", "keep going", "again"                      carries on with what is left
==========  =====================================================  ==========================================

Anything else gets a short answer listing these intents.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from langchain_core.messages import AIMessage

from ..conversation import REVERT

#: Words that name each task in chat ("skip dehazing", "stronger denoiser").
TASK_WORDS: dict[str, tuple[str, ...]] = {
    "noise": ("nois", "denois", "grain"),
    "jpeg": ("jpeg", "jpg", "compress", "block", "artifact", "artefact"),
    "low_light": ("low light", "low-light", "lowlight", "brighten", "exposure", "dark"),
    "haze": ("haze", "hazy", "dehaz", "fog"),
    "rain": ("rain", "derain"),
    "motion_blur": ("motion", "shake"),
    "defocus_blur": ("defocus", "focus", "blur", "sharp", "deblur"),
    "low_resolution": ("resolution", "upscal", "super-res", "superres", "super res", "enlarg", "upsampl"),
}

HELP = (
    "I understand: 'what did you do?', 'undo the last step', 'that is too dark', 'too bright', "
    "'use a stronger denoiser' (or stronger <task>), 'skip <task>' (e.g. skip dehazing), 'continue'."
)


@dataclass(frozen=True)
class Intent:
    kind: str  # explain | undo | brighter | darker | stronger | skip | continue | unknown
    task: str | None = None


def find_task(text: str) -> str | None:
    """The task a phrase names (first match in TASK_WORDS order), if any."""
    for task, words in TASK_WORDS.items():
        if any(w in text for w in words):
            return task
    return None


#: (pattern, intent, its fixed task, needs a task named in the text), tried in this order.
_RULES: tuple[tuple[str, str, str | None, bool], ...] = (
    (r"\b(skip|don'?t|do not|no|without|leave out|stop)\b", "skip", None, True),
    (r"\b(undo|revert|go back|take (it|that) back|previous)\b", "undo", None, False),
    (r"too (bright|light)|overexposed|darker", "darker", None, False),
    (r"too dark|brighter|lighten|more light|underexposed|can'?t see", "brighter", "low_light", False),
    (r"stronger|more|still|harder|sharper|cleaner", "stronger", None, True),
    (r"what did you|what have you|explain|summar|which steps|why", "explain", None, False),
    (r"\b(continue|keep going|again|go on|restore|finish)\b", "continue", None, False),
)


def parse_intent(text: str) -> Intent:
    t = " ".join(text.lower().split())
    task = find_task(t)
    for pattern, kind, fixed_task, needs_task in _RULES:
        if re.search(pattern, t) and (task or not needs_task):
            return Intent(kind, fixed_task or (task if needs_task else None))
    return Intent("unknown")


def skipped_tasks(requests: Sequence[str]) -> list[str]:
    """Tasks the user asked to skip anywhere in the conversation."""
    return sorted({i.task for i in map(parse_intent, requests) if i.kind == "skip" and i.task})


def _call(tool: str, args: dict[str, Any], text: str) -> AIMessage:
    return AIMessage(
        content=text,
        tool_calls=[{"name": tool, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}],
        additional_kwargs={"user_request": True},
    )


def summary(history: Sequence[dict[str, Any]]) -> str:
    if not history:
        return "I have not run any tool on this photo."
    lines = []
    for s in history:
        verdict = "kept" if s["accepted"] and s.get("active", True) else (
            "undone later" if s["accepted"] else "rolled back")
        lines.append(f"{s.get('index', '?')}. {s['tool']} ({s['task']}): {verdict} — {s['reason']}")
    return "Steps so far:\n" + "\n".join(lines)


def respond(context: dict[str, Any], bound: Sequence[str]) -> AIMessage | None:
    """The reply to this turn's chat message, or None to carry on with the normal plan."""
    message = context.get("user_message")
    if not message:
        return None
    intent = parse_intent(message)
    turn = context.get("turn", 1)
    history = context.get("history", [])
    this_turn = [s for s in history if s.get("turn", 1) == turn]
    live_accepted = [s for s in history if s["accepted"] and s.get("active", True) and s["tool"] != REVERT]
    current = context["image_id"]

    def revert_before(step: dict[str, Any], why: str) -> AIMessage:
        return _call(REVERT, {"image_id": step["input_id"], "reason": why},
                     f"Undoing step {step['index']} ({step['tool']}).")

    if intent.kind == "explain":
        return AIMessage(content=summary(history))
    if intent.kind == "unknown":
        return AIMessage(content=f"Sorry, I did not understand {message!r}. {HELP}")
    if intent.kind == "continue":
        return None
    if intent.kind in ("undo", "darker"):
        if this_turn:
            return AIMessage(content=f"Done: {this_turn[-1]['reason']}.")
        targets = [s for s in live_accepted if intent.kind == "undo" or s["task"] == "low_light"]
        if not targets:
            return AIMessage(content="There is nothing to undo." if intent.kind == "undo"
                             else "I did not brighten this photo, so there is nothing to take back.")
        return revert_before(targets[-1], f"user: {message}")
    if intent.kind == "skip":
        done = [s for s in live_accepted if s["task"] == intent.task]
        if done and not any(s["tool"] == REVERT for s in this_turn):
            return revert_before(done[0], f"user: skip {intent.task}")
        return None  # the normal plan goes on, without the skipped task
    # brighter / stronger: one more step of that task on the current result, the user's call
    if any(s["accepted"] for s in this_turn):
        return AIMessage(content=f"Done: {this_turn[-1]['reason']}.")
    tried = {s["tool"] for s in this_turn}
    for tool in context.get("tools_by_task", {}).get(intent.task, []):
        if tool in bound and tool not in tried:
            return _call(tool, {"image_id": current}, f"{intent.kind}: {intent.task} with {tool}.")
    return AIMessage(content=f"I have no {intent.task} tool left to try.")
