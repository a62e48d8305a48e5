"""The compact models we ship (``*.pt``, with a ``*.json`` report each) and the manifests beside them.

One way to find them: :func:`checkpoint_file`. ``REPO`` and ``SHARED`` are where training and evaluation
scripts look by default (the repository, and ``../shared`` beside it).
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
REPO = DIR.parent
SHARED = REPO.parent / "shared"


def checkpoint_file(name: str) -> Path:
    """The path of a shipped checkpoint or manifest, e.g. ``checkpoint_file("verifier.pt")``."""
    return DIR / name
