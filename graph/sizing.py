"""The output size: the agent's decision (``auto``) or the caller's (a scale, or a target short side).

``auto`` (the default) keeps what the agent decides: a photo that reads as low resolution
(short side under ``full_resolution_side``, 512 px by default, or blocky upsampled content)
is enlarged by a super-resolution step that the observer kept. It is the default because the
benchmarks' low-resolution degradation is a ×1/4 downscale, which only an upscale restores.
A fixed size (``1``, ``2``, ``4`` or ``target_side``) is the caller's: super-resolution is
offered only when the output is to be larger, at the nearest of ×2 / ×4, and the finished
image is resized (Lanczos, or area when shrinking) to exactly the size asked for.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, BeforeValidator, Field, model_validator

#: Above this factor the ×4 models are closer than the ×2 ones (the geometric middle of 2 and 4).
SR_X4_ABOVE = 2 ** 1.5


def _coerce_scale(value: Any) -> Any:
    """``"2"`` (a command line, a JSON client) means the number 2."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


ScaleSetting = Annotated[Literal["auto", 1, 2, 4], BeforeValidator(_coerce_scale)]


class SizeRequest(BaseModel):
    """How large the output should be."""

    scale: ScaleSetting = Field(
        default="auto", description="'auto' (the agent decides), or 1, 2, 4: the output is that many times the input's size."
    )
    target_side: int | None = Field(
        default=None, ge=8, le=65536, description="The output's short side in px (instead of a scale)."
    )

    @model_validator(mode="after")
    def _one_of(self) -> "SizeRequest":
        if self.target_side is not None and self.scale != "auto":
            raise ValueError("give a scale or a target side, not both")
        return self

    def factor(self, height: int, width: int) -> float | None:
        """Output side / input side, or None when the agent decides."""
        if self.target_side is not None:
            return self.target_side / min(height, width)
        return None if self.scale == "auto" else float(self.scale)

    def size(self, height: int, width: int) -> tuple[int, int] | None:
        """The output's (height, width), or None when the agent decides."""
        f = self.factor(height, width)
        return None if f is None else (max(1, round(height * f)), max(1, round(width * f)))

    def sr_scale(self, height: int, width: int) -> int | None:
        """The super-resolution factor to run (2 or 4), None where the size is the agent's, 0 where
        super-resolution is not offered (the output is to be no larger than the input)."""
        f = self.factor(height, width)
        if f is None:
            return None
        return 0 if f <= 1.0 else (2 if f <= SR_X4_ABOVE else 4)

    def label(self) -> str:
        return f"target side {self.target_side} px" if self.target_side is not None else f"scale {self.scale}"


class SizeReport(BaseModel):
    """Which size the output got, and why (in the report of every run)."""

    requested: str = Field(description="'scale auto' (default), 'scale 1|2|4' or 'target side N px'.")
    input: tuple[int, int] = Field(description="Input width × height.")
    output: tuple[int, int] = Field(description="Output width × height.")
    scale: float = Field(description="Output width / input width.")
    reason: str


def resize_to(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """``rgb`` at exactly ``height`` × ``width`` (area when shrinking, Lanczos when enlarging)."""
    if rgb.shape[:2] == (height, width):
        return rgb
    shrink = height * width < rgb.shape[0] * rgb.shape[1]
    out = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    return np.clip(out, 0.0, 1.0)


def size_report(
    request: SizeRequest, input_hw: Sequence[int], produced_hw: Sequence[int], output_hw: Sequence[int],
    sr_steps: Sequence[dict[str, Any]], full_resolution_side: int,
) -> SizeReport:
    """Say which size was used and why. ``produced_hw``: the agent's image before any final resize;
    ``sr_steps``: the kept super-resolution steps that made it."""
    (h, w), (ph, pw), (oh, ow) = input_hw, produced_hw, output_hw
    tools = " then ".join(f"{s['tool']} ×{s['args'].get('scale', 4)}" for s in sr_steps)
    if request.factor(h, w) is None:
        if sr_steps:
            reason = (f"auto (the default): the photo read as low resolution (short side {min(h, w)} px; full "
                      f"resolution is {full_resolution_side} px), so the agent upscaled it with {tools}")
        else:
            reason = "auto (the default): no super-resolution step was kept, so the output has the input's size"
    else:
        asked = f"{request.label()} (asked)"
        if (ph, pw) == (oh, ow):
            reason = f"{asked}: made by {tools}" if sr_steps else f"{asked}: the output has the input's size"
        elif sr_steps:
            reason = f"{asked}: {tools}, then resized from {pw}×{ph} to {ow}×{oh}"
        elif request.sr_scale(h, w) == 0:
            reason = f"{asked}: super-resolution is not offered when the output is no larger; resized to {ow}×{oh}"
        else:
            reason = f"{asked}: no super-resolution step was kept, so the photo was resized (Lanczos) to {ow}×{oh}"
    return SizeReport(requested=request.label(), input=(w, h), output=(ow, oh), scale=round(ow / w, 4), reason=reason)
