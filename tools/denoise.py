"""Denoising tools (additive, roughly white noise).

Four tools, from strongest to most permissive:

* ``denoise_ffdnet``: FFDNet colour, non-blind (σ given or estimated here), fast;
* ``denoise_dncnn``: DnCNN colour blind (σ 0–55), about 4× slower than FFDNet;
* ``denoise_oidn``: Intel Open Image Denoise from the ``pyoidn`` wheel, Apache-2.0;
* ``denoise_nlmeans``: OpenCV non-local means, classical, no weights.

Without a σ they use the blind estimate of perception
(:func:`~restoreagent.tools.perception.noise_sigma.estimate_sigma`), so the noise level the
assessor reports is the one the tools use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec, ToolUnavailable
from restoreagent.tools.perception.noise_sigma import estimate_sigma
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import TorchTool, load_state_dict
from restoreagent.tools.util.tiling import tiled

if TYPE_CHECKING:
    import torch

__all__ = ["DenoiseFFDNet", "DenoiseDnCNN", "DenoiseOIDN", "DenoiseNLMeans"]


def _sigma_255(image: np.ndarray, sigma: float | None) -> float:
    """The σ a tool should use, on the 0–255 scale (given, or estimated from ``image``)."""
    return float(sigma) if sigma is not None else 255.0 * estimate_sigma(image)


# spec.cost values: measured on a 512×512 photo, 2 CPU cores, torch with one thread.
_SIGMA_DOC = "Noise standard deviation on the 0-255 scale; null: estimate it from the image."
_STRENGTH_DOC = "Blend between the input (0) and the full result (1); lower keeps more detail."


# --- FFDNet -------------------------------------------------------------------------------
class FFDNetArgs(ToolArgs):
    """FFDNet is non-blind: it removes exactly the noise level it is told."""

    sigma: float | None = Field(None, ge=0, le=75, description=_SIGMA_DOC)


@register
class DenoiseFFDNet(TorchTool):
    """FFDNet colour: one network for σ 0–75, told the noise level via a map."""

    spec = ToolSpec(
        name="denoise_ffdnet",
        task="noise",
        model="FFDNet colour (Zhang et al. 2018)",
        license="unspecified",
        commercial=False,
        weights=("ffdnet_color",),
        learned=True,
        cost=3.0,
        description=(
            "Removes Gaussian-like noise; non-blind (pass sigma on the 0-255 scale or let it be "
            "estimated). Best quality/speed of the denoisers; research weights without a licence."
        ),
    )
    Args = FFDNetArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.ffdnet import build_ffdnet

        return build_ffdnet(load_state_dict(weights["ffdnet_color"]))

    def process(self, image: np.ndarray, args: FFDNetArgs) -> np.ndarray:  # type: ignore[override]
        # Estimate σ once on the whole image, not per tile, so tiles agree. The learned regressor
        # reads correlated camera noise that the blind estimate misses (tools/perception/noise_level.py).
        if args.sigma is None:
            from restoreagent.tools.perception.noise_level import load_noise_level

            level = load_noise_level()
            args = args.model_copy(update={"sigma": level(image)[0] if level else _sigma_255(image, None)})
        return super().process(image, args)

    def forward(self, x: torch.Tensor, args: FFDNetArgs) -> torch.Tensor:  # type: ignore[override]
        assert args.sigma is not None
        return self.net(x, args.sigma / 255.0)


# --- blind denoisers (DnCNN, OIDN) take no sigma, only an optional blend strength ----------
class StrengthArgs(ToolArgs):
    """Arguments of a blind denoiser."""

    strength: float = Field(1.0, ge=0, le=1, description=_STRENGTH_DOC)


class DnCNNArgs(StrengthArgs):
    """DnCNN colour blind finds the noise level itself (trained on sigma 0-55)."""


class OIDNArgs(StrengthArgs):
    """Open Image Denoise finds the noise level itself."""


def _blend(noisy: np.ndarray, clean: np.ndarray, strength: float) -> np.ndarray:
    return clean if strength >= 1.0 else noisy + strength * (clean - noisy)


# --- DnCNN --------------------------------------------------------------------------------
@register
class DenoiseDnCNN(TorchTool):
    """DnCNN-20 colour, blind: trained on σ 0–55, predicts the noise and subtracts it."""

    spec = ToolSpec(
        name="denoise_dncnn",
        task="noise",
        model="DnCNN colour blind (Zhang et al. 2017)",
        license="unspecified",
        commercial=False,
        weights=("dncnn_color_blind",),
        learned=True,
        cost=12.0,
        description=(
            "Blind Gaussian denoiser for noise levels up to about 55/255 (no sigma needed); "
            "slower than FFDNet, research weights without a licence."
        ),
    )
    Args = DnCNNArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.dncnn import load_dncnn

        return load_dncnn(weights["dncnn_color_blind"], channels=3)

    def forward(self, x: torch.Tensor, args: DnCNNArgs) -> torch.Tensor:  # type: ignore[override]
        y = self.net(x)
        return y if args.strength >= 1.0 else x + args.strength * (y - x)


# --- Intel Open Image Denoise ---------------------------------------------------------------
@register
class DenoiseOIDN(RestorationTool):
    """Intel Open Image Denoise (RT filter), weights inside the ``pyoidn`` wheel.

    OIDN is trained for rendering noise; fed the sRGB values as they are (as if
    linear) it measured 1.5 dB better on photo noise than with linearisation or
    its own ``srgb`` flag, so we do exactly that.
    """

    spec = ToolSpec(
        name="denoise_oidn",
        task="noise",
        model="Intel Open Image Denoise 2 (RT filter, via pyoidn)",
        license="Apache-2.0",
        commercial=True,
        weights=(),
        learned=True,
        cost=0.9,
        description=(
            "Blind learned denoiser, fast on CPU and commercially usable (Apache-2.0); "
            "somewhat weaker than FFDNet/DnCNN on photographic Gaussian noise."
        ),
    )
    Args = OIDNArgs

    def check_available(self) -> None:
        # Importing pyoidn imports torch (seconds): only whether it is installed here, so that
        # `restoreagent tools` stays fast; load() imports it and checks the CPU.
        if importlib.util.find_spec("pyoidn") is None:
            raise ToolUnavailable("pyoidn is not installed")

    def load(self) -> None:
        try:
            import pyoidn
        except Exception as exc:  # ImportError, or OSError from the bundled shared library
            raise ToolUnavailable(f"pyoidn cannot be imported: {exc}") from None
        if not pyoidn.Device.is_cpu_available():
            raise ToolUnavailable("Open Image Denoise reports no supported CPU device")

        self._denoise = pyoidn.denoise
        # pyoidn runs on the device of its input: CUDA tensors go to the GPU.
        self._cuda = self.context.device.startswith("cuda") and pyoidn.Device.is_cuda_available()

    def process(self, image: np.ndarray, args: OIDNArgs) -> np.ndarray:  # type: ignore[override]
        import torch

        def run(patch: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(patch, dtype=np.float32)
            if self._cuda:
                return self._denoise(torch.from_numpy(x).to(self.context.device), quality="high").cpu().numpy()
            return self._denoise(x, quality="high")

        out = tiled(run, image, tile=self.context.tile_size, overlap=self.context.tile_overlap)
        return _blend(image, out, args.strength)


# --- Non-local means --------------------------------------------------------------------------
class NLMeansArgs(ToolArgs):
    """The filter strength follows the noise level (h = 0.6·sigma)."""

    sigma: float | None = Field(None, ge=0, le=75, description=_SIGMA_DOC)


@register
class DenoiseNLMeans(RestorationTool):
    """OpenCV ``fastNlMeansDenoisingColored`` with its filter strength set from σ."""

    spec = ToolSpec(
        name="denoise_nlmeans",
        task="noise",
        model="Non-local means (OpenCV fastNlMeansDenoisingColored)",
        license="Apache-2.0",
        commercial=True,
        weights=(),
        learned=False,
        cost=1.4,
        description=(
            "Classical non-local means denoiser (no weights, permissive licence); a few dB "
            "below the learned denoisers and prone to smoothing fine texture."
        ),
    )
    Args = NLMeansArgs

    # h = 0.6·σ with 5×5 templates was best on σ 15/25/50 (over h ∈ 0.5–1.0σ, templates 5/7/9).
    H_PER_SIGMA = 0.6
    TEMPLATE = 5
    SEARCH = 21

    def process(self, image: np.ndarray, args: NLMeansArgs) -> np.ndarray:  # type: ignore[override]
        sigma = _sigma_255(image, args.sigma)
        if sigma <= 0:
            return image.copy()
        h = self.H_PER_SIGMA * sigma
        # OpenCV's NLM wants 8-bit BGR (it filters in Lab: h for L, the same h for a/b).
        bgr = np.ascontiguousarray((np.clip(image, 0, 1)[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, self.TEMPLATE, self.SEARCH)
        return out[..., ::-1].astype(np.float32) / 255.0
