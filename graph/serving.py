"""The graph that ``langgraph dev`` (and LangGraph Platform) serves; see ``langgraph.json``.

Images are passed **by path**: the server reads the photo from its own disk and writes
the restored PNG into its run folder (or to ``output``), so client and server must
share a filesystem. Configure with the usual ``RESTOREAGENT_*`` environment variables.
"""

from restoreagent.graph.graph import build_graph
from restoreagent.tools.util.allocator import keep_freed_memory

keep_freed_memory()  # the server is this process's owner: tools/util/allocator.py
graph = build_graph()
