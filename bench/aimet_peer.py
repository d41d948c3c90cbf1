"""The aimet-onnx peers of bench_quantize, run with a Python that has aimet-onnx (never a dependency
of edgeloop): QuantSim with tf_enhanced, 8-bit, per-channel weights, exported as a QDQ model; with
`adaround`, AIMET's AdaRound of the weights first (its `apply_adaround`, ITERATIONS per layer), then
the activation encodings, as AIMET's documentation orders them.

    AIMET_PYTHON -m bench.aimet_peer {tf_enhanced|adaround} CONTAINER CALIB_LIST OUTPUT.onnx
        -> prints {"seconds": ...}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import onnx
from aimet_onnx import apply_adaround
from aimet_onnx.common import quantsim_config
from aimet_onnx.common.defs import QuantScheme
from aimet_onnx.quantsim import QuantizationSimModel

from deploy.container import load_container
from deploy.inputlist import read_input_list
from deploy.quantize.pipeline import feeds_from

# AdaRound steps per layer: edgeloop's default (QuantizeOptions.adaround_iterations), not AIMET's
# recommended 10000, which would take hours per OCR model on the benchmark's 2 cores.
ITERATIONS = 1000


def main() -> None:
    mode = sys.argv[1]
    container, calib, output = (Path(a) for a in sys.argv[2:5])
    model, meta = load_container(container)
    feeds = feeds_from(read_input_list(calib), meta, str(calib))
    config = Path(quantsim_config.__file__).parent / "default_config_per_channel.json"
    start = time.perf_counter()
    sim = QuantizationSimModel(model, param_type="int8", activation_type="int8",
                               quant_scheme=QuantScheme.post_training_tf_enhanced, config_file=str(config),
                               providers=["CPUExecutionProvider"])
    if mode == "adaround":
        apply_adaround(sim, list(feeds()), num_iterations=ITERATIONS)
    elif mode != "tf_enhanced":
        raise SystemExit(f"unknown mode {mode!r}: tf_enhanced or adaround")
    sim.compute_encodings(feeds())
    qdq = sim.to_onnx_qdq(export_int32_bias=True)
    seconds = time.perf_counter() - start
    onnx.save(qdq, str(output))
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
