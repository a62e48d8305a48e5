"""Evaluation and training, apart from the product.

``evaluation/`` (benchmarks, oracle labels, studies) and ``training/`` (the scripts that made every
checkpoint in ``checkpoints/``). Only the CLI's bench and train commands import this package; nothing the
agent runs does (``tests/test_layout.py`` checks it).
"""
