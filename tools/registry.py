"""The tool registry: adding a model is one decorated class.

``@register`` adds a :class:`RestorationTool` subclass to the default registry
when its module is imported; the default registry imports the built-in tool modules the
first time it is asked about its tools (so importing the package stays fast). A
:class:`ToolRegistry` can be copied and extended (tests add a deliberately harmful tool
that way) and is passed to ``build_graph``.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Iterable

from restoreagent.tools.base import RestorationTool, ToolContext, ToolUnavailable, WeightsMissing

BUILTIN_MODULES = tuple(f"restoreagent.tools.{m}" for m in
                        ("deblur", "dehaze", "denoise", "derain", "jpeg", "lowlight", "superres"))


@dataclass(frozen=True)
class ToolStatus:
    """Whether a registered tool can run here, and if not, why."""

    name: str
    tool_class: type[RestorationTool]
    available: bool
    reason: str = ""
    missing_weights: bool = False  # `restoreagent weights download` would make it available


class ToolRegistry:
    """A name → tool-class mapping with availability checks."""

    def __init__(self, classes: Iterable[type[RestorationTool]] = (), modules: Iterable[str] = ()) -> None:
        """``modules``: imported on first use; their ``@register`` decorators add their tools."""
        self._classes: dict[str, type[RestorationTool]] = {}
        self._modules = tuple(modules)
        self._loading = threading.RLock()  # a second thread waits until every module has registered
        for cls in classes:
            self.register(cls)

    def _load_modules(self) -> dict[str, type[RestorationTool]]:
        with self._loading:
            modules, self._modules = self._modules, ()
            for name in modules:
                importlib.import_module(name)
        return self._classes

    def __getstate__(self) -> dict:
        # Sent to Ray workers (batch.py): the classes travel, the lock is made anew there.
        return {"classes": list(self._load_modules().values())}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["classes"])

    def register(self, cls: type[RestorationTool]) -> type[RestorationTool]:
        """Add a tool class; usable as a class decorator."""
        name = cls.spec.name
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"a tool named {name!r} is already registered")
        self._classes[name] = cls
        return cls

    def copy(self) -> "ToolRegistry":
        return ToolRegistry(self._load_modules().values())

    def names(self) -> list[str]:
        return list(self._load_modules())

    def classes(self) -> list[type[RestorationTool]]:
        return list(self._load_modules().values())

    def __contains__(self, name: str) -> bool:
        return name in self._load_modules()

    def __getitem__(self, name: str) -> type[RestorationTool]:
        return self._load_modules()[name]

    def status(self, context: ToolContext, permissive_only: bool = False) -> list[ToolStatus]:
        """Check every tool: weights present and verified, licence allowed."""
        out = []
        for name, cls in self._load_modules().items():
            if permissive_only and not cls.spec.commercial:
                out.append(ToolStatus(name, cls, False, f"licence {cls.spec.license} excluded by --permissive-only"))
                continue
            try:
                cls(context).check_available()
            except ToolUnavailable as exc:
                out.append(ToolStatus(name, cls, False, str(exc), isinstance(exc, WeightsMissing)))
            else:
                out.append(ToolStatus(name, cls, True))
        return out

    def instantiate(
        self, context: ToolContext, permissive_only: bool = False
    ) -> tuple[dict[str, RestorationTool], list[ToolStatus]]:
        """Instances of the available tools, plus the status of those skipped."""
        tools: dict[str, RestorationTool] = {}
        skipped: list[ToolStatus] = []
        for st in self.status(context, permissive_only):
            if st.available:
                tools[st.name] = st.tool_class(context)
            else:
                skipped.append(st)
        return tools, skipped


default_registry = ToolRegistry(modules=BUILTIN_MODULES)
register = default_registry.register
