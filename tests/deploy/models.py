"""Small ONNX test models built with onnx.helper, shared by the convert, quantize and harness tests.

Every builder is deterministic (weights come from a seeded numpy generator), returns an
`onnx.ModelProto` that passes the checker and runs under onnxruntime, and uses opset 17
(LayerNormalization needs it). Import them as `from tests.deploy.models import conv_net`.

Builders and the ops they exercise:
- `conv_net`: Conv, BatchNormalization, ReLU, depthwise Conv, MaxPool, GlobalAveragePool, Flatten, Gemm, Softmax
- `branchy_net`: Conv, BatchNormalization, Concat, Add, Resize, AveragePool, Relu
- `transformer_block`: MatMul, Add, LayerNormalization, Softmax, Transpose, Reshape, Mul (attention + MLP)
- `resnet_like`: a ResNet-18-shaped net with 5.4 M params (Conv, BatchNormalization, Add, Relu, Gemm) for benchmarks
- `exported_style_net`: exporter debris (Identity, Shape/Gather/Concat/Reshape, Constant, Cast, Dropout), dynamic batch
- `unsupported_op_net`: a Det node that no runtime table supports
- `dynamic_batch` / `static_batch`: rewrite the first input dim of every input and output
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


class _Graph:
    """Accumulates nodes and seeded initializers so each builder reads like the network it makes."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.3) -> str:
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str | None = None, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name or output, **attrs))
        return output

    def conv(self, x: str, name: str, cin: int, cout: int, k: int = 3, group: int = 1, stride: int = 1) -> str:
        w = self.weight(f"{name}.weight", (cout, cin // group, k, k), scale=(2.0 / (cin // group * k * k)) ** 0.5)
        b = self.weight(f"{name}.bias", (cout,), scale=0.1)
        return self.node("Conv", [x, w, b], f"{name}_out", name, kernel_shape=[k, k], pads=[k // 2] * 4,
                         strides=[stride, stride], group=group)

    def bn(self, x: str, name: str, c: int) -> str:
        scale = self.const(f"{name}.scale", self.rng.uniform(0.5, 1.5, c).astype(np.float32))
        bias = self.const(f"{name}.bias", self.rng.uniform(-0.3, 0.3, c).astype(np.float32))
        mean = self.const(f"{name}.mean", self.rng.uniform(-0.2, 0.2, c).astype(np.float32))
        var = self.const(f"{name}.var", self.rng.uniform(0.5, 2.0, c).astype(np.float32))
        return self.node("BatchNormalization", [x, scale, bias, mean, var], f"{name}_out", name, epsilon=1e-5)

    def model(self, name: str, inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeloop-tests")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model


def _value(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def conv_net(seed: int = 0, size: int = 16, channels: int = 8, classes: int = 10) -> onnx.ModelProto:
    """An image classifier: Conv-BN-ReLU, depthwise Conv-BN-ReLU, pooling, Gemm, Softmax; input 'image'."""
    g = _Graph(seed)
    x = g.node("Relu", [g.bn(g.conv("image", "conv1", 3, channels), "bn1", channels)], "relu1")
    x = g.node("Relu", [g.bn(g.conv(x, "dw2", channels, channels, group=channels), "bn2", channels)], "relu2")
    x = g.node("MaxPool", [x], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Relu", [g.bn(g.conv(x, "conv3", channels, 2 * channels, k=1), "bn3", 2 * channels)], "relu3")
    x = g.node("GlobalAveragePool", [x], "gap")
    x = g.node("Flatten", [x], "flat", axis=1)
    w = g.weight("fc.weight", (classes, 2 * channels))
    b = g.weight("fc.bias", (classes,), scale=0.1)
    x = g.node("Gemm", [x, w, b], "logits", "fc", transB=1)
    g.node("Softmax", [x], "probs", axis=-1)
    return g.model("conv_net", [_value("image", [1, 3, size, size])], [_value("probs", [1, classes])])


def branchy_net(seed: int = 1, size: int = 8, channels: int = 4) -> onnx.ModelProto:
    """Two inputs, two branches: Concat, residual Add, nearest Resize, AveragePool; outputs 'up' and 'pooled'."""
    g = _Graph(seed)
    a = g.node("Relu", [g.bn(g.conv("left", "conv_a", 3, channels), "bn_a", channels)], "relu_a")
    b = g.node("Relu", [g.conv("right", "conv_b", 3, channels)], "relu_b")
    cat = g.node("Concat", [a, b], "cat", axis=1)
    mixed = g.conv(cat, "conv_m", 2 * channels, 2 * channels, k=1)
    res = g.node("Add", [mixed, cat], "residual")
    scales = g.const("up.scales", np.array([1, 1, 2, 2], dtype=np.float32))
    g.node("Resize", [res, "", scales], "up", mode="nearest")
    g.node("AveragePool", [res], "pooled", kernel_shape=[2, 2], strides=[2, 2])
    inputs = [_value("left", [1, 3, size, size]), _value("right", [1, 3, size, size])]
    outputs = [_value("up", [1, 2 * channels, 2 * size, 2 * size]),
               _value("pooled", [1, 2 * channels, size // 2, size // 2])]
    return g.model("branchy_net", inputs, outputs)


def transformer_block(seed: int = 2, tokens: int = 8, dim: int = 16, heads: int = 2) -> onnx.ModelProto:
    """One pre-norm transformer encoder block (multi-head self-attention and a GELU-free MLP); input 'tokens'."""
    g = _Graph(seed)
    hd = dim // heads
    ln_w = g.const("ln1.weight", g.rng.uniform(0.8, 1.2, dim).astype(np.float32))
    ln_b = g.const("ln1.bias", g.rng.uniform(-0.1, 0.1, dim).astype(np.float32))
    h = g.node("LayerNormalization", ["tokens", ln_w, ln_b], "ln1_out", "ln1", axis=-1, epsilon=1e-5)
    split_shape = g.const("heads.shape", np.array([1, tokens, heads, hd], dtype=np.int64))
    qkv = {}
    for part in "qkv":
        proj = g.node("MatMul", [h, g.weight(f"{part}.weight", (dim, dim), scale=dim ** -0.5)], f"{part}_mm")
        proj = g.node("Add", [proj, g.weight(f"{part}.bias", (dim,), scale=0.05)], f"{part}_proj")
        proj = g.node("Reshape", [proj, split_shape], f"{part}_split")
        perm = [0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]
        qkv[part] = g.node("Transpose", [proj], f"{part}_heads", perm=perm)
    scores = g.node("MatMul", [qkv["q"], qkv["k"]], "scores")
    scores = g.node("Mul", [scores, g.const("attn.scale", np.array(hd ** -0.5, dtype=np.float32))], "scaled")
    attn = g.node("Softmax", [scores], "attn", axis=-1)
    ctx = g.node("MatMul", [attn, qkv["v"]], "ctx")
    ctx = g.node("Transpose", [ctx], "ctx_t", perm=[0, 2, 1, 3])
    ctx = g.node("Reshape", [ctx, g.const("merge.shape", np.array([1, tokens, dim], dtype=np.int64))], "ctx_merged")
    out = g.node("MatMul", [ctx, g.weight("o.weight", (dim, dim), scale=dim ** -0.5)], "o_mm")
    x = g.node("Add", ["tokens", out], "res1")
    ln2_w = g.const("ln2.weight", np.ones(dim, dtype=np.float32))
    ln2_b = g.const("ln2.bias", np.zeros(dim, dtype=np.float32))
    h = g.node("LayerNormalization", [x, ln2_w, ln2_b], "ln2_out", "ln2", axis=-1, epsilon=1e-5)
    h = g.node("MatMul", [h, g.weight("fc1.weight", (dim, 2 * dim), scale=dim ** -0.5)], "fc1_out")
    h = g.node("Relu", [h], "fc1_relu")
    h = g.node("MatMul", [h, g.weight("fc2.weight", (2 * dim, dim), scale=(2 * dim) ** -0.5)], "fc2_out")
    g.node("Add", [x, h], "encoded")
    return g.model("transformer_block", [_value("tokens", [1, tokens, dim])], [_value("encoded", [1, tokens, dim])])


def resnet_like(seed: int = 4, size: int = 64, widths: tuple[int, ...] = (64, 128, 256, 512),
                classes: int = 1000) -> onnx.ModelProto:
    """A ResNet-18-shaped classifier (one basic block per stage, 5.4 M params) for benchmarks; input 'image'."""
    g = _Graph(seed)
    x = g.node("Relu", [g.bn(g.conv("image", "stem", 3, widths[0], stride=2), "stem_bn", widths[0])], "stem_relu")
    cin = widths[0]
    for stage, width in enumerate(widths):
        stride = 1 if stage == 0 else 2
        y = g.node("Relu", [g.bn(g.conv(x, f"s{stage}a", cin, width, stride=stride), f"s{stage}a_bn", width)],
                   f"s{stage}a_relu")
        y = g.bn(g.conv(y, f"s{stage}b", width, width), f"s{stage}b_bn", width)
        skip = x if stride == 1 and cin == width else g.bn(g.conv(x, f"s{stage}down", cin, width, k=1, stride=stride),
                                                          f"s{stage}down_bn", width)
        x = g.node("Relu", [g.node("Add", [y, skip], f"s{stage}_add")], f"s{stage}_out")
        cin = width
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    g.node("Gemm", [x, g.weight("fc.weight", (classes, cin), scale=cin ** -0.5), g.weight("fc.bias", (classes,))],
           "logits", "fc", transB=1)
    return g.model("resnet_like", [_value("image", [1, 3, size, size])], [_value("logits", [1, classes])])


def exported_style_net(seed: int = 5, features: tuple[int, int] = (4, 6), classes: int = 5) -> onnx.ModelProto:
    """What exporters emit around a flatten: Identity, Shape-Gather-Unsqueeze-Concat-Reshape, Constant
    nodes, a Cast of a constant and an inference-mode Dropout, on a dynamic batch 'N'; input 'x'."""
    g = _Graph(seed)
    size = features[0] * features[1]

    def constant(name: str, value: np.ndarray) -> str:
        return g.node("Constant", [], name, value=numpy_helper.from_array(value, name))

    x = g.node("Identity", ["x"], "x_id")
    batch = g.node("Gather", [g.node("Shape", [x], "shape"), constant("zero", np.array(0, np.int64))], "batch", axis=0)
    batch = g.node("Unsqueeze", [batch, constant("axes", np.array([0], np.int64))], "batch1")
    new_shape = g.node("Concat", [batch, constant("rest", np.array([-1], np.int64))], "new_shape", axis=0)
    flat = g.node("Reshape", [x, new_shape], "flat")
    mm = g.node("MatMul", [flat, g.weight("w", (size, classes))], "mm")
    two = g.node("Cast", [constant("two_double", np.array(2.0, np.float64))], "two", to=TensorProto.FLOAT)
    g.node("Dropout", [g.node("Mul", [mm, two], "scaled")], "y")
    return g.model("exported_style_net", [_value("x", ["N", *features])], [_value("y", ["N", classes])])


def unsupported_op_net(seed: int = 3) -> onnx.ModelProto:
    """A valid ONNX model whose 'det' node (op Det) appears in no runtime's support table."""
    g = _Graph(seed)
    x = g.node("MatMul", ["matrix", g.weight("mix.weight", (4, 4))], "mixed", "mix")
    g.node("Det", [x], "det", "det")
    return g.model("unsupported_op_net", [_value("matrix", [1, 4, 4])], [_value("det", [1])])


def with_batch(model: onnx.ModelProto, batch: int | str) -> onnx.ModelProto:
    """A copy whose inputs' and outputs' first dim is `batch` (a string makes it symbolic, i.e. dynamic)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in [*model.graph.input, *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if isinstance(batch, str):
            dim.dim_param = batch
        else:
            dim.dim_value = batch
    return model


ARCHITECTURES = {"conv_net": conv_net, "branchy_net": branchy_net, "transformer_block": transformer_block}


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float32 inputs for every graph input with a fully static shape."""
    rng = np.random.default_rng(seed)
    init_names = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in init_names:
            continue
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write `model` to `path` and return the path (tests use tmp_path folders)."""
    onnx.save(model, str(path))
    return path
