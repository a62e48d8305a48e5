"""The nodes of the restoration loop: perceive → brain → act → observe → … → finish.

* perceive: validate the input, load the photo into a fresh artifact store, assess it;
* converse: on a thread that already restored its photo, start a new turn from a chat message;
* brain: render the context (and the current image for a multimodal brain), ask the chat
  model for the next tool call (or none);
* act: execute exactly one tool call on the current image;
* observe: re-assess the result, accept it or roll back to the previous image;
* finish: write the restored PNG atomically.

Every node emits custom stream events (``graph.stream(..., stream_mode="custom")``).
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.types import interrupt
from pydantic import ValidationError

from restoreagent import prompts
from restoreagent.graph.brains.offline import OfflinePolicy
from restoreagent.graph.configuration import Configuration
from restoreagent.graph.conversation import (
    REVERT,
    VISIBLE_CHANGE,
    RevertArgs,
    active_flags,
    describe_image,
    known_images,
    lineage,
    revert_tool,
    without_ids,
)
from restoreagent.graph.sizing import SizeRequest, resize_to, size_report
from restoreagent.graph.state import RestoreInput, State, Step
from restoreagent.graph.store import OpenStores, UnknownImageId
from restoreagent.graph.toolbox import Toolbox
from restoreagent.tools.base import ToolError
from restoreagent.tools.perception.report import PRESENT, Assessment
from restoreagent.tools.perception.rules import apply_low_light_rule, trusts_network_low_light
from restoreagent.tools.perception.verifier import Verifier
from restoreagent.tools.util.imageio import crop_box, load_image, opaque_box, save_png

Assessor = Callable[[np.ndarray], Assessment]


def judge(
    task: str, before: dict[str, float], after: Assessment, quality_before: float, tolerance: float,
    requested: bool = False, niqe_before: float | None = None, niqe_rise_limit: float | None = None,
) -> tuple[bool, str]:
    """Accept a step only if it reduced its target by more than it raised the others, and did
    not lower the quality score (nor, given ``niqe_rise_limit``, raise NIQE by more than that:
    off by default, measured to lose on the held-out benchmark).

    Other degradations count when they are present afterwards and rose by more than
    ``tolerance``; their rises are summed against the target's drop. (Removing noise or
    haze often *reveals* blur or darkness that was there all along; rejecting every such
    rise rolled back steps on the oracle's best pipelines.)

    A step the user asked for in the conversation ("that is too dark") is accepted
    as long as the tool worked: the user judges it, and can undo it.
    """
    b, a = before.get(task, 0.0), after.degradations.get(task, 0.0)
    if requested:
        return True, f"requested by the user; {task} {b:.2f} → {a:.2f}; quality {quality_before:.3f} → {after.quality:.3f}"
    if b >= PRESENT and a > b - 0.02:
        return False, f"did not reduce {task} ({b:.2f} → {a:.2f})"
    worse = {name: (before.get(name, 0.0), sev) for name, sev in after.degradations.items()
             if name != task and sev >= PRESENT and sev > before.get(name, 0.0) + tolerance}
    if sum(s - p for p, s in worse.values()) > max(b - a, 0.0):
        name, (prev, sev) = max(worse.items(), key=lambda kv: kv[1][1] - kv[1][0])
        return False, f"made {name} worse ({prev:.2f} → {sev:.2f}) by more than it reduced {task}"
    if niqe_rise_limit is not None and niqe_before is not None:
        niqe_after = after.measures.get("niqe")
        if niqe_after is not None and niqe_after > niqe_before + niqe_rise_limit:
            return False, f"NIQE rose ({niqe_before:.2f} → {niqe_after:.2f})"
    if after.quality < quality_before - 1e-3:
        return False, f"overall quality fell ({quality_before:.3f} → {after.quality:.3f})"
    return True, f"{task} {b:.2f} → {a:.2f}; quality {quality_before:.3f} → {after.quality:.3f}"


class Nodes:
    """The node functions, bound to one configuration, toolbox, brain and assessor."""

    def __init__(self, config: Configuration, toolbox: Toolbox, brain: BaseChatModel, assessor: Assessor,
                 verifier: Verifier | None = None) -> None:
        self.config = config
        self.toolbox = toolbox
        tools = [*toolbox.langchain_tools, revert_tool]
        self.brain_model = brain.bind_tools(tools)
        self.fallback_model = OfflinePolicy().bind_tools(tools)
        # A multimodal brain sees the current image; the offline policy needs only numbers.
        self.send_image = not isinstance(brain, OfflinePolicy)
        self.assessor = assessor
        self.verifier = verifier
        self.stores = OpenStores()

    # -- perceive ---------------------------------------------------------------
    def perceive(self, state: State) -> dict[str, Any]:
        request = RestoreInput.model_validate(
            {k: state[k] for k in ("image", "output", "overwrite", "scale", "target_side") if state.get(k) is not None}
        )
        # A size given with the call replaces the configured one (both its scale and target side).
        given = request.scale is not None or request.target_side is not None
        size = SizeRequest(scale=request.scale or "auto", target_side=request.target_side) if given else SizeRequest(
            scale=self.config.scale, target_side=self.config.target_side)
        if request.image is None:
            raise ValueError("no image: start a thread with {'image': PATH}, then send {'message': ...}")
        if request.output and Path(request.output).exists() and not request.overwrite:
            raise FileExistsError(f"{request.output} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        loaded = load_image(request.image, self.config.max_pixels)
        run_dir = Path(self.config.work_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        store = self.stores(run_dir)
        original = store.put(loaded.rgb)
        alpha_id = store.put(np.repeat(loaded.alpha[..., None], 3, axis=2)) if loaded.alpha is not None else None
        t0 = time.perf_counter()
        box = opaque_box(loaded.alpha)  # transparent borders are no part of the photo
        report = self.assessor(crop_box(loaded.rgb, box))
        # Decided once, on the input: a dark noisy photo stays dark to the observer after denoising.
        trust = trusts_network_low_light(report)
        report = apply_low_light_rule(report, trust)
        observing = time.perf_counter() - t0
        get_stream_writer()(
            {"event": "assessed", "image_id": original, "degradations": report.degradations, "quality": report.quality,
             "niqe": report.measures.get("niqe")}
        )
        return {
            "run_dir": str(run_dir),
            "started_at": time.time(),
            "original_id": original,
            "current_id": original,
            "alpha_id": alpha_id,
            "visible_box": box,
            "notes": loaded.notes,
            "size_request": size.model_dump(),
            "input_size": tuple(loaded.rgb.shape[:2]),
            "degradations_before": report.degradations,
            "quality_before": report.quality,
            "degradations": report.degradations,
            "assessment": report.model_dump(),
            "quality": report.quality,
            "low_light_trust_network": trust,
            "observing_seconds": observing,
            "plan": list(report.present),
            "steps": [],
            "turn": 1,
            "turn_start": 0,
            "instructions": state.get("instructions") or state.get("message"),
            "message": None,
        }

    # -- converse -------------------------------------------------------------------
    def converse(self, state: State) -> dict[str, Any]:
        """Start a new turn on a thread: record the user's message for the brain."""
        text = str(state.get("message") or "").strip()
        output = state.get("output")
        if output and output in state.get("written", []):
            output = None  # last turn's file: this turn writes its own unless told where
        turn = state.get("turn", 1) + 1
        get_stream_writer()({"event": "message", "turn": turn, "text": text})
        return {
            "turn": turn,
            "turn_start": len(state.get("steps", [])),
            "started_at": time.time(),
            "requests": [text],
            "turn_image_id": state["current_id"],
            "message": None,
            "pending": None,
            "output": output,
            "messages": [HumanMessage(text)],
        }

    @staticmethod
    def route_start(state: State) -> str:
        return "converse" if state.get("message") and state.get("current_id") else "perceive"

    # -- brain --------------------------------------------------------------------
    def context(self, state: State) -> dict[str, Any]:
        steps = state.get("steps", [])
        active = active_flags(state["current_id"], state["original_id"], steps)
        turn = state.get("turn", 1)
        sr_scale = self._sr_scale(state)
        tools_by_task = self.toolbox.tools_by_task()
        skip = list(state.get("skip_tasks", []))
        if sr_scale == 0:  # the output keeps its size: super-resolution is not offered
            tools_by_task.pop("low_resolution", None)
            skip.append("low_resolution")
        return {
            "image_id": state["current_id"],
            "original_image_id": state["original_id"],
            "degradations": state["degradations"],
            "present_threshold": PRESENT,
            "found_in_input": state.get("plan", []),
            "quality": state["quality"],
            # the assessor's raw signals (blind σ, blockiness, luminance, presence probabilities, NIQE)
            "measures": (state.get("assessment") or {}).get("measures", {}),
            "tools_by_task": tools_by_task,
            # tools a `restoreagent weights download` would add (their weights are missing here)
            "unavailable_tools": self._downloadable(),
            "skip_tasks": sorted(set(skip)),
            "output_size": {"requested": self._size(state)[0].label(), "super_resolution_scale": sr_scale},
            "history": [
                {
                    **{k: s[k] for k in ("index", "tool", "task", "accepted", "reason", "input_id", "output_id", "args")},
                    "mean_change": s.get("mean_change"),
                    "turn": s.get("turn", 1),
                    "active": active[s["index"]],
                }
                for s in steps
            ],
            "remaining_steps": self._steps_left(state),
            "user_instructions": state.get("instructions"),
            "turn": turn,
            "user_message": state["requests"][-1] if turn > 1 and state.get("requests") else None,
            "requests": state.get("requests", []),
        }

    def _size(self, state: State) -> tuple[SizeRequest, int, int]:
        """The thread's size request and the input's height and width."""
        h, w = state.get("input_size") or (0, 0)
        return SizeRequest.model_validate(state.get("size_request") or {}), h, w

    def _sr_scale(self, state: State) -> int | None:
        size, h, w = self._size(state)
        return size.sr_scale(h, w) if h and w else None

    def _not_offered(self, name: str, state: State) -> str:
        """Why a tool call is refused by the size policy ('' when it is not)."""
        tool = self.toolbox.tools.get(name)
        if tool is not None and tool.spec.task == "low_resolution" and self._sr_scale(state) == 0:
            return f"{name}: super-resolution is not offered, the output keeps its size ({self._size(state)[0].label()})"
        return ""

    def _downloadable(self) -> dict[str, str]:
        """Tools skipped only because their weights are missing: name → task."""
        return {st.name: st.tool_class.spec.task for st in self.toolbox.skipped
                if st.tool_class.spec.weights and (st.tool_class.spec.commercial or not self.config.permissive_only)}

    def _steps_left(self, state: State) -> int:
        return self.config.max_steps - (len(state.get("steps", [])) - state.get("turn_start", 0))

    def _image_block(self, state: State) -> dict[str, Any]:
        """The current image as a standard content block, built now and never stored in state."""
        from PIL import Image

        rgb = self.stores(state["run_dir"]).get(state["current_id"])
        image = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        image.thumbnail((self.config.brain_image_side, self.config.brain_image_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return {"type": "image", "base64": base64.b64encode(buffer.getvalue()).decode("ascii"), "mime_type": "image/png"}

    def brain(self, state: State) -> dict[str, Any]:
        t0 = time.perf_counter()
        text = prompts.render(
            "context",
            step=len(state.get("steps", [])) - state.get("turn_start", 0) + 1,
            max_steps=self.config.max_steps,
            context_json=json.dumps(self.context(state), indent=1),
        )
        content: Any = [{"type": "text", "text": text}, self._image_block(state)] if self.send_image else text
        messages = [SystemMessage(self.toolbox.system_prompt()), HumanMessage(content)]
        reply = self._decide(messages, state)
        calls = reply.tool_calls
        pending = None
        if calls:
            pending = {
                "name": calls[0]["name"], "args": calls[0]["args"], "id": calls[0]["id"],
                # set by the offline policy when the call carries out a user's chat request
                "requested": bool(reply.additional_kwargs.get("user_request")),
            }
        # Every tool call needs an answer in the transcript; only the first one runs.
        skipped = [
            ToolMessage(content="Not executed: one tool call per step.", tool_call_id=c["id"]) for c in calls[1:]
        ]
        get_stream_writer()({"event": "decided", "tool": pending["name"] if pending else None, "text": reply.content})
        update: dict[str, Any] = {"messages": [reply, *skipped], "pending": pending,
                                  "planning_seconds": time.perf_counter() - t0}
        if pending is None:
            update["reply"] = str(reply.content)
        return update

    def _decide(self, messages: list, state: State) -> AIMessage:
        """Ask the brain; on an unusable answer tell it why and retry, then fall back.

        Unusable: an exception (network, parsing), a malformed tool call, an unknown tool,
        arguments its schema rejects, a wrong image id, or an empty reply. After
        ``brain_retries`` retries the offline policy decides this step, so the run never crashes.
        """
        problem = ""
        for _ in range(self.config.brain_retries + 1):
            try:
                reply = self.brain_model.invoke(messages)
                problem = self._problem(reply, state)
            except Exception as exc:  # brain boundary: any model or client failure
                reply, problem = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if not problem:
                return reply
            messages = [*messages, HumanMessage(
                f"Your previous reply was not usable: {problem}. Reply with exactly one valid tool call "
                "on the current image id, or with a short text and no tool call if the image is done."
            )]
        get_stream_writer()({"event": "brain_fallback", "reason": problem})
        reply = self.fallback_model.invoke(messages[:2])
        reply.content = f"[offline policy after brain failure: {problem}] {reply.content}"
        return reply

    def _problem(self, reply: Any, state: State) -> str:
        """Why ``reply`` cannot be executed ('' when it can)."""
        if not isinstance(reply, AIMessage):
            return f"expected an AI message, got {type(reply).__name__}"
        if reply.invalid_tool_calls:
            bad = reply.invalid_tool_calls[0]
            return f"malformed tool call {bad.get('name')!r}: {bad.get('error') or 'arguments are not valid JSON'}"
        if not reply.tool_calls:
            return "" if str(reply.content).strip() else "empty reply (no tool call and no text)"
        call = reply.tool_calls[0]
        if call["name"] == REVERT:
            return self._revert_problem(call["args"], state)
        if call["name"] not in self.toolbox.tools:
            return f"unknown tool {call['name']!r}; available: {', '.join(self.toolbox.tools)}"
        if problem := self._not_offered(call["name"], state):
            return problem
        try:
            args = self.toolbox.validate(call["name"], call["args"])
        except ValidationError as exc:
            first = exc.errors()[0]
            return f"invalid arguments for {call['name']}: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        if args.image_id != state["current_id"]:
            return f"image_id must be the current image {state['current_id']!r}, not {args.image_id!r}"
        return ""

    @staticmethod
    def _revert_problem(args: dict[str, Any], state: State) -> str:
        try:
            target = RevertArgs.model_validate(args).image_id
        except ValidationError as exc:
            return f"invalid arguments for {REVERT}: {exc.errors()[0]['msg']}"
        if target not in known_images(state["original_id"], state.get("steps", [])):
            return f"{REVERT}: {target!r} is not the original or an accepted step's output"
        if target == state["current_id"]:
            return f"{REVERT}: {target!r} is already the current image"
        return ""

    def route_after_brain(self, state: State) -> str:
        if not state.get("pending"):
            return "finish"
        if self._steps_left(state) <= 0:
            return "finish"
        if time.time() - state["started_at"] > self.config.time_budget_s:
            return "finish"
        return "act"

    # -- act ----------------------------------------------------------------------
    def act(self, state: State) -> dict[str, Any]:
        call = state["pending"]
        index = len(state.get("steps", [])) + 1
        result: dict[str, Any] = {"output_id": None, "seconds": 0.0, "error": None}
        if self.config.approve_tools:
            call, refusal, skip = self._ask_approval(call, index, self._describe_call(call, state))
            if refusal:
                return {"pending": {**call, **result, "error": refusal}, "skip_tasks": skip}
        writer = get_stream_writer()
        writer({"event": "tool_start", "step": index, "tool": call["name"], "args": call["args"]})
        t0 = time.perf_counter()
        try:
            if call["name"] == REVERT:
                problem = self._revert_problem(call["args"], state)
                if problem:
                    raise ToolError(problem)
                result["output_id"] = RevertArgs.model_validate(call["args"]).image_id
            elif call["name"] not in self.toolbox.tools:
                raise ToolError(f"unknown tool {call['name']!r}")
            elif problem := self._not_offered(call["name"], state):
                raise ToolError(problem)
            else:
                args = self.toolbox.validate(call["name"], call["args"])
                if args.image_id != state["current_id"]:
                    raise ToolError(f"image id {args.image_id!r} is not the current image {state['current_id']!r}")
                run = self.toolbox.run(
                    call["name"], args, self.stores(state["run_dir"]), self.config.tool_timeout_s,
                    on_progress=lambda done, total: writer(
                        {"event": "tool_progress", "step": index, "tool": call["name"], "tiles_done": done,
                         "tiles": total}))
                result["output_id"] = run.output_id
        except (ToolError, ValidationError, UnknownImageId) as exc:
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        result["seconds"] = round(time.perf_counter() - t0, 4)
        writer({"event": "tool_end", "step": index, "tool": call["name"], **result})
        return {"pending": {**call, **result}}

    def _describe_call(self, call: dict[str, Any], state: State) -> str:
        """A proposed call in the user's words (no image ids)."""
        steps = state.get("steps", [])
        if call["name"] == REVERT:
            target = str(call["args"].get("image_id", ""))
            return f"go back to {describe_image(target, state['original_id'], steps)}"
        tool = self.toolbox.tools.get(call["name"])
        settings = ", ".join(f"{k}={v}" for k, v in call["args"].items() if k != "image_id")
        task = f" ({tool.spec.task})" if tool else ""
        return f"run {call['name']}{task} on the current image" + (f" with {settings}" if settings else "")

    def _ask_approval(
        self, call: dict[str, Any], index: int, description: str,
    ) -> tuple[dict[str, Any], str | None, list[str]]:
        """Pause (LangGraph ``interrupt``) and let the caller approve, edit, reject or skip the call.

        Resume with ``Command(resume=...)``: ``"approve"`` / ``{"action": "approve"}``,
        ``{"action": "edit", "args": {...}}`` (merged into the proposed arguments),
        ``"reject"`` / ``{"action": "reject", "reason": "..."}``, or ``"skip"`` (reject, and never
        propose this call's task again in the thread). Returns the call, the refusal, the tasks to skip.
        """
        decision = interrupt({"kind": "approve_tool", "step": index, "tool": call["name"], "args": call["args"],
                              "description": description})
        if isinstance(decision, str):
            decision = {"action": decision}
        action = (decision or {}).get("action", "approve")
        if action == "edit":
            return {**call, "args": {**call["args"], **decision.get("args", {})}}, None, []
        if action == "skip":
            tool = self.toolbox.tools.get(call["name"])
            task = tool.spec.task if tool else call["name"]
            return call, f"rejected by the user: skip {task} from now on", [task] if tool else []
        if action == "reject":
            return call, f"rejected by the user: {decision.get('reason', 'no reason given')}", []
        return call, None, []

    # -- observe ------------------------------------------------------------------
    def observe(self, state: State) -> dict[str, Any]:
        call = state["pending"]
        tool = self.toolbox.tools.get(call["name"])
        task = "undo" if call["name"] == REVERT else tool.spec.task if tool else "unknown"
        step = self._step_fields(state, call, task)
        update: dict[str, Any] = {"pending": None}
        t0 = time.perf_counter()
        accepted, reason, after = self._judge_step(state, call, task, step)
        if after is not None:
            step.update(quality_after=after.quality, niqe_after=after.measures.get("niqe"),
                        degradations_after=after.degradations)
            if accepted:
                update.update(current_id=call["output_id"], degradations=after.degradations,
                              assessment=after.model_dump(), quality=after.quality)
        update["observing_seconds"] = time.perf_counter() - t0
        record = Step(accepted=accepted, reason=reason, **step).model_dump()
        get_stream_writer()({"event": "observed", "step": record["index"], "tool": record["tool"], "accepted": accepted,
                             "reason": reason, **{k: record[k] for k in ("quality_before", "quality_after",
                                                                         "niqe_before", "niqe_after")}})
        update["steps"] = [record]
        verdict = "accepted" if accepted else "rolled back"
        update["messages"] = [ToolMessage(content=f"{verdict}: {reason}", tool_call_id=call["id"], name=call["name"])]
        return update

    @staticmethod
    def _step_fields(state: State, call: dict[str, Any], task: str) -> dict[str, Any]:
        """What the step record says before the step is judged."""
        return dict(
            index=len(state.get("steps", [])) + 1,
            tool=call["name"],
            task=task,
            args=call["args"],
            input_id=state["current_id"],
            output_id=call.get("output_id"),
            quality_before=state["quality"],
            niqe_before=(state.get("assessment") or {}).get("measures", {}).get("niqe"),
            seconds=call.get("seconds", 0.0),
            turn=state.get("turn", 1),
            requested=bool(call.get("requested")),
        )

    def _judge_step(self, state: State, call: dict[str, Any], task: str,
                    step: dict[str, Any]) -> tuple[bool, str, Assessment | None]:
        """Accept or roll back, why, and the output's assessment (None when there is no output to judge)."""
        if call.get("error"):
            err = call["error"]
            return False, err if err.startswith("rejected") else f"tool failed: {err}", None
        if call["name"] != REVERT and call.get("output_id") == state["current_id"]:
            # Images are stored by content, so an unchanged image keeps its id; accepting such a
            # step would put nothing on the lineage, and the brain would see the task as undone.
            return False, "the tool left the image unchanged", None
        store = self.stores(state["run_dir"])
        output = store.get(call["output_id"])
        before_rgb = store.get(state["current_id"])
        if call["name"] != REVERT and output.shape == before_rgb.shape:
            step["mean_change"] = round(float(np.mean(np.abs(output - before_rgb))) * 255.0, 4)
        visible = crop_box(output, state.get("visible_box"))
        after = apply_low_light_rule(self.assessor(visible), bool(state.get("low_light_trust_network")))
        if call["name"] == REVERT:
            note = call["args"].get("reason") or "asked to undo"
            target = describe_image(call["output_id"], state["original_id"], state.get("steps", []))
            return True, f"back to {target} ({note})", after
        if step.get("mean_change") is not None and step["mean_change"] < VISIBLE_CHANGE:
            # Keeping it would close the task for a change nobody can see.
            return False, f"no visible change (mean change {step['mean_change']:.2f}/255)", after
        accepted, reason = judge(
            task, state["degradations"], after, step["quality_before"], self.config.accept_tolerance,
            requested=bool(call.get("requested")), niqe_before=step["niqe_before"],
            niqe_rise_limit=self.config.niqe_rise_limit,
        )
        if self.verifier is not None and not call.get("requested"):
            # The assessor proposed the step, so its readings are no evidence of a gain (they go
            # down after a harmful gamma), nor of harm ("quality" falls after real denoising):
            # the verifier, trained on fidelity against ground truth, decides alone.
            verdict = self.verifier(crop_box(before_rgb, state.get("visible_box")), visible,
                                    task, state.get("assessment") or {}, after.model_dump())
            step["predicted_gain_db"] = round(verdict.gain_db, 3)
            accepted, reason = verdict.accept, f"{verdict.reason}; assessor: {reason}"
        return accepted, reason, after

    # -- finish -------------------------------------------------------------------
    def finish(self, state: State) -> dict[str, Any]:
        store = self.stores(state["run_dir"])
        turn = state.get("turn", 1)
        default = Path(state["run_dir"]) / ("restored.png" if turn == 1 else f"restored-turn{turn}.png")
        out = Path(state.get("output") or default)
        steps = state.get("steps", [])
        previous = (state.get("written") or [None])[-1]
        changed = turn == 1 or state["current_id"] != state.get("turn_image_id")
        if not changed and previous and Path(previous).is_file():
            # Nothing changed this turn: no second, identical file.
            return self._finished(state, Path(previous), changed=False, size=state.get("size"))
        rgb = store.get(state["current_id"])
        size, h, w = self._size(state)
        produced = rgb.shape[:2]
        if h and w and (target := size.size(h, w)):
            rgb = resize_to(rgb, *target)
        by_index = {s["index"]: s for s in steps}
        sr_steps = [by_index[i] for i in lineage(state["current_id"], state["original_id"], steps)
                    if by_index[i]["task"] == "low_resolution"]
        report = size_report(size, (h, w) if h else produced, produced, rgb.shape[:2], sr_steps,
                             self.config.full_resolution_side)
        alpha = None
        if state.get("alpha_id"):
            alpha = store.get(state["alpha_id"])[..., 0]
            if alpha.shape != rgb.shape[:2]:
                import cv2

                alpha = cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        save_png(rgb, out, overwrite=bool(state.get("overwrite")) or not state.get("output"), alpha=alpha)
        return {**self._finished(state, out, changed=True, size=report.model_dump()), "written": [str(out)]}

    def _finished(self, state: State, out: Path, changed: bool, size: dict[str, Any] | None) -> dict[str, Any]:
        """The end of a turn: the reply in the user's words and the final event."""
        self.stores.close(state["run_dir"])  # the turn is over: its images stay on disk only
        if not state.get("pending"):
            reason = "the brain is done"
        elif self._steps_left(state) <= 0:
            reason = f"step budget ({self.config.max_steps}) reached"
        else:
            reason = f"time budget ({self.config.time_budget_s:g} s) reached"
        reply = without_ids((state.get("reply") or "") if not state.get("pending") else reason,
                            state["original_id"], state.get("steps", []))
        if not changed:
            reply = f"{reply}\n\nNothing changed, so no new image was saved.".strip()
        get_stream_writer()({"event": "finished", "output": str(out), "reason": reason, "reply": reply,
                             "changed": changed})
        turn = state.get("turn", 1)
        message = state["requests"][-1] if turn > 1 and state.get("requests") else None
        return {"output": str(out), "done_reason": reason, "pending": None, "reply": reply, "changed": changed,
                "size": size, "transcript": [{"turn": turn, "message": message, "reply": reply, "output": str(out)}]}

