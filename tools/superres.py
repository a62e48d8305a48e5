"""Super-resolution tools (task ``low_resolution``): the output is ``scale`` times larger.

Three tools, each for ×2 and ×4 (the default, matching the MiO degradation: a
Pillow antialiased bicubic ×1/4 downscale, :func:`tools.util.synthesis.downscale`):

* ``sr_fsrcnn``: FSRCNN ×2 (our PyTorch module, :mod:`tools.nets.fsrcnn`, with the weights
  of OpenCV's ``dnn_superres`` graph) on the luma, chroma bicubic; ×4 = FSRCNN ×2 →
  Lanczos ×2; then an unsharp mask.
  The best PSNR of the three on photographs.
* ``sr_realesrgan_compact``: Real-ESRGAN compact (SRVGGNetCompact ×4, animevideo-v3
  weights, via spandrel). A GAN-trained network, robust to mildly noisy or
  compressed inputs; its raw output (``strength=1``) is sharp but "painted" and
  below bicubic in PSNR, so by default it is blended with the bicubic upscale.
* ``sr_lanczos``: Pillow Lanczos-3 plus an unsharp mask; no weights.

Why the networks are used this way (measured, PSNR against the clean image minus
PSNR of :func:`upscale_bicubic`; parameters tuned on the ``train`` split):

* The OpenCV ×4 networks (FSRCNN, FSRCNN-small, ESPCN, LapSRN) were trained on
  low-resolution images made with ``cv2.resize(INTER_CUBIC)``, which does not
  antialias. On such inputs they gain 0.6–0.75 dB, but on antialiased ×1/4
  downscales (MiO, and most real resizers) they lose 0.1–0.2 dB to bicubic. The
  ×2 networks do not have this problem (the two downscales differ little at ×2):
  FSRCNN ×2 followed by Lanczos ×2 beat every ×4 network here. ESPCN ×2 is as good
  as FSRCNN ×2 but slower; FSRCNN-small ×2 and LapSRN ×2 are weaker, and LapSRN is
  about 30× slower.
* An antialiased downscale removes more detail than these networks expect, so their
  output stays soft; a fixed unsharp mask (Gaussian σ = 0.375·scale output pixels)
  adds about 0.3–0.45 dB. The same mask helps plain Lanczos (+0.2–0.45 dB).
* ×2 with the ×4-only compact network: ×4, then Pillow Lanczos ×1/2 (antialiased),
  which measured 0.06 dB better than area or bicubic reduction.

Held-out results (``eval`` split: every 5th image, 10 in all, 5 Kodak24 + 5 LIVE1,
cropped to multiples of 4, reduced with ``synthesis.downscale``); PSNR gain over
bicubic (23.90 dB at ×4, 27.37 dB at ×2), and CPU seconds per input megapixel
(one thread, CPU time on a 256×256 input):

==========================  ========  ========  ===========  ===========
tool                        ×4 gain   ×2 gain   s/MP at ×4   s/MP at ×2
==========================  ========  ========  ===========  ===========
``sr_fsrcnn``               +0.44 dB  +0.92 dB  1.3          0.7
``sr_realesrgan_compact``   +0.18 dB  +0.38 dB  12.5         12.5
``sr_lanczos``              +0.22 dB  +0.58 dB  0.4          0.1
==========================  ========  ========  ===========  ===========

With JPEG (q30–50) or noise (σ 5–10) added to the ×1/4 image, ``sr_realesrgan_compact``
stays +0.17 to +0.49 dB above bicubic while ``sr_fsrcnn`` (−0.41 to +0.15) and
``sr_lanczos`` (−0.64 to −0.08) sharpen the artifacts.

:func:`upscale_bicubic` is the reference every SR gain is measured against (the
benchmark uses it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec, ToolUnavailable
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import RestorerTool, TorchTool
from restoreagent.tools.util.tiling import tiled

if TYPE_CHECKING:
    import torch

__all__ = [
    "upscale_bicubic",
    "upscale_lanczos",
    "downscale_lanczos",
    "unsharp",
    "SRArgs",
    "SRFSRCNN",
    "SRRealESRGANCompact",
    "SRLanczos",
    "SROurs",
    "sr_hint",
]

# BT.601 full-range luma: what the OpenCV dnn_superres networks were trained on
# (the studio-range [16, 235] variant measured 0.01-0.04 dB worse).
_LUMA_601 = np.array([0.299, 0.587, 0.114], np.float32)

# Unsharp-mask radius, in output pixels per unit of scale (σ = 1.5 at ×4, 0.75 at ×2).
USM_SIGMA_PER_SCALE = 0.375


# -- classical resampling, shared by the tools and the benchmark --------------------------
def upscale_bicubic(rgb: np.ndarray, scale: int) -> np.ndarray:
    """The reference upscale: OpenCV bicubic (a = −0.75), clipped to [0, 1].

    Super-resolution gains are reported as PSNR(tool) − PSNR(this). On the MiO
    ×1/4 degradation it measured 0.05 dB above Pillow's bicubic (a = −0.5).
    """
    h, w = rgb.shape[:2]
    out = cv2.resize(np.asarray(rgb, np.float32), (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _pil_resize(rgb: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize each channel as a 32-bit float ("F") Pillow image (no 8-bit rounding)."""
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c], np.float32)).resize(size, resample))
        for c in range(rgb.shape[2])
    ]
    return np.stack(chans, axis=-1)


