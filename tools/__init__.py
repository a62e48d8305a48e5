"""Typed restoration tools and their registry.

``default_registry`` imports the built-in tools (and torch) the first time it is asked about them,
so that importing this package, or a light module of it, stays fast.
"""

from restoreagent.tools.base import (
    DEGRADATIONS,
    RestorationTool,
    ToolArgs,
    ToolContext,
    ToolError,
    ToolSpec,
    ToolUnavailable,
)
from restoreagent.tools.registry import ToolRegistry, default_registry, register

__all__ = [
    "DEGRADATIONS",
    "RestorationTool",
    "ToolArgs",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "ToolUnavailable",
    "ToolRegistry",
    "default_registry",
    "register",
]
