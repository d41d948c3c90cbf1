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
    weight: np.ndarray
    bias: np.ndarray
    gamma: np.ndarray | None = None  # folded BN scale and shift (per output channel), for absorption
    beta: np.ndarray | None = None

    @property
    def group(self) -> int:
        return next((int(a.i) for a in self.node.attribute if a.name == "group"), 1)

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.weight.shape[0] and self.weight.shape[1] == 1


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
            conv.weight = weight * factor[:, None, None, None]
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


def _out_range(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0], -1).max(axis=1)


def _in_range(w: np.ndarray) -> np.ndarray:
    return np.abs(w).transpose(1, 0, 2, 3).reshape(w.shape[1], -1).max(axis=1)


def _scale_out(conv: _Conv, s: np.ndarray) -> None:
    """Divide output channel i by s_i (weights, bias and the remembered BN statistics)."""
    conv.weight = conv.weight / s[:, None, None, None]
    conv.bias = conv.bias / s
    if conv.gamma is not None:
        conv.gamma, conv.beta = conv.gamma / s, conv.beta / s


def _equalize_pair(first: _Conv, second: _Conv) -> None:
    """A dense or depthwise `second`: its input channel i is (for depthwise) also output channel i."""
    r1 = _out_range(first.weight)
    r2 = _out_range(second.weight) if second.depthwise else _in_range(second.weight)
    ok = (r1 > 0) & (r2 > 0)
    s = np.where(ok, np.sqrt(r1 * r2) / np.where(ok, r2, 1), 1.0)
    _scale_out(first, s)
    second.weight = second.weight * (s[:, None, None, None] if second.depthwise else s[None, :, None, None])


def _equalize_triplet(first: _Conv, dw: _Conv, last: _Conv) -> None:
    r1, r2, r3 = _out_range(first.weight), _out_range(dw.weight), _in_range(last.weight)
    ok = (r1 > 0) & (r2 > 0) & (r3 > 0)
    target = np.cbrt(np.where(ok, r1 * r2 * r3, 1.0))
    s1 = np.where(ok, r1 / target, 1.0)
    s2 = np.where(ok, r2 * s1 / target, 1.0)
    _scale_out(first, s1)
    dw.weight = dw.weight * s1[:, None, None, None]
    _scale_out(dw, s2)
    last.weight = last.weight * s2[None, :, None, None]


def _padded(conv: _Conv) -> bool:
    attrs = {a.name: a for a in conv.node.attribute}
    auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    return auto not in ("NOTSET", "VALID") or any(attrs["pads"].ints) if "pads" in attrs else auto not in (
        "NOTSET", "VALID")


def _absorb_high_bias(first: _Conv, second: _Conv) -> None:
    """Zero padding in `second` would see 0 where the shifted input has -c: absorb only without it."""
    if first.gamma is None or _padded(second):
        return
    c = np.maximum(0.0, first.beta - 3 * np.abs(first.gamma))
    first.bias = first.bias - c
    first.beta = first.beta - c
    weights = second.weight.sum(axis=(2, 3))  # (out, in // group) for a dense conv
    second.bias = second.bias + (weights @ c if second.group == 1 else weights[:, 0] * c)


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
    for conv in list(convs.values()):
        if conv.depthwise or conv.group != 1:
            continue
        nxt, act = _next_conv(g, conv, convs)
        if nxt is None or not (nxt.depthwise or nxt.group == 1):
            continue
        last, last_act = _next_conv(g, nxt, convs) if nxt.depthwise else (None, None)
        if last is not None and not last.depthwise and last.group == 1:
            _equalize_triplet(conv, nxt, last)
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
