"""The typed restoration tool: metadata, argument schema, lazy loading, execution.

A tool is one class. It declares a :class:`ToolSpec` (what it does, which model,
licence, cost), an ``Args`` pydantic schema (always starting with ``image_id``)
and implements :meth:`RestorationTool.process` on a float32 RGB array in [0, 1].
Everything else (weights lookup, device choice, lazy loading, tiling, output
checks) is shared here so that adding a model stays one short class.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Degradation = Literal[
    "noise",
    "motion_blur",
    "defocus_blur",
    "jpeg",
    "low_light",
    "haze",
    "rain",
    "low_resolution",
]
DEGRADATIONS: tuple[str, ...] = Degradation.__args__  # type: ignore[attr-defined]


class ToolError(RuntimeError):
    """A tool could not run or produced an unusable result (the step is rolled back)."""


class ToolUnavailable(ToolError):
    """A tool cannot be used in this installation (missing weights, missing package)."""


class WeightsMissing(ToolUnavailable):
    """Weights that are not here yet and that ``restoreagent weights download`` can fetch."""


class ToolArgs(BaseModel):
    """Arguments every restoration tool takes. Subclasses add typed parameters."""

    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(
        description="Id of the image to process, as given in the context (never a file path)."
    )


class ToolSpec(BaseModel):
    """What a tool is, for the brain, the docs and `restoreagent tools`."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Unique tool name the brain calls, e.g. 'denoise_ffdnet'.")
    task: Degradation = Field(description="The degradation this tool removes.")
    model: str = Field(description="Human-readable model or method name.")
    license: str
    commercial: bool = Field(description="Whether the licence allows commercial use.")
    weights: tuple[str, ...] = Field(
        default=(), description="Weights-manifest ids this tool needs (empty: none)."
    )
    learned: bool = Field(description="A learned model (as opposed to a classical method).")
    cost: float = Field(description="Rough CPU seconds per megapixel.")
    description: str

    @property
    def needs_weights(self) -> bool:
        return bool(self.weights)


@dataclass(frozen=True)
class ToolContext:
    """What a tool needs from its surroundings; passed in, never global."""

    weights: "WeightsResolver"  # noqa: F821 - defined in tools.weights
    device: str = "cpu"
    tile_size: int = 512
    tile_overlap: int = 32
    extra: dict[str, Any] = field(default_factory=dict)


class RestorationTool(ABC):
    """Base class of every restoration tool.

    Subclasses set ``spec`` and ``Args`` and implement :meth:`process`; learned
    tools also implement :meth:`load` (called once, lazily, under a lock).
    """

    spec: ClassVar[ToolSpec]
    Args: ClassVar[type[ToolArgs]] = ToolArgs

    def __init__(self, context: ToolContext) -> None:
        self.context = context
        self._loaded = False
        self._lock = threading.Lock()

    # -- availability and loading -------------------------------------------------
    def weight_paths(self) -> dict[str, Path]:
        """Resolve (and verify) every weights file this tool needs.

        Raises :class:`ToolUnavailable` with a one-line reason when one is missing.
        """
        return {wid: self.context.weights.resolve(wid) for wid in self.spec.weights}

    def check_available(self) -> None:
        """Raise :class:`ToolUnavailable` if the tool cannot run here."""
        self.weight_paths()

    def load(self) -> None:
        """Build the model; default: nothing to load."""

    def ensure_loaded(self) -> None:
        """Load once; a failure other than a :class:`ToolError` becomes :class:`ToolUnavailable`
        (a library without the API the tool needs, say), so callers see one line, not a crash."""
        with self._lock:
            if not self._loaded:
                try:
                    self.load()
                except ToolError:
                    raise
                except Exception as exc:
                    raise ToolUnavailable(f"{self.spec.name} cannot be loaded here: {type(exc).__name__}: {exc}") from exc
                self._loaded = True

    # -- execution ----------------------------------------------------------------
    @abstractmethod
    def process(self, image: np.ndarray, args: ToolArgs) -> np.ndarray:
        """Restore ``image`` (H×W×3 float32 in [0, 1]) and return the result."""

    def __call__(self, image: np.ndarray, args: ToolArgs) -> np.ndarray:
        self.ensure_loaded()
        out = self.process(image, args)
        return check_output(out, image, self.expected_scale(args), self.spec.name)

    def expected_scale(self, args: ToolArgs) -> int:
        """Output size / input size; super-resolution tools override this."""
        return 1


def check_output(out: Any, image: np.ndarray, scale: int, name: str) -> np.ndarray:
    """Reject results that would poison the pipeline (wrong shape, NaN, Inf)."""
    if not isinstance(out, np.ndarray):
        raise ToolError(f"{name} returned {type(out).__name__}, not an image array")
    h, w = image.shape[:2]
    expected = (h * scale, w * scale, 3)
    if out.shape != expected:
        raise ToolError(f"{name} returned shape {out.shape}, expected {expected}")
    if not np.isfinite(out).all():
        raise ToolError(f"{name} returned NaN or Inf values")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
