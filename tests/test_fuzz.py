"""Property-based tests: odd sizes, dtypes and modes through the public API; mutated files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from restoreagent import Configuration, build_graph, restore
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry
from restoreagent.tools.util.imageio import MIN_SIDE, ImageError, load_image

FAST_TOOLS = ("denoise_nlmeans", "jpeg_deblock", "lowlight_gamma", "dehaze_dcp", "sr_lanczos")


@pytest.fixture(scope="module")
def fast_graph(tmp_path_factory):
    """A graph with quick classical tools (the loop, store and I/O are what is under test)."""
    reg = ToolRegistry([default_registry[n] for n in FAST_TOOLS if n in default_registry])
    root = tmp_path_factory.mktemp("fuzz")
    config = Configuration(work_dir=root / "runs", weights_dir=root / "none", max_steps=3)
    return build_graph(config, registry=reg), config


MODES = ("RGB", "RGBA", "L", "LA", "P", "I;16", "CMYK", "1")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 70), w=st.integers(1, 70), mode=st.sampled_from(MODES),
    fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "WEBP", "BMP"]), seed=st.integers(0, 2**16),
)
def test_any_size_mode_and_format_restores(fast_graph, tmp_path, h, w, mode, fmt, seed):
    graph, config = fast_graph
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode == "I;16":
        im = Image.fromarray((arr[..., 0].astype(np.uint16) * 257))
    elif mode != "RGB":
        im = im.convert(mode)
    if fmt == "JPEG" and im.mode not in ("RGB", "L", "CMYK"):
        im = im.convert("RGB")
    if fmt in ("WEBP", "BMP") and im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGB")
    src = tmp_path / f"in.{fmt.lower()}"
    try:
        im.save(src, format=fmt)
    except (OSError, ValueError):
        return  # Pillow cannot write this combination; nothing to test
    before = src.read_bytes()
    if min(h, w) < MIN_SIDE:  # refused in one line, the input untouched
        with pytest.raises(ImageError, match="too small to restore"):
            restore(src, tmp_path / "out.png", overwrite=True, graph=graph, config=config)
        assert src.read_bytes() == before
        return
    result = restore(src, tmp_path / "out.png", overwrite=True, graph=graph, config=config)
    out = Image.open(result.output)
    scale = 4 if any(s.task == "low_resolution" for s in result.accepted_steps) else 1
    assert out.size == (w * scale, h * scale)
    assert src.read_bytes() == before
    assert all(0.0 <= v <= 1.0 for v in result.degradations.values())


@settings(max_examples=20, deadline=None)
@given(arr=st.sampled_from([np.uint8, np.float32, np.float64]), h=st.integers(MIN_SIDE, 40), w=st.integers(MIN_SIDE, 40))
def test_arrays_of_any_dtype_are_accepted(fast_graph, arr, h, w):
    graph, config = fast_graph
    rng = np.random.default_rng(h * 100 + w)
    image = rng.random((h, w, 3)).astype(arr) if arr != np.uint8 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    result = restore(image, graph=graph, config=config)
    assert result.output.is_file() and result.input.startswith("<")


def _valid_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "BMP"]),
    cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=6),
    truncate=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_mutated_files_load_or_fail_cleanly(tmp_path_factory, fmt, cuts, truncate):
    data = bytearray(_valid_bytes(fmt))
    for pos, value in cuts:
        data[pos % len(data)] = value
    if truncate is not None:
        data = data[: truncate % (len(data) + 1)]
    path = Path(tmp_path_factory.mktemp("mut")) / f"m.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        img = load_image(path)
    except ImageError as exc:
        assert "\n" not in str(exc)
    else:
        assert img.rgb.ndim == 3 and img.rgb.shape[2] == 3 and np.isfinite(img.rgb).all()
        assert img.rgb.min() >= 0 and img.rgb.max() <= 1
