"""A local vision-language brain: Qwen2-VL / Qwen2.5-VL run with 🤗 transformers.

``TransformersVLM`` is a langchain-core ``BaseChatModel``, so the graph uses it
like any tool-calling LLM. Small local VLMs have no reliable native tool-calling
format, so the tools are described in the system prompt and the model is asked
for one JSON object, ``{"tool": ..., "args": {...}}`` or ``{"done": "..."}``;
:func:`parse_decision` turns the reply into an ``AIMessage``. Output that is not
such a decision becomes an ``invalid_tool_call`` (never an exception), so the
graph's validator tells the model why, retries, and falls back to the offline policy.

Everything is offline: the model is loaded from a local folder, lazily, on the
first call. ``transformers`` is imported only then, so other brains start fast.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

#: ``model_type`` values in config.json that this adapter's prompt format and processor calls fit.
SUPPORTED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")

_DECISION_HELP = 'answer with exactly one JSON object: {"tool": "<name>", "args": {...}} or {"done": "<short reason>"}'


def _check_model_dir(model_dir: str) -> None:
    """Fail at construction, in one line, rather than on every step inside the graph's retry loop."""
    config = Path(model_dir).expanduser() / "config.json"
    if not config.is_file():
        raise ValueError(f"no Qwen2-VL model in {model_dir}: config.json missing")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ValueError(f"no Qwen2-VL model in {model_dir}: unreadable config.json ({exc})") from None
    if model_type not in SUPPORTED_MODEL_TYPES:
        supported = ", ".join(SUPPORTED_MODEL_TYPES)
        raise ValueError(f"no Qwen2-VL model in {model_dir}: model_type {model_type!r} is not one of {supported}")


def _first_json_object(text: str) -> Any:
    """The first balanced ``{...}`` in ``text`` that parses as JSON (fences and prose around it are ignored)."""
    start = text.find("{")
    while start != -1:
        depth, in_str, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : i + 1])
                    except ValueError:
                        break
        start = text.find("{", start + 1)
    return None


def parse_decision(text: str) -> AIMessage:
    """Turn the model's raw reply into a tool call, a "done" message, or an invalid tool call.

    ``{"name": ..., "arguments": ...}`` (Qwen's native tool-call keys) is accepted as well.
    """
    obj = _first_json_object(text)
    if isinstance(obj, dict):
        tool = obj.get("tool", obj.get("name"))
        args = obj.get("args", obj.get("arguments", {}))
        if isinstance(tool, str) and tool.strip() and isinstance(args, dict):
            call = {"name": tool.strip(), "args": args, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}
            return AIMessage(content=text, tool_calls=[call])
        if "done" in obj and tool is None:
            return AIMessage(content=str(obj["done"]).strip() or "done")
    bad = {
        "name": None,
        "args": text[:500],
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "error": f"no JSON decision in the reply; {_DECISION_HELP}",
        "type": "invalid_tool_call",
    }
    return AIMessage(content=text, invalid_tool_calls=[bad])


def tools_instruction(tools: Sequence[dict[str, Any]]) -> str:
    """The system-prompt addendum that lists the bound (OpenAI-format) tools and the reply format."""
    lines = ["", "Tools you can call:"]
    for tool in tools:
        fn = tool.get("function", tool)
        schema = json.dumps(fn.get("parameters", {}), separators=(",", ":"))
        lines.append(f"- {fn['name']}: {fn.get('description', '').strip()}\n  args JSON schema: {schema}")
    if not tools:
        lines.append("- (none)")
    lines.append(f"Reply format: {_DECISION_HELP}. One tool call per reply; no other text.")
    return "\n".join(lines)


def decode_image(block: dict[str, Any], max_side: int):
    """A PIL RGB image from a langchain v1 ``image`` block or an OpenAI ``image_url`` block, downscaled."""
    from PIL import Image

    if block.get("type") == "image_url":
        url = block["image_url"]["url"] if isinstance(block["image_url"], dict) else block["image_url"]
    else:
        url = block.get("url") or ""
    data = block.get("base64") or block.get("data")
    if data is None and url.startswith("data:") and "," in url:
        data = url.split(",", 1)[1]
    if data is None:
        raise ValueError("only inline images (base64 or data: URLs) are supported: the brain runs offline")
    image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    image.thumbnail((max_side, max_side))
    return image


class TransformersVLM(BaseChatModel):
    """A local Qwen2-VL / Qwen2.5-VL as a brain: ``TransformersVLM(model_dir="~/models/Qwen2.5-VL-3B-Instruct")``."""

    model_dir: str
    """A folder written by ``save_pretrained`` (model + processor); nothing is downloaded."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """'auto' (bfloat16 on CUDA, float32 on CPU) or a torch dtype name."""
    max_new_tokens: int = 256
    image_max_side: int = 448
    """Images are downscaled to this longest side first: vision tokens grow with the pixel count."""

    _loaded: tuple[Any, Any] | None = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        _check_model_dir(self.model_dir)

    @property
    def _llm_type(self) -> str:
        return "restoreagent-transformers-vlm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "max_new_tokens": self.max_new_tokens}

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _load(self) -> tuple[Any, Any]:
        """(model, processor), loaded once per instance; the lock keeps concurrent runs from loading twice."""
        with self._lock:
            if self._loaded is None:
                import torch
                from transformers import AutoModelForImageTextToText, AutoProcessor

                device = self.device if self.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
                if self.dtype == "auto":
                    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
                else:
                    dtype = getattr(torch, self.dtype)
                path = str(Path(self.model_dir).expanduser())
                model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device).eval()
                self._loaded = (model, AutoProcessor.from_pretrained(path))
            return self._loaded

    def to_chat(self, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> tuple[list[dict], list]:
        """Langchain messages → (processor chat turns, PIL images in order of appearance)."""
        system, turns, images = [], [], []
        for msg in messages:
            if isinstance(msg, SystemMessage):
                system.append(msg.text)
                continue
            blocks: list[dict] = []
            if isinstance(msg, AIMessage) and msg.tool_calls:
                text = "\n".join(json.dumps({"tool": c["name"], "args": c["args"]}) for c in msg.tool_calls)
                blocks.append({"type": "text", "text": text})
            elif isinstance(msg.content, str):
                blocks.append({"type": "text", "text": msg.content})
            else:
                for part in msg.content:
                    if isinstance(part, str):
                        blocks.append({"type": "text", "text": part})
                    elif part.get("type") == "text":
                        blocks.append({"type": "text", "text": part.get("text", "")})
                    elif part.get("type") in ("image", "image_url"):
                        images.append(decode_image(part, self.image_max_side))
                        blocks.append({"type": "image"})
            if isinstance(msg, ToolMessage):
                # Qwen2-VL's template has no tool role: the result goes back as a user turn.
                blocks.insert(0, {"type": "text", "text": f"Result of {msg.name or 'the tool call'}: "})
            role = "assistant" if isinstance(msg, AIMessage) else "user"
            turns.append({"role": role, "content": blocks})
        prompt = "\n\n".join(system) + tools_instruction(tools)
        return [{"role": "system", "content": [{"type": "text", "text": prompt}]}, *turns], images

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        model, processor = self._load()
        chat, images = self.to_chat(messages, kwargs.get("tools", []))
        text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=images or None, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        raw = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
        for s in stop or ():
            raw = raw.split(s, 1)[0]
        return ChatResult(generations=[ChatGeneration(message=parse_decision(raw.strip()))])
