"""Training scripts for the compact models we ship in ``restoreagent/checkpoints``.

Run ``python -m restoreagent.tools.training.restorers --help``; see docs/TRAINING.md.
"""
