"""Perception and verification: what an image suffers from, and whether a step helped.

``assess`` (the learned assessor, the rule-based fallback in ``rules``), the signal estimators the tools
share (``noise_sigma``, ``jpeg_quality``, ``niqe``), the noise-level regressor and the step verifier.
Nothing here imports a restoration tool.
"""
