"""The LangGraph state machine: state, nodes, brains, artifact store, configuration."""
