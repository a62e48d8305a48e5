"""Prompt templates (markdown files beside this module), rendered with str.format."""

from __future__ import annotations

from importlib import resources


def render(name: str, **values: object) -> str:
    """Render the template ``<name>.md`` with ``values``."""
    text = resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return text.format(**values)
