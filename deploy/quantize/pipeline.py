"""The quantization pipeline on in-memory models: CLE, calibration, plan, SeqMSE/AdaRound, bias correction, QDQ."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np
import onnx

from deploy.container import ContainerMeta
from deploy.errors import EdgeloopError
from deploy.inputlist import InputList, iter_feeds
from deploy.quantize.aimet import read_encodings
from deploy.quantize.calibrate import BATCH_BYTES, Kept, calibrate, progress
from deploy.quantize.metrics import Agreement
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.plan import Plan, check_override_algorithms, check_override_names, fused_tensors, make_plan
from deploy.quantize.qdq import write_qdq
from deploy.quantize.runner import float_activations, per_feed, run_batched
from deploy.subgraphs import initializers

Feeds = Callable[[], Iterator[dict[str, np.ndarray]]]
# The final SQNR pass runs the quantized model on the first MEASURED calibration inputs: a check of
# the result (and CLE's keep-or-drop), not part of calibration, so its cost stays fixed however long
# the list is (it had doubled a 200-page calibration of PP-OCRv4 det; bench/README.md, "Quantizer").
MEASURED = 64


def feeds_from(input_list: InputList, meta: ContainerMeta, source: str) -> Feeds:
    """A re-iterable source of feeds: every pass reads the raw files again (bounded memory)."""
    return lambda: iter_feeds(input_list, meta.inputs, source)


def measure(test: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]], total: int,
            reference: Iterable[list[np.ndarray]], names: list[str]) -> dict[str, Agreement]:
    """Run `test` on the first `total` feeds; per tensor, how well it agrees with the reference values
    (per feed, in order: the float model's, kept from calibration, so it need not run again)."""
    result = {name: Agreement() for name in names}
    reference = iter(reference)
    with progress("measuring") as bar:
        task = bar.add_task("measuring", total=total)
        for values in per_feed(run_batched(test, names, islice(feeds, total), BATCH_BYTES)):
            for name, ref, out in zip(names, next(reference), values, strict=True):
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
    """Float model -> (QDQ model, its plan, agreement of every output with the float model).

    CLE can lower the SQNR it is meant to raise (on a digits CNN, 36.05 dB -> 30.09 dB at 8 bit
    per-channel), so with `cle` the model is also quantized without it, on the same calibration
    inputs, and the better output SQNR kept. The plan records what the kept result applied
    (`plan.algorithms`: the encodings describe that model) and, when CLE was dropped, a line saying
    so (`plan.notes`) for the caller to show: printing it here would repeat it for every
    re-quantization the debugger makes."""
    outputs = [o.name for o in model.graph.output]
    if "cle" not in options.algorithms:
        kept, _ = _quantize(model, feeds, total, options, outputs)
        return _applied(kept, options.algorithms)
    from deploy.quantize.cle import equalize

    equalized = equalize(model)
    if _made_with_cle(options):  # such encodings fit only the equalized weights
        reference = Kept()
        for values in per_feed(run_batched(model, outputs, islice(feeds(), MEASURED), BATCH_BYTES)):
            reference.add(values)
        kept, _ = _quantize(equalized, feeds, total, options, outputs, reference)
        return _applied(kept, options.algorithms)
    without = tuple(a for a in options.algorithms if a != "cle")
    plain, reference = _quantize(model, feeds, total, dataclasses.replace(options, algorithms=without), outputs)
    with_cle, _ = _quantize(equalized, feeds, total, options, outputs, reference)
    plain_db, cle_db = pooled(plain[2]).sqnr_db, pooled(with_cle[2]).sqnr_db
    if cle_db >= plain_db:
        return _applied(with_cle, options.algorithms)
    return _applied(plain, without, f"CLE lowered the calibration SQNR to {cle_db:.2f} dB from {plain_db:.2f} dB "
                                    "without it: kept the quantization without CLE")


Quantized = tuple[onnx.ModelProto, Plan, dict[str, Agreement]]


def _quantize(work: onnx.ModelProto, feeds: Feeds, total: int, options: QuantizeOptions, outputs: list[str],
              reference: Kept | None = None) -> tuple[Quantized, Kept]:
    """Calibrate, plan, tune and write `work`, then measure its outputs against `reference`, the float
    model's; without one, `work` is the float model and calibration keeps its outputs."""
    activations = float_activations(work)
    overrides = None
    if options.override_params is not None:
        overrides = read_encodings(options.override_params, set(initializers(work)))  # bodies' too
        check_override_algorithms(overrides, options.algorithms, str(options.override_params))
        check_override_names(work, activations, overrides, str(options.override_params))
    fused = fused_tensors(work)  # never encoded (make_plan): not worth calibrating
    calibration = calibrate(work, [a for a in activations if a not in fused], feeds(), total,
                            histograms=options.act_quantizer == "enhanced", keep=outputs if reference is None else None,
                            keep_inputs=MEASURED)
    reference = reference if reference is not None else calibration.kept
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
    agreements = measure(qmodel, feeds(), min(total, MEASURED), reference, outputs)
    check_measured(agreements)
    return (qmodel, plan, agreements), reference


def _made_with_cle(options: QuantizeOptions) -> bool:
    """Whether the override file says it was made with CLE (quantizer_args)."""
    if options.override_params is None:
        return False
    made = read_encodings(options.override_params, set()).algorithms
    return made is not None and "cle" in made


def _applied(result: Quantized, algorithms: tuple[str, ...], *notes: str) -> Quantized:
    plan = result[1]
    plan.algorithms, plan.notes = algorithms, list(notes)  # Plan fields (see plan.py)
    return result


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
