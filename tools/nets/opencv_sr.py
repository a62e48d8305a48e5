"""OpenCV ``dnn_superres`` networks (FSRCNN, ESPCN, LapSRN) run with plain ``cv2.dnn``.

The ``.pb`` files are frozen TensorFlow graphs made for OpenCV's contrib module
``dnn_superres``, which opencv-python-headless does not ship. Plain
``cv2.dnn.readNetFromTensorflow`` reads them, but OpenCV 5.0 then fails to build
their ``DepthToSpace`` (pixel-shuffle) layer: its TensorFlow importer hands the
layer the graph's attributes unchanged, and the layer looks for ``blocksize``
where TensorFlow writes ``block_size``. :func:`load_tf_sr_net` therefore adds a
``blocksize`` copy of that attribute to every ``DepthToSpace`` node before handing
the bytes to OpenCV (the original attribute stays, so importers that read
``block_size`` keep working), and checks the result with a tiny forward pass.

The few lines of protobuf handling below are just enough for that: walk the
GraphDef's nodes and re-encode the ones that change. No TensorFlow or protobuf
package is needed. OpenCV before 4.11 has no ``DepthToSpace`` layer at all; there
we register :class:`_DepthToSpace`, a small numpy layer, through OpenCV's
Python custom-layer API (checked on 4.8: outputs identical to 5.0's built-in layer).

Conventions of these networks (checked here by PSNR and by a ±3 px shift search):
input ``1×1×h×w`` float32, the BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of
the low-resolution image in [0, 1]; output ``1×1×sh×sw``, the luma at ``s`` times
the size, aligned with half-pixel-centred resizing (cv2 / Pillow). Chroma is
upscaled separately (bicubic).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ..base import ToolUnavailable

__all__ = ["add_blocksize_alias", "load_tf_sr_net", "OpenCVSRNet"]

_NODE = 1  # GraphDef.node
_NODE_OP = 2  # NodeDef.op
_NODE_ATTR = 5  # NodeDef.attr (map entries: key = 1, value = 2)
_LEN = 2  # wire type of length-delimited fields


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _fields(buf: bytes):
    """Yield ``(field, wire_type, payload, raw)`` for each field of a message.

    ``payload`` is the bytes of a length-delimited field (else None); ``raw`` is the
    field exactly as encoded, so untouched fields are copied byte for byte.
    """
    pos, end = 0, len(buf)
    while pos < end:
        start = pos
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        payload = None
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == _LEN:
            n, pos = _read_varint(buf, pos)
            payload = buf[pos : pos + n]
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield field, wire, payload, buf[start:pos]


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | _LEN) + _varint(len(payload)) + payload


def _string_field(msg: bytes, field: int) -> str | None:
    for f, wire, payload, _ in _fields(msg):
        if f == field and wire == _LEN:
            return payload.decode("utf-8", "replace")
    return None


def add_blocksize_alias(graph: bytes) -> tuple[bytes, int]:
    """Copy ``block_size`` to ``blocksize`` in every ``DepthToSpace`` node.

    Returns the new GraphDef bytes and the number of nodes changed.
    """
    out = bytearray()
    changed = 0
    for field, wire, node, raw in _fields(graph):
        if field != _NODE or wire != _LEN or _string_field(node, _NODE_OP) != "DepthToSpace":
            out += raw
            continue
        extra = b""
        has_alias = False
        for f, w, entry, _ in _fields(node):
            if f == _NODE_ATTR and w == _LEN:
                key = _string_field(entry, 1)
                if key == "blocksize":
                    has_alias = True
                elif key == "block_size":
                    value = next((p for ff, ww, p, _ in _fields(entry) if ff == 2 and ww == _LEN), b"")
                    extra = _len_field(_NODE_ATTR, _len_field(1, b"blocksize") + _len_field(2, value))
        if extra and not has_alias:
            node = node + extra
            changed += 1
        out += _len_field(_NODE, node)
    return bytes(out), changed


class OpenCVSRNet:
    """A luma super-resolution network (``Y`` in [0, 1] → ``Y`` at ``scale`` times the size)."""

    def __init__(self, net: "cv2.dnn.Net", scale: int, name: str) -> None:
        self.net = net
        self.scale = scale
        self.name = name
        self._lock = threading.Lock()  # a cv2.dnn.Net is not safe to run from two threads

    def use_cuda_if_available(self) -> bool:
        """Run on the GPU when this OpenCV build has CUDA and a device is visible (PyPI's
        opencv-python builds have no CUDA, so they stay on the CPU)."""
        try:
            has_cuda = cv2.cuda.getCudaEnabledDeviceCount() > 0
        except (AttributeError, cv2.error):
            has_cuda = False
        if has_cuda:
            self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        return has_cuda

    def __call__(self, y: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(y, dtype=np.float32)[None, None]
        with self._lock:
            self.net.setInput(blob)
            out = self.net.forward()
        h, w = y.shape
        if out.shape != (1, 1, h * self.scale, w * self.scale):
            raise RuntimeError(f"{self.name}: output {out.shape} for a {h}×{w} input at ×{self.scale}")
        return out[0, 0]


class _DepthToSpace:
    """TensorFlow ``DepthToSpace`` (NHWC semantics) as an OpenCV Python layer, on NCHW blobs.

    Output pixel ``(h·r + i, w·r + j)`` of channel ``c`` is input channel ``(i·r + j)·C + c``.
    """

    def __init__(self, params, blobs) -> None:  # noqa: ANN001 - signature fixed by OpenCV
        self.r = int(params.get("block_size", params.get("blocksize", 0)))
        if self.r < 1:
            raise ValueError(f"DepthToSpace without a block size: {dict(params)}")

    def getMemoryShapes(self, inputs):  # noqa: N802, ANN001
        n, c, h, w = inputs[0]
        return [[n, c // (self.r * self.r), h * self.r, w * self.r]]

    def forward(self, inputs):  # noqa: ANN001
        x = inputs[0]
        n, c, h, w = x.shape
        r = self.r
        y = x.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
        return [np.ascontiguousarray(y.reshape(n, c // (r * r), h * r, w * r))]


_register_lock = threading.Lock()
_registered = False


def _register_depth_to_space() -> None:
    global _registered
    with _register_lock:
        if not _registered:
            cv2.dnn_registerLayer("DepthToSpace", _DepthToSpace)
            _registered = True


def _build(graph: bytes, scale: int, name: str) -> OpenCVSRNet:
    net = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, np.uint8))
    sr = OpenCVSRNet(net, scale, name)
    sr(np.full((8, 8), 0.5, np.float32))  # layers are built on the first forward
    return sr


def load_tf_sr_net(path: Path, scale: int) -> OpenCVSRNet:
    """Read one ``dnn_superres`` graph with ``cv2.dnn`` and check it runs at ``scale``.

    Raises :class:`ToolUnavailable` (one line) if OpenCV cannot build or run it.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        try:
            return _build(add_blocksize_alias(raw)[0], scale, path.name)
        except cv2.error as exc:
            if "DepthToSpace" not in str(exc) or not hasattr(cv2, "dnn_registerLayer"):
                raise
        _register_depth_to_space()  # an OpenCV without the layer (before 4.11)
        return _build(raw, scale, path.name)
    except (cv2.error, ValueError, RuntimeError, IndexError) as exc:
        lines = str(exc).strip().splitlines()
        raise ToolUnavailable(
            f"OpenCV {cv2.__version__} cannot run {path.name}: {lines[-1] if lines else type(exc).__name__}"
        ) from None
