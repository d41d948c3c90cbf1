"""The quantization pipeline on in-memory models: CLE, calibration, plan, SeqMSE/AdaRound, bias correction, QDQ."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import onnx

from deploy.container import ContainerMeta
from deploy.errors import EdgeloopError
from deploy.inputlist import InputList, iter_feeds
from deploy.quantize.aimet import read_encodings
from deploy.quantize.calibrate import calibrate, progress
from deploy.quantize.metrics import Agreement
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.plan import Plan, check_override_algorithms, check_override_names, make_plan
from deploy.quantize.qdq import write_qdq
from deploy.quantize.runner import float_activations, session

Feeds = Callable[[], Iterator[dict[str, np.ndarray]]]


def feeds_from(input_list: InputList, meta: ContainerMeta, source: str) -> Feeds:
    """A re-iterable source of feeds: every pass reads the raw files again (bounded memory)."""
    return lambda: iter_feeds(input_list, meta.inputs, source)


def compare(reference: onnx.ModelProto, test: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]],
            total: int, names: list[str] | None = None, label: str = "comparing",
            known: list[list[np.ndarray]] | None = None) -> dict[str, Agreement]:
    """Run both models on every feed; per tensor (default: the graph outputs) how well they agree.
    `known` holds the reference's values per feed when they were already computed."""
    names = names or [o.name for o in reference.graph.output]
    ref_sess, test_sess = (None if known is not None else session(reference)), session(test)
    result = {name: Agreement() for name in names}
    with progress(label) as bar:
        task = bar.add_task(label, total=total)
        for i, feed in enumerate(feeds):
            refs = known[i] if known is not None else ref_sess.run(names, feed)
            for name, ref, out in zip(names, refs, test_sess.run(names, feed), strict=True):
                result[name].add(ref, out)
            bar.advance(task)
    return result


def pooled(agreements: dict[str, Agreement]) -> Agreement:
    total = Agreement()
    for a in agreements.values():
        total.signal += a.signal
        total.noise += a.noise
        total.dot += a.dot
        total.test_power += a.test_power
        total.shift += a.shift
        total.count += a.count
    return total


def quantize_model(model: onnx.ModelProto, feeds: Feeds, total: int,
                   options: QuantizeOptions) -> tuple[onnx.ModelProto, Plan, dict[str, Agreement]]:
    """Float model -> (QDQ model, its plan, agreement of every output with the float model)."""
    work = model
    if "cle" in options.algorithms:
        from deploy.quantize.cle import equalize

        work = equalize(model)
    activations = float_activations(work)
    overrides = None
    if options.override_params is not None:
        overrides = read_encodings(options.override_params, {i.name for i in work.graph.initializer})
        check_override_algorithms(overrides, options.algorithms, str(options.override_params))
        check_override_names(work, activations, overrides, str(options.override_params))
    outputs = [o.name for o in model.graph.output]
    # CLE turns ReLU6 into ReLU: then the equalized model's outputs are not the float reference.
    calibration = calibrate(work, activations, feeds(), total, histograms=options.act_quantizer == "enhanced",
                            keep=outputs if work is model else None)
    stats = calibration.stats
    plan = make_plan(work, activations, stats, options, overrides)
    if {"adaround", "seqmse"} & set(options.algorithms):
        from deploy.quantize.layerwise import tune_weights

        work, overrides = tune_weights(work, plan, feeds, total, options, overrides)
        plan = make_plan(work, activations, stats, options, overrides)
    if "bc" in options.algorithms:
        from deploy.quantize.biascorrect import correct_biases

        work = correct_biases(work, plan, feeds, total, options.pack_4_bit_weights)
        plan = make_plan(work, activations, stats, options, overrides)
    qmodel = write_qdq(work, plan, options.pack_4_bit_weights)
    measured = calibration.kept_feeds if calibration.kept_feeds is not None else feeds()
    agreements = compare(model, qmodel, measured, total, outputs, "measuring", calibration.kept)
    check_measured(agreements)
    return qmodel, plan, agreements


def check_measured(agreements: dict[str, Agreement]) -> None:
    """Refuse an output that either model computes NaN or inf for: its SQNR and cosine would be NaN,
    which reads like a figure and no threshold compares against. A sum of squares of float32 values
    is finite exactly when every value is, so the sums say which model it was."""
    for name, agreement in agreements.items():
        if math.isfinite(agreement.signal) and math.isfinite(agreement.test_power):
            continue
        side = "float" if not math.isfinite(agreement.signal) else "quantized"
        raise EdgeloopError(f"output '{name}': the {side} model computes NaN or inf on the calibration inputs, "
                            f"so its SQNR against float is {agreement.sqnr_db:.2f} dB",
                            "run the containers on these inputs with onnxruntime to find the op: a log or sqrt of "
                            "a negative, a division by a value that rounds to 0, an overflow")
