"""RestoreAgent: an open agent that restores photos with several degradations at once.

Public API::

    from restoreagent import build_graph, restore

    graph = build_graph()
    state = graph.invoke({"image": "photo.jpg"})
    result = restore("photo.jpg", output="photo_restored.png")
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["build_graph", "restore", "RestoreResult", "Configuration"]

if TYPE_CHECKING:
    from restoreagent.graph.api import RestoreResult, restore
    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.graph import build_graph


def __getattr__(name: str):
    # Lazy so that `import restoreagent.tools...` and the CLI's --help stay fast.
    if name == "build_graph":
        from restoreagent.graph.graph import build_graph

        return build_graph
    if name in ("restore", "RestoreResult"):
        from restoreagent.graph import api

        return getattr(api, name)
    if name == "Configuration":
        from restoreagent.graph.configuration import Configuration

        return Configuration
    raise AttributeError(f"module 'restoreagent' has no attribute {name!r}")
