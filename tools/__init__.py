"""Typed restoration tools and their registry.

Importing this package registers the built-in tools in ``default_registry``.
"""

from . import deblur, dehaze, denoise, derain, jpeg, lowlight, superres  # noqa: F401  (registration side effect)
from .base import DEGRADATIONS, RestorationTool, ToolArgs, ToolContext, ToolError, ToolSpec, ToolUnavailable
from .registry import ToolRegistry, default_registry, register

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
