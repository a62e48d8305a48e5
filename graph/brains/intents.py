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
stronger    "use a stronger denoiser", "still noisy", "stronger"   one more pass of that task's best tool (no task
                                                                   named: the last step's task)
weaker      "weaker", "too strong", "gentler"                      the last step again at half its strength
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

from restoreagent.graph.conversation import REVERT, VISIBLE_CHANGE

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
    "'use a stronger denoiser' (or stronger <task>, or just 'stronger' / 'weaker' for the last step), "
    "'skip <task>' (e.g. skip dehazing), 'continue'."
)


@dataclass(frozen=True)
class Intent:
    kind: str  # explain | undo | brighter | darker | stronger | weaker | skip | continue | unknown
    task: str | None = None


def find_task(text: str) -> str | None:
    """The task a phrase names (first match in TASK_WORDS order), if any."""
    for task, words in TASK_WORDS.items():
        if any(w in text for w in words):
            return task
    return None


#: (pattern, intent, its fixed task, the task named in the text: "needs" it, "may" name it, or "no"),
#: tried in this order.
_RULES: tuple[tuple[str, str, str | None, str], ...] = (
    (r"\b(skip|don'?t|do not|no|without|leave out|stop)\b", "skip", None, "needs"),
    (r"\b(undo|revert|go back|take (it|that) back|previous)\b", "undo", None, "no"),
    (r"too (bright|light)|overexposed|darker", "darker", None, "no"),
    (r"too dark|brighter|lighten|more light|underexposed|can'?t see", "brighter", "low_light", "no"),
    (r"weaker|gentler|softer|too strong|too much|overdone|less strong", "weaker", None, "no"),
    (r"stronger|harder|sharper|cleaner", "stronger", None, "may"),
    (r"more|still", "stronger", None, "needs"),
    (r"what did you|what have you|explain|summar|which steps|why", "explain", None, "no"),
    (r"\b(continue|keep going|again|go on|restore|finish)\b", "continue", None, "no"),
)


def parse_intent(text: str) -> Intent:
    t = " ".join(text.lower().split())
    task = find_task(t)
    for pattern, kind, fixed_task, named in _RULES:
        if re.search(pattern, t) and (task or named != "needs"):
            return Intent(kind, fixed_task or (task if named != "no" else None))
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
        if s.get("mean_change") is not None and s["mean_change"] < VISIBLE_CHANGE:
            verdict = "no visible change"
        else:
            verdict = "kept" if s["accepted"] and s.get("active", True) else (
                "undone later" if s["accepted"] else "rolled back")
        lines.append(f"{s.get('index', '?')}. {s['tool']} ({s['task']}): {verdict} — {s['reason']}")
    return "Steps so far:\n" + "\n".join(lines)


def still_available(context: dict[str, Any]) -> str:
    """What the user can still ask for: untried tools per open task, and the tools whose weights a
    ``restoreagent weights download`` would add."""
    skip = set(context.get("skip_tasks", []))
    # a call the user said no to never ran: it can still be asked for
    used = {s["tool"] for s in context.get("history", [])
            if s.get("active", True) and not s["reason"].startswith("rejected by the user")}
    open_tasks = {task: fresh for task, tools in context.get("tools_by_task", {}).items()
                  if task not in skip and (fresh := [t for t in tools if t not in used])}
    # task names as the chat understands them ("low light", "motion blur")
    offers = [f"{task.replace('_', ' ')} ({', '.join(fresh)})" for task, fresh in open_tasks.items()]
    example = next(iter(open_tasks), "").replace("_", " ")
    text = (f"You can still ask for: {'; '.join(offers)} (say e.g. 'stronger {example}', or 'continue')."
            if offers else "Every available tool was tried.")
    missing = {name: task for name, task in context.get("unavailable_tools", {}).items() if task not in skip}
    if missing:
        text += (" `restoreagent weights download` would add: "
                 + ", ".join(f"{name} ({task})" for name, task in missing.items()) + ".")
    return text


def done_message(context: dict[str, Any]) -> str:
    """The reply when nothing is left to do; after a refusal it lists what can still be tried."""
    turn = context.get("turn", 1)
    this_turn = [s for s in context.get("history", []) if s.get("turn", 1) == turn]
    refused = any(s["reason"].startswith("rejected by the user") for s in this_turn)
    if refused or (turn > 1 and this_turn and not any(s["accepted"] for s in this_turn)):
        return "Nothing more was done. " + still_available(context)
    return "Done: no remaining degradation that an untried tool can address."


def respond(
    context: dict[str, Any], bound: Sequence[str], parameters: dict[str, Sequence[str]] | None = None,
) -> AIMessage | None:
    """The reply to this turn's chat message, or None to carry on with the normal plan.

    ``parameters``: each bound tool's argument names (a "weaker" step needs a ``strength``)."""
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
    if intent.kind == "weaker":
        return _weaker(context, live_accepted, this_turn, parameters or {}, revert_before)
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
    task = intent.task or (live_accepted[-1]["task"] if live_accepted else None)
    if task is None:
        return AIMessage(content="There is no step to make stronger yet. " + still_available(context))
    tried = {s["tool"] for s in this_turn}
    for tool in context.get("tools_by_task", {}).get(task, []):
        if tool in bound and tool not in tried:
            return _call(tool, {"image_id": current}, f"{intent.kind}: {task} with {tool}.")
    if this_turn:
        return AIMessage(content=f"That did not help: {this_turn[-1]['reason']}. " + still_available(context))
    return AIMessage(content=f"I have no {task} tool left to try. " + still_available(context))


def _weaker(context, live_accepted, this_turn, parameters, revert_before) -> AIMessage:
    """The last step again at half its strength: undo it, then run its tool on the image before it."""
    done = [s for s in this_turn if s["tool"] != REVERT]
    if done:
        return AIMessage(content=f"Done: step {done[-1]['index']} ({done[-1]['tool']}) at strength "
                                 f"{done[-1]['args'].get('strength')}: {done[-1]['reason']}.")
    if any(s["tool"] == REVERT for s in this_turn):
        # the step just undone: the accepted one that started from the current image
        last = next(s for s in reversed(context.get("history", []))
                    if s["accepted"] and s["tool"] != REVERT and s["input_id"] == context["image_id"])
        strength = round(float(last["args"].get("strength", 1.0)) / 2, 3)
        return _call(last["tool"], {**last["args"], "image_id": context["image_id"], "strength": strength},
                     f"weaker: {last['tool']} at strength {strength}.")
    if not live_accepted:
        return AIMessage(content="There is no step to make weaker yet.")
    last = live_accepted[-1]
    if "strength" not in parameters.get(last["tool"], ()):
        return AIMessage(content=f"Step {last['index']} ({last['tool']}) has no strength setting; "
                                 "say 'undo the last step' to remove it.")
    return revert_before(last, "user: weaker")
