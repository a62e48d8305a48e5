"""Planning: the exhaustive oracle, baseline planners and the MiO benchmark."""
