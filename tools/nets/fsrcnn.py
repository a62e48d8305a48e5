"""FSRCNN (Dong et al. 2016) as a PyTorch module, with the weights of OpenCV's ``dnn_superres`` graphs.

The ``FSRCNN_x{2,3,4}.pb`` files (Saafke/FSRCNN_Tensorflow) are frozen TensorFlow graphs. They used
to run through ``cv2.dnn.readNetFromTensorflow``, which OpenCV 5.1 removed (and OpenCV 5.0 could
only build after a patch of the graph's DepthToSpace attributes). Here the network is ours: the
frozen graph is read with :mod:`.tf_graph` and only its constants are used.

The graph, as published: convolutions ``conv1 … convN`` (filters ``f1 … fN`` in TensorFlow's
H×W×in×out layout, ``SAME`` padding, stride 1), each but the last followed by its bias ``b<i>`` and
a PReLU written as ``relu(x) + alpha<i> · (x − |x|) · y`` (y = 0.5, read from the graph), then
``DepthToSpace(block_size = scale)`` and the bias ``bN``. Input and output are the BT.601 luma in
[0, 1] (one channel), the output at ``scale`` times the size. :func:`load_fsrcnn` derives every
layer's size from the tensors (the ``FSRCNN-small`` graphs load too).

Same outputs as OpenCV 5.0's ``cv2.dnn`` on ``FSRCNN_x2.pb`` to within 4e-6 on an 80×100 Kodak crop (measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from restoreagent.tools.nets.tf_graph import TFNode, constant, read_graph

__all__ = ["FSRCNN", "load_fsrcnn"]


class FSRCNN(nn.Module):
    """Luma (N×1×H×W) → luma at ``scale`` times the size; PReLU between convolutions, sub-pixel output."""

    def __init__(self, layers: list[tuple[int, int, int]], scale: int) -> None:
        """``layers``: (kernel, in_channels, out_channels) of each convolution; the last has
        ``scale²`` outputs, shuffled into one channel."""
        super().__init__()
        if any(k % 2 == 0 for k, _, _ in layers):
            raise ValueError("FSRCNN: even kernels are not supported (TensorFlow pads them unevenly)")
        self.scale = scale
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=i < len(layers) - 1) for i, (k, cin, cout) in enumerate(layers)
        )
        self.acts = nn.ModuleList(nn.PReLU(cout) for _, _, cout in layers[:-1])
        # The graph adds the last bias after the pixel shuffle: one value per output channel.
        self.out_bias = nn.Parameter(torch.zeros(layers[-1][2] // (scale * scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        x = F.pixel_shuffle(self.convs[-1](x), self.scale)
        return x + self.out_bias.view(1, -1, 1, 1)


def _consumer(nodes: dict[str, TFNode], op: str, name: str) -> TFNode:
    found = [n for n in nodes.values() if n.op == op and name in n.inputs]
    if len(found) != 1:
        raise ValueError(f"expected one {op} node reading {name!r}, found {len(found)}")
    return found[0]


def _prelu_slope(nodes: dict[str, TFNode], alpha: str) -> np.ndarray:
    """PReLU's negative slope from ``relu(x) + alpha · (x − |x|) · y``: 2 · alpha · y."""
    outer = _consumer(nodes, "Mul", _consumer(nodes, "Mul", alpha).name)
    (y,) = [nodes[i] for i in outer.inputs if nodes[i].op == "Const"]
    return 2.0 * constant(nodes[alpha]) * float(constant(y))


def load_fsrcnn(path: Path | str) -> FSRCNN:
    """FSRCNN with the weights of a ``dnn_superres`` frozen graph; ValueError if it is not one."""
    nodes = read_graph(Path(path).read_bytes())
    n = 0
    while f"f{n + 1}" in nodes:
        n += 1
    convs = [node for node in nodes.values() if node.op == "Conv2D"]
    if n < 2 or len(convs) != n or f"b{n}" not in nodes:
        raise ValueError(f"{Path(path).name}: not an FSRCNN graph (filters f1…f{n}, {len(convs)} convolutions)")
    for conv in convs:
        if conv.str_attr("padding") != "SAME":
            raise ValueError(f"{Path(path).name}: {conv.name} is not SAME-padded")
    shuffles = [node for node in nodes.values() if node.op == "DepthToSpace"]
    if len(shuffles) != 1:
        raise ValueError(f"{Path(path).name}: not an FSRCNN graph ({len(shuffles)} DepthToSpace nodes, expected 1)")
    scale = shuffles[0].int_attr("block_size")
    filters = [constant(nodes[f"f{i}"]) for i in range(1, n + 1)]
    net = FSRCNN([(f.shape[0], f.shape[2], f.shape[3]) for f in filters], scale)
    with torch.no_grad():
        for i, (conv, f) in enumerate(zip(net.convs, filters), start=1):
            conv.weight.copy_(torch.from_numpy(f.transpose(3, 2, 0, 1).copy()))  # HWIO → OIHW
            if i < n:
                conv.bias.copy_(torch.from_numpy(constant(nodes[f"b{i}"])))
                net.acts[i - 1].weight.copy_(torch.from_numpy(_prelu_slope(nodes, f"alpha{i}")))
        net.out_bias.copy_(torch.from_numpy(constant(nodes[f"b{n}"]).reshape(-1)))
    return net.eval()
