"""The default brain: an offline policy that speaks the chat-model protocol.

``OfflinePolicy`` is a langchain-core ``BaseChatModel``. It reads the same
context message an LLM would get (the JSON block rendered from
``prompts/context.md``) and answers with an ``AIMessage`` carrying one tool
call, or with no tool call when it is done. So the graph runs unchanged with
it or with any tool-calling LLM.

Two ways to decide, both honouring the same constraints (tools bound to the model,
``skip_tasks``, steps with ``active`` false count as neither done nor used, never the
same tool twice, a task is done once one of its steps was accepted, after a roll-back
the next candidate):

**Learned (the default: ``OfflinePolicy()``, ``--brain offline``)** — the ranker of
:mod:`restoreagent.graph.planning.policy`, trained on oracle labels of the training split,
scores every candidate (task, tool) move — tasks not done whose severity is at least
:func:`~restoreagent.graph.planning.policy.candidate_floor` (0.1; 0.2 for low resolution and low light),
tools not yet used — by its predicted advantage over stopping, and the brain takes the
best; it stops when no move is predicted to beat stopping (by the checkpoint's margin),
and tries a task with at most ``max_tries_per_task`` tools. When it predicts no gain but a
degradation found in the input photo (``found_in_input``) is still open and reads present
(low light: at least its :data:`FALLBACK_FLOOR`), or the photo is smaller than full
resolution by its pixel count (:func:`too_small`), that task is still tried, tool after
tool in the ranker's order until the observe node accepts one: away from its training
data the ranker under-acts (on real hazy photos it predicts that dehazing loses 20–45 dB,
as if they were clean). A
``preference`` for a task's tools overrides the ranker's choice of tool once it has chosen
the task; a tool registered after the ranker was trained, which it cannot tell apart, is taken
instead of the ranker's tool when it measured better (:func:`newer_tool`).

**Rules (``OfflinePolicy(learned=False)``, ``--brain offline:rules``, and the fallback without a
ranker checkpoint)**:
* tasks in a fixed order that undoes the imaging chain backwards, scale
  by scale (:data:`TASK_ORDER`), skipping degradations below the presence threshold;
* per task, the tools in the order the context lists them (best measured
  gain first, from ``docs/TOOLS.md``), after any ``preference`` override;
* never the same tool twice in a run; after a roll-back the next candidate;
  a task is done once one of its steps was accepted (repeating super-resolution
  would keep enlarging the image; repeating others mostly over-smooths).

Both modes run super-resolution at ×2 for a photo at most about 2.8 times below full
resolution (:func:`sr_scale`), else at the tools' default ×4.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from restoreagent.graph.brains.intents import done_message, respond, skipped_tasks

#: Sensor noise and compression first (they were added last, at the image's current
#: scale; a denoiser also clears most compressed noise), then super-resolution, so that
#: blur, rain and haze — which happened at the scene's full scale — are treated at
#: that scale (deblurring a ×1/4 image with full-scale kernels destroys it), and
#: brightness last.
TASK_ORDER: tuple[str, ...] = (
    "noise",
    "jpeg",
    "low_resolution",
    "motion_blur",
    "defocus_blur",
    "rain",
    "haze",
    "low_light",
)

#: Degradations whose tools assume the photo's full scale (blur kernels, streak widths, depth).
FULL_SCALE_TASKS: tuple[str, ...] = ("motion_blur", "defocus_blur", "rain", "haze")
#: Learned mode: a degradation found in the input that still reads present is tried even when the
#: ranker predicts no gain, and the observe node judges each try; low light needs this much more, because
#: naturally dark photos exist (brightening one costs about 10 dB).
FALLBACK_FLOOR: dict[str, float] = {"low_light": 0.5}
#: Learned mode: at most this many tools per task (a roll-back lets the next one try). Chosen on the
#: calibration split (docs/VERIFIER.md): 2 and 4 gave the same photos, 2 with 1.33 executions per
#: degradation instead of 1.52.
MAX_TRIES_PER_TASK = 2
#: Predicted FFDNet gain (dB) from which denoising is offered whatever the severity reads (calibration
#: split, docs/VERIFIER.md).
DENOISE_OFFER_DB = 0.3
#: Size prior (tools/perception/rules.py) up to which ×2 super-resolution suffices: the photo is at most
#: 2^(3·0.5) ≈ 2.8 times smaller than full resolution (the geometric middle of ×2 and ×4).
SR_X2_PRIOR = 0.5


def _size_prior(context: dict[str, Any]) -> float:
    return float((context.get("measures") or {}).get("low_resolution_size_prior", 0.0))


def too_small(context: dict[str, Any]) -> bool:
    """The photo is smaller than the configured full resolution by its pixel count, which is a
    fact and not a reading: the agent should try super-resolution whatever the ranker predicts
    (its training cases are all ×1/4 crops; a ×2-small photo is outside them)."""
    if (context.get("output_size") or {}).get("super_resolution_scale"):
        return True  # the caller asked for a larger output
    return _size_prior(context) >= float(context.get("present_threshold", 0.2))


def sr_scale(context: dict[str, Any]) -> int | None:
    """×2 for a photo at most about ×2.8 below full resolution, else None (the tool's default, ×4).

    A ×4 result of a mildly small photo still looks upsampled to the assessor and is rolled
    back (measured on real photos of 179–256 px: ×4 reads 0.24–0.61, ×2 0.15–0.30)."""
    asked = (context.get("output_size") or {}).get("super_resolution_scale")
    if asked:
        return asked  # the caller's size (graph/sizing.py): ×2 or ×4
    prior = _size_prior(context)
    return 2 if 0.0 < prior <= SR_X2_PRIOR else None

_JSON_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def denoise_offer(context: dict[str, Any], closed: set[str], tries: dict[str, int],
                  fresh: Sequence[str], chosen: bool = False) -> tuple[str, str] | None:
    """Denoising first, with FFDNet, when the noise-level regressor predicts that it gains at least
    :data:`DENOISE_OFFER_DB` (``measures["denoise_gain_db"]``, tools/perception/noise_level.py).

    The assessor reads real camera noise as nearly absent (PolyU photos: severity 0.01–0.23, where
    FFDNet gains 1–6 dB), and so did the ranker trained on its readings. The offer is only that:
    the verifier still decides whether the denoised photo is kept. ``chosen``: the caller prefers
    other denoisers (``fresh`` lists them first)."""
    gain = float((context.get("measures") or {}).get("denoise_gain_db", 0.0))
    if "noise" in closed or tries.get("noise", 0) or gain < DENOISE_OFFER_DB or not fresh:
        return None
    return "noise", "denoise_ffdnet" if "denoise_ffdnet" in fresh and not chosen else fresh[0]


def parse_context(messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
    """The JSON context of the latest human message that carries one, if any."""
    for msg in reversed(messages):
        if isinstance(msg, HumanMessage):
            text = msg.content if isinstance(msg.content, str) else " ".join(
                part.get("text", "") for part in msg.content if isinstance(part, dict)
            )
            m = _JSON_BLOCK.search(text)
            if m:
                return json.loads(m.group(1))
    return None


def choose(
    context: dict[str, Any],
    bound: Sequence[str],
    preference: dict[str, tuple[str, ...]] | None = None,
    ranker: Any | None = None,
    max_tries_per_task: int = MAX_TRIES_PER_TASK,
) -> tuple[str, str] | None:
    """The next (task, tool) for ``context``, or None when there is nothing to do.

    With ``ranker`` (a :class:`~restoreagent.graph.planning.policy.LearnedRanker`) the
    learned policy decides, else the rules (:data:`TASK_ORDER`).
    """
    tools_by_task: dict[str, list[str]] = context.get("tools_by_task", {})
    # Steps undone by the user (``active`` false) count neither as done nor as used:
    # after "skip dehazing" the later tasks are redone on the reverted image.
    live = [step for step in context.get("history", []) if step.get("active", True)]
    used = {step["tool"] for step in live}
    # Tasks done (an accepted, live step) or skipped by the user are not offered again.
    closed = {step["task"] for step in live if step["accepted"]} | set(context.get("skip_tasks", []))

    def fresh(task: str) -> list[str]:
        """The task's bound tools not used yet, the caller's preference first."""
        offered = [t for t in tools_by_task.get(task, []) if t in bound]
        ranked = [t for t in (preference or {}).get(task, ()) if t in offered]
        return [t for t in ranked + [t for t in offered if t not in ranked] if t not in used]

    if ranker is None:
        return _rules_choice(context, closed, fresh)
    tries = {task: sum(1 for step in live if step["task"] == task) for task in tools_by_task}
    return _learned_choice(context, ranker, closed, tries, fresh, preference or {}, max_tries_per_task)


def _severities(context: dict[str, Any]) -> tuple[dict[str, float], float]:
    """The photo's severities and the presence threshold, as the context carries them."""
    return context.get("degradations", {}), float(context.get("present_threshold", 0.2))


def _rules_choice(context: dict[str, Any], closed: set[str], fresh: Callable[[str], list[str]]) -> tuple[str, str] | None:
    """The first open task of :data:`TASK_ORDER` that reads present, with its first tool not tried yet."""
    severities, threshold = _severities(context)
    for task in TASK_ORDER:
        if task in closed or severities.get(task, 0.0) < threshold:
            continue
        for tool in fresh(task):
            return task, tool
    return None


def _learned_choice(context: dict[str, Any], ranker: Any, closed: set[str], tries: dict[str, int],
                    fresh: Callable[[str], list[str]], preference: dict[str, tuple[str, ...]],
                    max_tries_per_task: int) -> tuple[str, str] | None:
    """The denoising offer, else the ranker's best move, else the fallback for what the photo came in with."""
    from restoreagent.graph.planning.policy import candidate_floor

    severities, threshold = _severities(context)
    candidates = [
        (task, tool)
        for task in context.get("tools_by_task", {})
        if task not in closed and tries.get(task, 0) < max_tries_per_task
        and severities.get(task, 0.0) >= min(candidate_floor(task), threshold)
        for tool in fresh(task)
    ]
    offer = denoise_offer(context, closed, tries, fresh("noise"), chosen=bool(preference.get("noise")))
    if offer is not None:
        return offer
    best = ranker.rank(context, candidates)
    if not best:
        return _fallback_choice(context, ranker, closed, tries, fresh, max_tries_per_task)
    task, tool, _ = best[0]
    # A caller's preference for the task's tools wins over the ranker's choice of tool.
    preferred = [t for t in preference.get(task, ()) if (task, t) in candidates]
    return task, preferred[0] if preferred else newer_tool(context, ranker, task, tool, fresh(task))


def newer_tool(context: dict[str, Any], ranker: Any, task: str, tool: str, fresh: Sequence[str]) -> str:
    """The ranker's ``tool``, unless a tool registered after the ranker was trained (it reads 0 in the
    ranker's one-hot, so the ranker cannot tell it apart) measured better on held-out photos: the
    context lists each task's tools best measured gain first (``checkpoints/tool_scores.json``)."""
    order = context.get("tools_by_task", {}).get(task, [])
    ahead = order[: order.index(tool)] if tool in order else []
    return next((t for t in ahead if t not in ranker.tools and t in fresh), tool)


def _fallback_choice(context: dict[str, Any], ranker: Any, closed: set[str], tries: dict[str, int],
                     fresh: Callable[[str], list[str]], max_tries_per_task: int) -> tuple[str, str] | None:
    """The ranker sees no gain, but an open degradation the photo came in with is still tried (the
    rules' order of tasks, the ranker's least-bad tool): away from its training data the ranker
    under-acts. Not one that appeared after a step: that is usually the trace of the tool (a derained
    photo reads a little blurred)."""
    severities, threshold = _severities(context)
    found = set(context.get("found_in_input", context.get("tools_by_task", {})))
    if "low_resolution" in found and "low_resolution" not in closed:
        found -= set(FULL_SCALE_TASKS)  # kernels of the full-size photo wreck a small one
    for task in TASK_ORDER:
        # a photo below full resolution is upscaled, the next tool after a roll-back
        size = task == "low_resolution" and too_small(context)
        wanted = size or (task in found and severities.get(task, 0.0) >= FALLBACK_FLOOR.get(task, threshold))
        if task not in closed and wanted and tries.get(task, 0) < max_tries_per_task:
            moves = [(task, t) for t in fresh(task)]
            if moves:
                tool = ranker.rank_all(context, moves)[0][1]
                return task, newer_tool(context, ranker, task, tool, fresh(task))
    return None


def load_ranker(path: Path | str | None = None, margin: float | None = None):
    """The learned ranker, or None when its checkpoint is missing or unusable."""
    try:
        from restoreagent.graph.planning.policy import LearnedRanker

        return LearnedRanker.load(path, margin)
    except Exception:  # no or unusable checkpoint: the rules decide
        return None


class OfflinePolicy(BaseChatModel):
    """An offline brain (learned ranker, else rules) with the tool-calling chat-model interface."""

    preference: dict[str, tuple[str, ...]] = {}
    """Override: best-first tool names per task, tried before the context's order."""

    learned: bool = True
    """Use the learned ranker when its checkpoint exists (else, or when False, the rules)."""

    checkpoint: Path | None = None
    """The ranker's checkpoint (default ``checkpoints/policy.pt``)."""

    margin: float | None = None
    """Act only on moves predicted to beat stopping by more than this many dB (default: the checkpoint's)."""

    max_tries_per_task: int = MAX_TRIES_PER_TASK
    """Learned mode: at most this many tools per task (a roll-back lets the next one try)."""

    def ranker(self):
        """The learned ranker this policy uses, or None (rules)."""
        return load_ranker(self.checkpoint, self.margin) if self.learned else None

    @property
    def _llm_type(self) -> str:
        return "restoreagent-offline-policy"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        bound = [t["function"]["name"] for t in kwargs.get("tools", [])]
        context = parse_context(messages)
        if context is None:
            message = AIMessage(content="I need an image context (a ```json block) to decide.")
        elif (answer := respond(context, bound, {name: list(_parameters(kwargs, name)) for name in bound})) is not None:
            message = answer  # this turn's chat request (undo, too dark, ...)
        else:
            context = {**context, "skip_tasks": sorted({*context.get("skip_tasks", []),
                                                        *skipped_tasks(context.get("requests", []))})}
            decision = choose(context, bound, self.preference, self.ranker(), self.max_tries_per_task)
            if decision is None:
                message = AIMessage(content=done_message(context))
            else:
                task, tool = decision
                args: dict[str, Any] = {"image_id": context["image_id"]}
                if task == "low_resolution" and (scale := sr_scale(context)) and "scale" in _parameters(kwargs, tool):
                    args["scale"] = scale
                message = AIMessage(
                    content=f"Next: {task} with {tool}" + (f" (×{args['scale']})." if "scale" in args else "."),
                    tool_calls=[
                        {
                            "name": tool,
                            "args": args,
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "tool_call",
                        }
                    ],
                )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _parameters(kwargs: dict[str, Any], tool: str) -> dict[str, Any]:
    """The argument schema of a bound tool (OpenAI tool format), empty if unknown."""
    for t in kwargs.get("tools", []):
        if t["function"]["name"] == tool:
            return t["function"].get("parameters", {}).get("properties", {})
    return {}
