"""Cross-layer equalization with high-bias absorption (docs/spec.md §5, arXiv 1906.04721).

ReLU is positively homogeneous: relu(x / s) = relu(x) / s for s > 0. So output channel i of a
conv can be divided by s_i if input channel i of the next conv is multiplied by s_i, without
changing the float function. Choosing s_i = sqrt(r1_i r2_i) / r2_i gives both channels the same
range sqrt(r1_i r2_i), which per-tensor quantization of both weights then treats fairly.

Steps: fold BatchNormalization into the conv before it (remembering its gamma/beta), ReLU6 ->
ReLU, equalize every single-branch Conv-(ReLU)-Conv pair and Conv-(ReLU)-depthwise-(ReLU)-Conv
triplet (cube roots), then absorb high biases: c = max(0, beta - 3|gamma|) leaves conv 1's bias
and enters conv 2's through its weights (exact while the pre-activation stays above c, i.e. for
all but ~0.1% of a Gaussian, and only into a conv without zero padding, which would break it
at the borders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from deploy.subgraphs import walk


@dataclass
class _Conv:
    node: onnx.NodeProto
    weight: np.ndarray  # (out, in / group, *kernel): any rank (Conv1d, 2d, 3d)
    bias: np.ndarray
    gamma: np.ndarray | None = None  # folded BN scale and shift (per output channel), for absorption
    beta: np.ndarray | None = None

    @property
    def group(self) -> int:
        return next((int(a.i) for a in self.node.attribute if a.name == "group"), 1)

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.weight.shape[0] and self.weight.shape[1] == 1

    def by_input(self) -> np.ndarray:
        """The weight as (group, out / group, in / group, taps): input channel g * (in / group) + c
        feeds only the output channels of group g."""
        w = self.weight
        return w.reshape(self.group, w.shape[0] // self.group, w.shape[1], -1)

    def out_range(self) -> np.ndarray:
        return np.abs(self.weight).reshape(self.weight.shape[0], -1).max(axis=1)

    def in_range(self) -> np.ndarray:
        return np.abs(self.by_input()).max(axis=(1, 3)).reshape(-1)

    def scale_out(self, s: np.ndarray) -> None:
        """Divide output channel i by s_i (weights, bias and the remembered BN statistics)."""
        self.weight = self.weight / _per_channel(s, self.weight.ndim)
        self.bias = self.bias / s
        if self.gamma is not None:
            self.gamma, self.beta = self.gamma / s, self.beta / s

    def scale_in(self, s: np.ndarray) -> None:
        """Multiply input channel i by s_i."""
        scaled = self.by_input() * s.reshape(self.group, 1, -1, 1)
        self.weight = scaled.reshape(self.weight.shape)

    def take_in(self, c: np.ndarray) -> np.ndarray:
        """What a constant c_i on input channel i adds to each output (no padding): sum over taps."""
        return np.einsum("gocx,gc->go", self.by_input(), c.reshape(self.group, -1)).reshape(-1)


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape(-1, *[1] * (ndim - 1))


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}
        self._readers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in dict.fromkeys(node.input):
                self._readers.setdefault(name, []).append(node)

    def readers(self, tensor: str) -> list[onnx.NodeProto]:
        return self._readers.get(tensor, [])

    def only_reader(self, tensor: str) -> onnx.NodeProto | None:
        readers = self.readers(tensor)
        return readers[0] if len(readers) == 1 and tensor not in self.outputs else None

    def static(self, name: str) -> bool:
        return name in self.inits


def _fold_batchnorms(g: _Graph) -> dict[str, _Conv]:
    """Fold every Conv -> BatchNormalization pair; return all convs with static weights by name."""
    convs: dict[str, _Conv] = {}
    removed: list[onnx.NodeProto] = []
    for node in g.model.graph.node:
        if node.op_type != "Conv" or not g.static(node.input[1]) or (len(node.input) > 2 and not g.static(
                node.input[2]) and node.input[2]):
            continue
        weight = g.inits[node.input[1]].astype(np.float64)
        bias = (g.inits[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2]
                else np.zeros(weight.shape[0]))
        conv = _Conv(node, weight, bias)
        bn = g.only_reader(node.output[0])
        if bn is not None and bn.op_type == "BatchNormalization" and all(g.static(n) for n in bn.input[1:5]):
            scale, shift, mean, var = (g.inits[n].astype(np.float64) for n in bn.input[1:5])
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            factor = scale / np.sqrt(var + eps)
            conv.weight = weight * _per_channel(factor, weight.ndim)
            conv.bias = (bias - mean) * factor + shift
            conv.gamma, conv.beta = scale.copy(), shift.copy()
            node.output[0] = bn.output[0]
            removed.append(bn)
        convs[node.name] = conv
    for bn in removed:
        g.model.graph.node.remove(bn)
    return convs


def _is_relu6(g: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type != "Clip":
        return False
    if len(node.input) == 3 and all(g.static(n) for n in node.input[1:]):
        return [float(g.inits[n]) for n in node.input[1:]] == [0.0, 6.0]
    attrs = {a.name: a.f for a in node.attribute}
    return attrs.get("min") == 0.0 and attrs.get("max") == 6.0


def _to_relu(node: onnx.NodeProto) -> None:
    """ReLU6 -> ReLU (SNPE does the same): only the scale-equivariant ReLU lets CLE rescale."""
    node.op_type = "Relu"
    del node.input[1:]
    del node.attribute[:]


def _next_conv(g: _Graph, conv: _Conv, convs: dict[str, _Conv]) -> tuple[_Conv | None, onnx.NodeProto | None]:
    """The conv reading `conv`'s output through at most one ReLU/ReLU6 on a single branch."""
    node = g.only_reader(conv.node.output[0])
    act = node if node is not None and (node.op_type == "Relu" or _is_relu6(g, node)) else None
    if act is not None:
        node = g.only_reader(act.output[0])
    if node is None or node.name not in convs or node.input[0] == "" or node.op_type != "Conv":
        return None, act
    return convs[node.name], act


