"""Planning: the learned ranker the offline brain plans with."""
