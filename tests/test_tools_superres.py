"""Super-resolution tools: output size, gain over bicubic, tiling, the output-size contract.

Gains are PSNR(tool) − PSNR(``upscale_bicubic``) on the four ``clean_images`` crops
(192×192) reduced with the MiO degradation (``synthesis.downscale``, Pillow
antialiased bicubic). Thresholds are 50 % of the means measured on CPU, kept in
``MEASURED_GAIN`` so that a regression shows against a known number.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from restoreagent.tools.base import RestorationTool, ToolError, ToolUnavailable, check_output
from restoreagent.tools.nets.fsrcnn import FSRCNN, load_fsrcnn
from restoreagent.tools.nets.tf_graph import constant, read_graph
from restoreagent.tools.registry import default_registry
from restoreagent.tools.superres import (
    SRFSRCNN,
    CompactArgs,
    SRLanczos,
    SROurs,
    SRRealESRGANCompact,
    downscale_lanczos,
    upscale_bicubic,
    upscale_lanczos,
)
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import downscale

IMAGE_ID = "img-0000000000000000"

# Mean PSNR gain over bicubic (dB) on the 4 crops, measured on CPU (per crop:
# astronaut, chelsea, coffee, rocket). Bicubic itself: 24.87 dB at x4, 29.36 dB at x2.
MEASURED_GAIN: dict[tuple[str, int], float] = {
    ("sr_fsrcnn", 4): 0.54,  # 1.01, 0.09, 0.93, 0.13
    ("sr_fsrcnn", 2): 0.85,  # 1.82, 0.21, 0.77, 0.61
    ("sr_realesrgan_compact", 4): 0.12,  # 0.31, -0.07, 0.39, -0.14
    ("sr_realesrgan_compact", 2): 0.21,  # 0.93, -0.28, 0.26, -0.07
    ("sr_lanczos", 4): 0.30,  # 0.39, 0.25, 0.52, 0.04
    ("sr_lanczos", 2): 0.59,  # 0.73, 0.44, 0.72, 0.46
    ("sr_ours", 4): 0.94,  # 1.62, 0.40, 1.83, -0.10
    ("sr_ours", 2): 1.43,  # 2.26, 0.63, 1.78, 1.05
}

TOOLS: list[tuple[type[RestorationTool], str]] = [
    (SRFSRCNN, "tool_context"),
    (SRRealESRGANCompact, "tool_context"),
    (SRLanczos, "offline_context"),
    (SROurs, "offline_context"),  # ships in checkpoints/: no weights to fetch
]
IDS = [c.spec.name for c, _ in TOOLS]
LEARNED = [(c, f) for c, f in TOOLS if c.spec.needs_weights]
NETWORKS = [(c, f) for c, f in TOOLS if c.spec.learned]


def _tool(cls, context_fixture, request, **context_changes):
    context = request.getfixturevalue(context_fixture)
    if context_changes:
        context = dataclasses.replace(context, **context_changes)
    return cls(context)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random image with some texture (better than white noise for SR)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + 0.05 * rng.standard_normal((h, w, 3)).astype(np.float32), 0, 1)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("cls,context_fixture", TOOLS, ids=IDS)
def test_output_shape_for_even_and_odd_sizes(cls, context_fixture, scale, request):
    tool = _tool(cls, context_fixture, request)
    args = cls.Args(image_id=IMAGE_ID, scale=scale)
    assert tool.expected_scale(args) == scale
    for h, w in [(48, 64), (37, 51), (1, 3)]:
        out = tool(_image(max(h, 4), max(w, 4))[:h, :w], args)
        assert out.shape == (h * scale, w * scale, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("scale", [4, 2])
@pytest.mark.parametrize("cls,context_fixture", TOOLS, ids=IDS)
def test_beats_bicubic_on_downscaled_crops(cls, context_fixture, scale, clean_images, request):
    tool = _tool(cls, context_fixture, request)
    args = cls.Args(image_id=IMAGE_ID, scale=scale)
    gains = []
    for clean in clean_images.values():
        small = downscale(clean, scale)  # 192 is divisible by 4: sizes match exactly
        out = tool(small, args)
        assert out.shape == clean.shape
        gains.append(psnr(out, clean) - psnr(upscale_bicubic(small, scale), clean))
    gain = float(np.mean(gains))
    assert gain > 0, f"mean gain {gain:.3f} dB"
    assert gain >= 0.5 * MEASURED_GAIN[(cls.spec.name, scale)], f"mean gain {gain:.3f} dB"


def test_default_scale_is_four_and_other_scales_are_rejected():
    for cls, _ in TOOLS:
        assert cls.Args(image_id=IMAGE_ID).scale == 4
        with pytest.raises(ValidationError):
            cls.Args(image_id=IMAGE_ID, scale=3)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("cls,context_fixture", NETWORKS, ids=[c.spec.name for c, _ in NETWORKS])
def test_tiled_matches_untiled(cls, context_fixture, scale, request):
    img = _image(100, 90, seed=1)
    args = cls.Args(image_id=IMAGE_ID, scale=scale)
    whole = _tool(cls, context_fixture, request)(img, args)
    tiles = _tool(cls, context_fixture, request, tile_size=48, tile_overlap=16)(img, args)  # 3×2 tiles
    assert tiles.shape == whole.shape == (100 * scale, 90 * scale, 3)
    # measured 57-67 dB; sr_ours tiles its U-Net's input, the upscale, so a 48-px tile is 12 input pixels
    # at ×4 and its seams show more: 48.0 dB
    assert psnr(tiles, whole) > (45.0 if cls is SROurs else 50.0)


def test_compact_strength_zero_is_bicubic(tool_context):
    img = _image(20, 24)
    out = SRRealESRGANCompact(tool_context)(img, CompactArgs(image_id=IMAGE_ID, strength=0.0))
    np.testing.assert_allclose(out, upscale_bicubic(img, 4), atol=1e-6)


class _WrongSize(SRLanczos):
    """Claims ×4 but returns ×2: the base class must reject it."""

    def process(self, image, args):
        return upscale_lanczos(image, 2)


def test_expected_scale_rejects_wrong_size(offline_context):
    tool = _WrongSize(offline_context)
    img = _image(16, 20)
    with pytest.raises(ToolError, match=r"expected \(64, 80, 3\)"):
        tool(img, SRLanczos.Args(image_id=IMAGE_ID, scale=4))
    assert tool(img, SRLanczos.Args(image_id=IMAGE_ID, scale=2)).shape == (32, 40, 3)
    # An image-sized result is not accepted from an SR tool either.
    with pytest.raises(ToolError):
        check_output(img, img, 2, "sr_test")


def test_registered_and_offline_availability(offline_context):
    for cls, _ in TOOLS:
        assert default_registry[cls.spec.name] is cls
        assert cls.spec.task == "low_resolution" and cls.spec.commercial
    status = {s.name: s for s in default_registry.status(offline_context)}
    assert status["sr_lanczos"].available and status["sr_ours"].available
    for cls, _ in LEARNED:
        assert not status[cls.spec.name].available and "not found" in status[cls.spec.name].reason
        with pytest.raises(ToolUnavailable):
            cls(offline_context).check_available()


def test_resampling_helpers():
    img = _image(13, 17)
    assert upscale_bicubic(img, 2).shape == (26, 34, 3)
    assert upscale_lanczos(img, 4).shape == (52, 68, 3)
    assert downscale_lanczos(upscale_lanczos(img, 4), 4).shape == img.shape
    flat = np.full((8, 8, 3), 0.25, np.float32)
    np.testing.assert_allclose(upscale_lanczos(flat, 4), 0.25, atol=1e-5)


# -- the frozen-graph reader and our FSRCNN ---------------------------------------------------
def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads under 128 bytes)."""
    assert len(payload) < 128
    return bytes([(field << 3) | 2, len(payload)]) + payload