def upscale_lanczos(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Pillow Lanczos-3 upscale (float precision), clipped to [0, 1]."""
    h, w = rgb.shape[:2]
    return np.clip(_pil_resize(rgb, (w * scale, h * scale), Image.Resampling.LANCZOS), 0.0, 1.0)


def downscale_lanczos(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Pillow Lanczos-3 reduction (antialiased: the kernel is stretched by ``factor``)."""
    h, w = rgb.shape[:2]
    return np.clip(_pil_resize(rgb, (w // factor, h // factor), Image.Resampling.LANCZOS), 0.0, 1.0)


def unsharp(rgb: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """``x + amount · (x − Gaussian_σ(x))``, clipped to [0, 1]."""
    if amount <= 0:
        return rgb
    blur = cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.clip(rgb + amount * (rgb - blur), 0.0, 1.0).astype(np.float32)


# -- arguments ------------------------------------------------------------------------------
class SRArgs(ToolArgs):
    """Arguments every super-resolution tool takes."""

    scale: Literal[2, 4] = Field(
        4,
        description=(
            "Upscaling factor; the output is scale times wider and taller. 4 (default) undoes the "
            "usual low-resolution degradation (a 1/4 downscale); use 2 for mildly downscaled images."
        ),
    )


_SHARPEN_DOC = (
    "Unsharp-mask amount applied after upscaling (0 = none); it restores detail that an "
    "antialiased downscale removed. null: the amount tuned for the scale."
)


class FSRCNNArgs(SRArgs):
    sharpen: float | None = Field(None, ge=0, le=2, description=_SHARPEN_DOC)


class LanczosArgs(SRArgs):
    sharpen: float | None = Field(None, ge=0, le=2, description=_SHARPEN_DOC)


class CompactArgs(SRArgs):
    strength: float = Field(
        0.4,
        ge=0,
        le=1,
        description=(
            "Blend of the network output with a bicubic upscale: 1 = raw Real-ESRGAN output (sharpest, "
            "most 'painted', lowest PSNR), 0 = plain bicubic. 0.4 (default) gave the highest PSNR."
        ),
    )


class _SRTool(RestorationTool):
    def expected_scale(self, args: SRArgs) -> int:  # type: ignore[override]
        return int(args.scale)


# --- FSRCNN (OpenCV dnn_superres weights) ------------------------------------------------------
@register
class SRFSRCNN(TorchTool, _SRTool):
    """FSRCNN ×2 on the luma; ×4 adds a Lanczos ×2; then an unsharp mask."""

    spec = ToolSpec(
        name="sr_fsrcnn",
        task="low_resolution",
        model="FSRCNN x2 (Dong et al. 2016; OpenCV dnn_superres weights) + Lanczos + unsharp mask",
        license="Apache-2.0",
        commercial=True,
        weights=("opencv_fsrcnn_x2",),
        learned=True,
        cost=1.3,
        description=(
            "Upscales a low-resolution photo 2x or 4x (default 4) with a small CNN on the luminance plus "
            "sharpening; fast, and the most faithful on clean inputs. It also sharpens leftover noise and "
            "JPEG blocks: remove those first, or use sr_realesrgan_compact when some remain."
        ),
    )
    Args = FSRCNNArgs

    WEIGHTS = "opencv_fsrcnn_x2"
    #: Unsharp-mask amount per scale, tuned on the train split (×4 after Lanczos ×2).
    SHARPEN = {2: 0.75, 4: 1.0}

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.fsrcnn import load_fsrcnn

        path = weights[self.WEIGHTS]
        try:
            net = load_fsrcnn(path)
        except (OSError, ValueError, KeyError) as exc:
            raise ToolUnavailable(f"cannot read {path.name}: {exc}") from None
        if net.scale != 2:
            raise ToolUnavailable(f"{path.name} is FSRCNN x{net.scale}, expected x2")
        return net

    def _x2(self, patch: np.ndarray) -> np.ndarray:
        import torch

        base = upscale_bicubic(patch, 2)  # gives the chroma
        luma = torch.from_numpy(np.ascontiguousarray(patch @ _LUMA_601))[None, None].to(self.device)
        with torch.inference_mode():
            y = self.net(luma)[0, 0].float().cpu().numpy()
        return base + (y - base @ _LUMA_601)[..., None]  # swap in the network's luma

    def process(self, image: np.ndarray, args: FSRCNNArgs) -> np.ndarray:  # type: ignore[override]
        out = tiled(self._x2, image, tile=self.context.tile_size, overlap=self.context.tile_overlap, scale=2)
        out = np.clip(out, 0.0, 1.0)
        if args.scale == 4:
            out = upscale_lanczos(out, 2)
        amount = self.SHARPEN[args.scale] if args.sharpen is None else args.sharpen
        return unsharp(out, amount, USM_SIGMA_PER_SCALE * args.scale)


# --- Real-ESRGAN compact ------------------------------------------------------------------------
@register
class SRRealESRGANCompact(TorchTool, _SRTool):
    """Real-ESRGAN SRVGGNetCompact ×4 (spandrel "Compact"), blended with bicubic by ``strength``."""

    spec = ToolSpec(
        name="sr_realesrgan_compact",
        task="low_resolution",
        model="Real-ESRGAN compact (SRVGGNetCompact x4, realesr-animevideov3; Wang et al. 2021)",
        license="BSD-3-Clause",
        commercial=True,
        weights=("realesr_animevideov3_x4",),
        learned=True,
        cost=12.5,
        description=(
            "GAN-trained 2x/4x super-resolution (default 4) that also cleans mild noise and JPEG artifacts "
            "in the small image: the best choice when some remain, below sr_fsrcnn on clean inputs. "
            "strength 1 gives crisp but 'painted' results; the default 0.4 blends with bicubic for fidelity."
        ),
    )
    Args = CompactArgs

    WEIGHTS = "realesr_animevideov3_x4"
    NET_SCALE = 4

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        import spandrel
        import torch

        path = weights[self.WEIGHTS]
        sd = torch.load(path, map_location="cpu", weights_only=True)
        # The converted file stores its convolutions in float16; compute in float32.
        sd = {k: v.float() if torch.is_floating_point(v) else v for k, v in sd.items()}
        try:
            desc = spandrel.ModelLoader().load_from_state_dict(sd)
        except Exception as exc:  # spandrel raises several types for unknown layouts
            raise ToolUnavailable(f"{path.name} is not a state dict spandrel can load: {exc}") from None
        if desc.architecture.id != "Compact" or desc.scale != self.NET_SCALE or desc.input_channels != 3:
            raise ToolUnavailable(
                f"{path.name} loaded as {desc.architecture.id} x{desc.scale}, expected Compact x{self.NET_SCALE}"
            )
        return desc.model

    def process(self, image: np.ndarray, args: CompactArgs) -> np.ndarray:  # type: ignore[override]
        import torch

        scale = int(args.scale)

        def run(patch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None].to(self.device)
            with torch.inference_mode():
                y = self.net(x)[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
            return y if scale == self.NET_SCALE else downscale_lanczos(y, self.NET_SCALE // scale)

        if args.strength <= 0:
            return upscale_bicubic(image, scale)
        out = tiled(run, image, tile=self.context.tile_size, overlap=self.context.tile_overlap, scale=scale)
        if args.strength < 1:
            out = args.strength * out + (1.0 - args.strength) * upscale_bicubic(image, scale)
        return out


# --- Lanczos ----------------------------------------------------------------------------------
@register
class SRLanczos(_SRTool):
    """Pillow Lanczos-3 upscaling plus an unsharp mask; no weights."""

    spec = ToolSpec(
        name="sr_lanczos",
        task="low_resolution",
        model="Lanczos-3 resampling (Pillow) + unsharp mask",
        license="MIT",
        commercial=True,
        weights=(),
        learned=False,
        cost=0.4,
        description=(
            "Classical 2x/4x upscaling (default 4) with sharpening; no weights, always available, "
            "below sr_fsrcnn in fidelity and, like it, enlarges leftover noise."
        ),
    )
    Args = LanczosArgs

    #: Unsharp-mask amount per scale, tuned on the train split.
    SHARPEN = {2: 1.0, 4: 1.0}

    def process(self, image: np.ndarray, args: LanczosArgs) -> np.ndarray:  # type: ignore[override]
        return sr_hint(upscale_lanczos(image, args.scale), args.scale, args.sharpen)


def sr_hint(upscaled: np.ndarray, scale: int, amount: float | None = None) -> np.ndarray:
    """``sr_lanczos``'s sharpening of a Lanczos upscale (``amount`` None: the tuned one): also the
    starting point ``sr_ours`` corrects, and its training inputs."""
    amount = SRLanczos.SHARPEN[scale] if amount is None else amount
    return unsharp(upscaled, amount, USM_SIGMA_PER_SCALE * scale)


# --- ours: a compact U-Net over Lanczos ---------------------------------------------------------
@register
class SROurs(RestorerTool, _SRTool):
    """Our compact colour U-Net: it sees the Lanczos upscale and its sharpened version and predicts a
    correction to the latter, at the output's size. Trained on antialiased ×1/4 and ×1/2 downscales
    (the degradation the OpenCV networks were not trained on, above), a mild JPEG on some."""

    spec = ToolSpec(
        name="sr_ours",
        task="low_resolution",
        model="RestoreAgent compact gated U-Net over Lanczos + unsharp mask (ours, 0.44 M parameters)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=True,
        cost=2.0,
        description=(
            "2x/4x super-resolution (default 4) by a small network of ours trained on antialiased downscales; "
            "ships with the package, MIT. Like the other upscalers it enlarges leftover noise: remove it first."
        ),
    )
    Args = SRArgs
    CHECKPOINT = "sr_ours.pt"

    def process(self, image: np.ndarray, args: SRArgs) -> np.ndarray:  # type: ignore[override]
        return super().process(upscale_lanczos(image, int(args.scale)), args)

    def hint(self, image: np.ndarray, args: SRArgs) -> np.ndarray:  # type: ignore[override]
        return sr_hint(image, int(args.scale))
