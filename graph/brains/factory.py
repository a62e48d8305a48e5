"""``make_brain``: a brain from a short spec string (CLI ``--brain``, env ``RESTOREAGENT_BRAIN``).

=======================  ======================================================  =====================================
spec                     brain                                                   needs
=======================  ======================================================  =====================================
``offline`` (default)    the offline policy: the learned planner                 nothing
``offline:rules``        the offline policy's fixed-order rules                  nothing
``qwen-vl:DIR``          a local Qwen2-VL / Qwen2.5-VL from DIR (transformers)   the model files in DIR
``openai:MODEL``         OpenAI or any OpenAI-compatible server (vLLM, LM        ``pip install restoreagent[openai]``;
                         Studio, llama.cpp): set ``OPENAI_BASE_URL``             ``OPENAI_API_KEY``
``anthropic:MODEL``      Anthropic Claude                                        ``pip install restoreagent[anthropic]``
``ollama:MODEL``         a local Ollama server (``OLLAMA_HOST``)                 ``pip install restoreagent[ollama]``
=======================  ======================================================  =====================================

Any other langchain-core chat model with tool calling and image input works
from Python: ``build_graph(brain=model)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from langchain_core.language_models import BaseChatModel

_PROVIDERS: dict[str, tuple[str, str, str]] = {
    # prefix: (module, class, extra)
    "openai": ("langchain_openai", "ChatOpenAI", "openai"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "anthropic"),
    "ollama": ("langchain_ollama", "ChatOllama", "ollama"),
}


class BrainSpecError(ValueError):
    """A ``--brain`` spec that cannot be turned into a brain (one-line message)."""


def make_brain(spec: str | None, **kwargs: Any) -> BaseChatModel:
    """The chat model named by ``spec`` (see the module docstring); ``kwargs`` go to its constructor."""
    spec = (spec or "offline").strip()
    kind, _, arg = spec.partition(":")
    if kind == "offline" and arg in ("", "rules", "learned"):
        from restoreagent.graph.brains.offline import OfflinePolicy

        return OfflinePolicy(learned=arg != "rules")  # "offline:learned" names the default
    if kind == "qwen-vl":
        if not arg:
            raise BrainSpecError("qwen-vl needs a model folder: --brain qwen-vl:/path/to/Qwen2-VL-2B-Instruct")
        from restoreagent.graph.brains.transformers_vlm import TransformersVLM

        try:
            return TransformersVLM(model_dir=arg, **kwargs)
        except ValueError as exc:
            raise BrainSpecError(str(exc).splitlines()[0]) from None
    if kind in _PROVIDERS:
        if not arg:
            raise BrainSpecError(f"{kind} needs a model name, e.g. --brain {kind}:MODEL")
        module_name, class_name, extra = _PROVIDERS[kind]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise BrainSpecError(
                f"the {kind} brain needs {module_name}: pip install 'restoreagent[{extra}]'"
            ) from None
        return getattr(module, class_name)(model=arg, **kwargs)
    raise BrainSpecError(
        f"unknown brain {spec!r}; use offline, offline:rules, qwen-vl:DIR, openai:MODEL, anthropic:MODEL "
        "or ollama:MODEL"
    )
