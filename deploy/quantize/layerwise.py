"""What Sequential MSE and AdaRound share: the layers they tune, each layer's input statistics, and
the one hook the pipeline calls (docs/quantization.md, "Layer-wise weight tuning").

Both minimise, per Conv/Gemm/MatMul with a constant weight, the error its quantized weight adds
to its output on the calibration inputs: the mean over input rows x (im2col patches of a Conv,
rows of a Gemm/MatMul input) of ||W x - W~ x||² summed over output channels. With
G = mean(x xᵀ) that is the sum over output channels c of (W~_c - W_c) G (W~_c - W_c)ᵀ, so one pass
over the calibration inputs collects G and every later evaluation costs O(channels x K²), whatever
the number of inputs. The rows are the float model's inputs of the layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import helper, numpy_helper

from deploy.quantize.calibrate import BATCH_BYTES, progress
from deploy.quantize.encodings import Encoding
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.plan import Overrides, Plan
from deploy.quantize.rules import weight_axis
from deploy.quantize.runner import expose, run_batched

Feeds = Callable[[], Iterator[dict[str, np.ndarray]]]
TUNED = ("Conv", "Gemm", "MatMul")
ROWS_PER_LAYER = 8192  # input rows sampled per layer, spread evenly over the calibration inputs
GRAM_BUDGET = 256 << 20  # bytes of G matrices collected in one pass over the calibration inputs
SEED = 0


@dataclass
class Layer:
    """One tuned op: its weight seen as `groups` blocks of `rows` output channels x K inputs."""

    node: onnx.NodeProto
    weight: str
    shape: tuple[int, ...]
    groups: int = 1
    transposed: bool = False  # the weight is stored (K, N): output channels are its columns
    gram: np.ndarray | None = None  # (groups, K, K): mean of x xᵀ over the sampled input rows

    @property
    def input(self) -> str:
        return self.node.input[0]

    @property
    def k(self) -> int:
        """Inputs per output value (per group)."""
        return math.prod(self.shape) // self.shape[1 if self.transposed else 0]

    def to_rows(self, weight: np.ndarray) -> np.ndarray:
        """(groups, channels per group, K)."""
        matrix = weight.T if self.transposed else weight.reshape(weight.shape[0], -1)
        return matrix.reshape(self.groups, matrix.shape[0] // self.groups, -1)

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        matrix = rows.reshape(-1, rows.shape[-1])
        return np.ascontiguousarray(matrix.T) if self.transposed else matrix.reshape(self.shape)

    def sample_rows(self, x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """Up to `count` of the rows each output value is a dot product with, drawn without
        replacement from one input: (rows, groups, K)."""
        if self.node.op_type == "Conv":
            view = _patches(x, self.node, self.shape, self.groups)  # (n, *out, channels, *kernel)
            lead = view.shape[:x.ndim - 1]
        else:
            if self.node.op_type == "Gemm" and _attrs(self.node).get("transA", 0):
                x = x.T
            view = x.reshape(-1, x.shape[-1])
            lead = view.shape[:1]
        size = math.prod(lead)
        picked = np.sort(rng.choice(size, count, replace=False)) if count < size else np.arange(size)
        rows = view[np.unravel_index(picked, lead)]
        return rows.reshape(len(picked), self.groups, -1).astype(np.float32)


@dataclass(frozen=True)
class Grid:
    """An encoding's integer grid per row: w~ = scale * t with t in [lo, hi] (t = q - zero point)."""

    scale: np.ndarray  # float32, broadcastable to (groups, rows, 1), as the graph stores it
    lo: np.ndarray
    hi: np.ndarray

    def nearest(self, rows: np.ndarray) -> np.ndarray:
        """The integers QuantizeLinear picks: float32 division, half to even, clamped."""
        return np.clip(np.rint(rows.astype(np.float32) / self.scale), self.lo, self.hi)

    def values(self, t: np.ndarray) -> np.ndarray:
        return (t * self.scale).astype(np.float32)


def grid(enc: Encoding, layer: Layer) -> Grid:
    shape = (layer.groups, -1, 1) if enc.axis is not None else ()
    offset = np.asarray(enc.offset, dtype=np.float32).reshape(shape)
    return Grid(np.asarray(enc.scale, dtype=np.float32).reshape(shape), offset, offset + enc.levels)