def _node(name: str, op: str, attrs: dict[str, bytes], inputs: tuple[str, ...] = ()) -> bytes:
    body = _ld(1, name.encode()) + _ld(2, op.encode()) + b"".join(_ld(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        body += _ld(5, _ld(1, key.encode()) + _ld(2, value))
    return _ld(1, body)


def _tensor(shape: tuple[int, ...], content: bytes = b"", floats: bytes = b"") -> bytes:
    """AttrValue{tensor: TensorProto{dtype: DT_FLOAT, tensor_shape, tensor_content | float_val}}."""
    dims = b"".join(_ld(2, bytes([1 << 3, d])) for d in shape)
    body = bytes([1 << 3, 1]) + _ld(2, dims) + (_ld(4, content) if content else b"") + (_ld(5, floats) if floats else b"")
    return _ld(8, body)


def test_graph_reader_reads_constants_and_attributes():
    values = np.arange(6, dtype="<f4")
    graph = (
        _node("w", "Const", {"value": _tensor((2, 3), content=values.tobytes())})
        + _node("half", "Const", {"value": _tensor((2, 2), floats=np.float32(0.5).tobytes())})
        + _node("d2s", "DepthToSpace", {"block_size": bytes([3 << 3, 4]), "data_format": _ld(2, b"NHWC")}, ("w",))
        + bytes([4 << 3 | 2, 2, 8, 1])  # a 'versions' field: skipped
    )
    nodes = read_graph(graph)
    assert set(nodes) == {"w", "half", "d2s"} and nodes["d2s"].inputs == ("w",)
    np.testing.assert_array_equal(constant(nodes["w"]), values.reshape(2, 3))
    np.testing.assert_array_equal(constant(nodes["half"]), np.full((2, 2), 0.5, np.float32))  # one value fills
    assert nodes["d2s"].int_attr("block_size") == 4 and nodes["d2s"].str_attr("data_format") == "NHWC"
    with pytest.raises(ValueError, match="not a Const"):
        constant(nodes["d2s"])
    with pytest.raises(ValueError, match="truncated"):
        read_graph(graph[:-1])
    with pytest.raises(ValueError, match="no nodes"):
        read_graph(b"")


def test_fsrcnn_shuffle_follows_tensorflow_depth_to_space():
    """TF: output (h·r+i, w·r+j) = input channel i·r+j (one output channel), as the graph computes it."""
    r = 2
    net = FSRCNN([(1, 1, 1), (1, 1, r * r)], scale=r)
    with torch.no_grad():
        net.convs[0].weight.fill_(1.0)
        net.convs[0].bias.zero_()
        net.convs[1].weight.copy_(torch.arange(1.0, r * r + 1).view(r * r, 1, 1, 1))
    y = net(torch.ones(1, 1, 2, 3))[0, 0]
    for i in range(r):
        for j in range(r):
            assert torch.all(y[i::r, j::r] == i * r + j + 1)


def test_fsrcnn_loads_from_the_published_graph_and_beats_bicubic(weights_dir, clean_images):
    net = load_fsrcnn(weights_dir / "superres_opencv" / "FSRCNN_x2.pb")
    assert net.scale == 2 and [c.kernel_size[0] for c in net.convs] == [5, 1, 3, 3, 3, 3, 1, 1]
    small = load_fsrcnn(weights_dir / "superres_opencv" / "FSRCNN-small_x2.pb")
    assert [c.out_channels for c in small.convs] == [32, 5, 5, 32, 4]
    with torch.no_grad():
        flat = net(torch.full((1, 1, 10, 12), 0.5))[0, 0].numpy()
    assert flat.shape == (20, 24) and abs(float(flat[5:-5, 5:-5].mean()) - 0.5) < 0.02  # flat stays flat
    gains = []
    for img in clean_images.values():
        y = img[:192, :192] @ np.array([0.299, 0.587, 0.114], np.float32)
        low = cv2.resize(y, (96, 96), interpolation=cv2.INTER_CUBIC)  # the degradation FSRCNN was trained on
        with torch.no_grad():
            up = net(torch.from_numpy(low)[None, None])[0, 0].clamp(0, 1).numpy()
        gains.append(psnr(up, y) - psnr(np.clip(cv2.resize(low, (192, 192), interpolation=cv2.INTER_CUBIC), 0, 1), y))
    assert np.mean(gains) > 0.5, gains  # misplaced weights give noise, far below bicubic


def test_not_an_fsrcnn_graph_is_unavailable(tmp_path, weights_dir, tool_context):
    bogus = tmp_path / "bogus.pb"
    bogus.write_bytes(_node("x", "Placeholder", {}))
    with pytest.raises(ValueError, match="not an FSRCNN graph"):
        load_fsrcnn(bogus)
    with pytest.raises(ToolUnavailable, match="not an FSRCNN graph"):
        SRFSRCNN(tool_context).build({SRFSRCNN.WEIGHTS: bogus})
