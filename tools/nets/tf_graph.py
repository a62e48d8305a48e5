"""Read the nodes and constant tensors of a frozen TensorFlow graph (``.pb``), without TensorFlow.

A frozen ``GraphDef`` is a protobuf message: a list of ``NodeDef`` (name, op, inputs, attributes),
and the weights are the ``value`` attribute of its ``Const`` nodes (a ``TensorProto``). The few
lines of wire-format decoding below are just enough to read those, so that a network published
as a frozen graph (OpenCV's ``dnn_superres`` FSRCNN, say) can be rebuilt as a PyTorch module of
our own and fed its weights (:mod:`.fsrcnn`). No TensorFlow, protobuf or OpenCV package is needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TFNode", "read_graph", "constant"]

# Field numbers of the messages read here (tensorflow/core/framework/*.proto).
_GRAPH_NODE = 1  # GraphDef.node
_NODE_NAME, _NODE_OP, _NODE_INPUT, _NODE_ATTR = 1, 2, 3, 5  # NodeDef
_ATTR_S, _ATTR_I, _ATTR_TENSOR = 2, 3, 8  # AttrValue
_TENSOR_DTYPE, _TENSOR_SHAPE, _TENSOR_CONTENT, _TENSOR_FLOAT_VAL = 1, 2, 4, 5  # TensorProto
_SHAPE_DIM, _DIM_SIZE = 2, 1  # TensorShapeProto, TensorShapeProto.Dim
_DT_FLOAT = 1
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5  # wire types


@dataclass(frozen=True)
class TFNode:
    """One ``NodeDef``: its op, its inputs, and its attributes as raw ``AttrValue`` messages."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, bytes] = field(default_factory=dict)

    def int_attr(self, key: str) -> int:
        """An integer attribute (``AttrValue.i``), e.g. DepthToSpace's ``block_size``."""
        for f, wire, value in _fields(self.attrs.get(key, b"")):
            if f == _ATTR_I and wire == _VARINT:
                return _signed(value)
        raise KeyError(f"node {self.name!r} ({self.op}) has no integer attribute {key!r}")

    def str_attr(self, key: str) -> str:
        """A string attribute (``AttrValue.s``), e.g. Conv2D's ``padding``."""
        for f, wire, value in _fields(self.attrs.get(key, b"")):
            if f == _ATTR_S and wire == _LEN:
                return value.decode("utf-8", "replace")
        raise KeyError(f"node {self.name!r} ({self.op}) has no string attribute {key!r}")


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _signed(value: int) -> int:
    """A protobuf int64 read as an unsigned varint, back to its sign."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: bytes):
    """Yield ``(field, wire_type, value)`` for each field of a message: the bytes of a
    length-delimited field, the integer of a varint, the raw bytes of a fixed-width one."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            value, pos = buf[pos : pos + width], pos + width
        elif wire == _LEN:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _string(msg: bytes, number: int) -> str:
    return next((v.decode("utf-8", "replace") for f, w, v in _fields(msg) if f == number and w == _LEN), "")


def read_graph(data: bytes) -> dict[str, TFNode]:
    """The nodes of a frozen ``GraphDef``, by name. Raises ValueError if ``data`` is not one."""
    nodes: dict[str, TFNode] = {}
    for number, wire, msg in _fields(data):
        if number != _GRAPH_NODE or wire != _LEN:
            continue  # versions, library: not needed
        attrs = {}
        for f, w, entry in _fields(msg):
            if f == _NODE_ATTR and w == _LEN:
                value = next((v for ff, ww, v in _fields(entry) if ff == 2 and ww == _LEN), b"")
                attrs[_string(entry, 1)] = value
        inputs = tuple(v.decode("utf-8", "replace") for f, w, v in _fields(msg) if f == _NODE_INPUT and w == _LEN)
        node = TFNode(_string(msg, _NODE_NAME), _string(msg, _NODE_OP), inputs, attrs)
        nodes[node.name] = node
    if not nodes:
        raise ValueError("not a TensorFlow GraphDef: no nodes")
    return nodes


def constant(node: TFNode) -> np.ndarray:
    """The float32 tensor of a ``Const`` node (its ``value`` attribute), in TensorFlow's layout."""
    if node.op != "Const":
        raise ValueError(f"node {node.name!r} is a {node.op}, not a Const")
    tensor = next((v for f, w, v in _fields(node.attrs.get("value", b"")) if f == _ATTR_TENSOR and w == _LEN), None)
    if tensor is None:
        raise ValueError(f"Const node {node.name!r} holds no tensor")
    dtype, shape, content, floats = _DT_FLOAT, [], b"", []
    for f, w, v in _fields(tensor):
        if f == _TENSOR_DTYPE and w == _VARINT:
            dtype = v
        elif f == _TENSOR_SHAPE and w == _LEN:
            for ff, ww, dim in _fields(v):
                if ff == _SHAPE_DIM and ww == _LEN:
                    shape.append(next((_signed(x) for g, gw, x in _fields(dim) if g == _DIM_SIZE and gw == _VARINT), 0))
        elif f == _TENSOR_CONTENT and w == _LEN:
            content = v
        elif f == _TENSOR_FLOAT_VAL:  # packed (LEN) or one value (FIXED32)
            floats += struct.unpack(f"<{len(v) // 4}f", v)
    if dtype != _DT_FLOAT:
        raise ValueError(f"Const node {node.name!r} is not float32 (dtype {dtype})")
    size = int(np.prod(shape)) if shape else 1
    if content:
        values = np.frombuffer(content, "<f4")
    elif len(floats) == 1:  # TensorFlow stores a constant-filled tensor as one value
        values = np.full(size, floats[0], np.float32)
    else:
        values = np.asarray(floats, np.float32)
    if values.size != size:
        raise ValueError(f"Const node {node.name!r}: {values.size} values for shape {shape}")
    return values.astype(np.float32).reshape(shape)