def row_losses(delta: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """Per output channel, the mean squared output error a weight error `delta` causes: (groups, rows)."""
    return np.einsum("grk,grk->gr", delta @ gram, delta)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _patches(x: np.ndarray, node: onnx.NodeProto, shape: tuple[int, ...], groups: int) -> np.ndarray:
    """im2col for any number of spatial dims, as a strided view (nothing copied until sampled)."""
    attrs = _attrs(node)
    kernel = shape[2:]
    rank = len(kernel)
    strides = attrs.get("strides", [1] * rank)
    dilations = attrs.get("dilations", [1] * rank)
    pads = attrs.get("pads", [0] * (2 * rank))
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        pads = [0] * (2 * rank)
    elif auto_pad.startswith("SAME"):
        total = [max(0, (math.ceil(n / s) - 1) * s + span - n)
                 for n, s, span in zip(x.shape[2:], strides, spans, strict=True)]
        small = [t // 2 for t in total]
        large = [t - t // 2 for t in total]
        pads = [*large, *small] if auto_pad == "SAME_LOWER" else [*small, *large]
    x = np.pad(x, [(0, 0), (0, 0), *zip(pads[:rank], pads[rank:], strict=True)])
    view = sliding_window_view(x, spans, axis=tuple(range(2, 2 + rank)))
    view = view[(slice(None), slice(None), *(slice(None, None, s) for s in strides),
                 *(slice(None, None, d) for d in dilations))]
    return np.moveaxis(view, 1, 1 + rank)  # (n, *out, channels, *kernel): rows are the leading dims


def find_layers(model: onnx.ModelProto, plan: Plan) -> list[Layer]:
    """Conv/Gemm/MatMul nodes computed in int whose float32 weight is theirs alone and stored as integers."""
    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    layers = []
    for node in model.graph.node:
        if (node.op_type not in TUNED or node.name in plan.float_nodes or len(node.input) < 2
                or node.input[1] not in plan.params or readers[node.input[1]] != 1 or node.input[0] in inits):
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if weight.dtype != np.float32 or weight_axis(node, weight) is None:
            continue  # a MatMul weight that is not a 2-D right operand
        attrs = _attrs(node)
        if node.op_type == "Conv":
            layers.append(Layer(node, node.input[1], weight.shape, groups=attrs.get("group", 1)))
        else:
            transposed = node.op_type == "MatMul" or not attrs.get("transB", 0)
            layers.append(Layer(node, node.input[1], weight.shape, transposed=transposed))
    return layers


def _batches(layers: list[Layer]) -> Iterator[list[Layer]]:
    """Consecutive layers whose G matrices (float64) fit GRAM_BUDGET together: one pass each."""
    batch: list[Layer] = []
    used = 0
    for layer in layers:
        size = layer.groups * layer.k ** 2 * 8
        if batch and used + size > GRAM_BUDGET:
            yield batch
            batch, used = [], 0
        batch.append(layer)
        used += size
    if batch:
        yield batch


def collect_grams(model: onnx.ModelProto, layers: list[Layer], feeds: Feeds, total: int) -> None:
    """One pass over the calibration inputs: each layer's G from up to ROWS_PER_LAYER input rows,
    the same number from every input (a fixed seed picks them)."""
    names = list(dict.fromkeys(layer.input for layer in layers))
    per_input = max(1, math.ceil(ROWS_PER_LAYER / max(total, 1)))
    rng = np.random.default_rng(SEED)
    sums: list[np.ndarray | float] = [0.0] * len(layers)
    counts = [0] * len(layers)
    with progress("layer inputs") as bar:
        task = bar.add_task("layer inputs", total=total)
        for n, batch in run_batched(expose(model, names), names, feeds(), BATCH_BYTES):
            values = dict(zip(names, batch, strict=True))  # n feeds stacked on the batch axis
            for i, layer in enumerate(layers):
                rows = layer.sample_rows(values[layer.input], per_input * n, rng).transpose(1, 0, 2)
                sums[i] = sums[i] + (rows.transpose(0, 2, 1) @ rows).astype(np.float64)
                counts[i] += rows.shape[1]
            bar.advance(task, n)
    for layer, gram, count in zip(layers, sums, counts, strict=True):
        layer.gram = np.asarray(gram) / max(count, 1)


def tune_weights(model: onnx.ModelProto, plan: Plan, feeds: Feeds, total: int, options: QuantizeOptions,
                 overrides: Overrides | None) -> tuple[onnx.ModelProto, Overrides]:
    """Sequential MSE, then AdaRound (those in options.algorithms), on every layer of find_layers.

    Returns the model with AdaRound's weights, already on their grid (so the QDQ writer's nearest
    rounding stores exactly the chosen integers), and the overrides with every tuned weight's
    encoding frozen: a later plan (after bias correction) keeps the ranges and the rounding."""
    from deploy.quantize.adaround import adaround  # both build on this module
    from deploy.quantize.seqmse import search_range

    overrides = overrides or Overrides()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    frozen = dict(overrides.params)
    label = " + ".join(a for a in ("seqmse", "adaround") if a in options.algorithms)
    for batch in _batches(find_layers(model, plan)):
        collect_grams(model, batch, feeds, total)
        with progress(label) as bar:
            task = bar.add_task(label, total=len(batch))
            for layer in batch:
                rows = layer.to_rows(numpy_helper.to_array(inits[layer.weight]))
                enc = plan.params[layer.weight]
                pinned = layer.weight in overrides.params and overrides.params[layer.weight].resolved
                if "seqmse" in options.algorithms and not pinned:
                    enc = search_range(layer, rows, enc, options.min_range)
                if "adaround" in options.algorithms:
                    levels = grid(enc, layer)
                    t = adaround(rows, layer.gram, levels, options.adaround_iterations)
                    inits[layer.weight].CopyFrom(numpy_helper.from_array(layer.from_rows(levels.values(t)),
                                                                         layer.weight))
                frozen[layer.weight] = enc
                layer.gram = None
                bar.advance(task)
    return out, dataclasses.replace(overrides, params=frozen)