def _equalize_pair(first: _Conv, second: _Conv) -> None:
    """Output channel i of `first` is input channel i of `second` (any group count of either)."""
    r1, r2 = first.out_range(), second.in_range()
    ok = (r1 > 0) & (r2 > 0)
    s = np.where(ok, np.sqrt(r1 * r2) / np.where(ok, r2, 1), 1.0)
    first.scale_out(s)
    second.scale_in(s)


def _equalize_triplet(first: _Conv, dw: _Conv, last: _Conv) -> None:
    """`dw` depthwise: its input channel i is its output channel i, so three ranges meet."""
    r1, r2, r3 = first.out_range(), dw.out_range(), last.in_range()
    ok = (r1 > 0) & (r2 > 0) & (r3 > 0)
    target = np.cbrt(np.where(ok, r1 * r2 * r3, 1.0))
    s1 = np.where(ok, r1 / target, 1.0)
    s2 = np.where(ok, r2 * s1 / target, 1.0)
    first.scale_out(s1)
    dw.scale_in(s1)
    dw.scale_out(s2)
    last.scale_in(s2)


def _padded(conv: _Conv) -> bool:
    attrs = {a.name: a for a in conv.node.attribute}
    auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    return auto not in ("NOTSET", "VALID") or ("pads" in attrs and any(attrs["pads"].ints))


def _absorb_high_bias(first: _Conv, second: _Conv) -> None:
    """Zero padding in `second` would see 0 where the shifted input has -c: absorb only without it."""
    if first.gamma is None or _padded(second):
        return
    c = np.maximum(0.0, first.beta - 3 * np.abs(first.gamma))
    first.bias = first.bias - c
    first.beta = first.beta - c
    second.bias = second.bias + second.take_in(c)


def _write_back(g: _Graph, convs: dict[str, _Conv]) -> None:
    replaced: dict[str, onnx.TensorProto] = {}
    for conv in convs.values():
        node = conv.node
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else f"{node.name}.bias"
        if len(node.input) < 3:
            node.input.append(bias_name)
        else:
            node.input[2] = bias_name
        replaced[node.input[1]] = numpy_helper.from_array(conv.weight.astype(np.float32), node.input[1])
        replaced[bias_name] = numpy_helper.from_array(conv.bias.astype(np.float32), bias_name)
    used = {n for _, node in walk(g.model.graph) for n in node.input}  # If/Loop bodies read them too
    kept = [i for i in g.model.graph.initializer if i.name not in replaced and i.name in used]
    del g.model.graph.initializer[:]
    g.model.graph.initializer.extend([*kept, *replaced.values()])


def equalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return an equalized copy of `model` that computes the same float function."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _Graph(out)
    convs = _fold_batchnorms(g)
    g = _Graph(out)  # BN nodes are gone: rebuild the reader index
    middles: set[str] = set()  # depthwise convs already equalized inside a triplet
    for conv in convs.values():
        if conv.node.name in middles:
            continue
        nxt, act = _next_conv(g, conv, convs)
        if nxt is None:
            continue
        last, last_act = _next_conv(g, nxt, convs) if nxt.depthwise else (None, None)
        if last is not None:
            _equalize_triplet(conv, nxt, last)
            middles.add(nxt.node.name)
            if last_act is not None:
                _to_relu(last_act)
        else:
            _equalize_pair(conv, nxt)
        if act is not None:
            _to_relu(act)
            _absorb_high_bias(conv, nxt)
    _write_back(g, convs)
    out.graph.ClearField("value_info")
    onnx.checker.check_model(out)
    return out
