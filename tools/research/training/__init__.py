"""Training scripts for the compact models we ship in ``restoreagent/checkpoints``.

Run ``python -m restoreagent.tools.research.training.restorers --help``; see docs/TRAINING.md.
"""
