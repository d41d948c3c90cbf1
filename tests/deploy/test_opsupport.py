"""The op tables against the SNPE layer table (SPEC, seeds/000): layers it marks as supported on
CPU, GPU and DSP/AIP alike must be in every runtime's table."""

import pytest

from deploy.opsupport import RUNTIME_TABLES, load_tables

# SNPE layer -> ONNX op: batch normalisation, concatenation, convolution and depthwise convolution,
# crop, cross-channel normalisation (an LRN option), deconvolution, element-wise SUM/PROD/MAX,
# flatten, fully connected. Dropout is removed by the converters (and by edgeloop's convert).
EVERYWHERE = ["BatchNormalization", "Concat", "Conv", "Slice", "LRN", "ConvTranspose", "Sum", "Add", "Mul", "Max",
              "Flatten", "Gemm"]


@pytest.mark.parametrize("runtime", sorted(RUNTIME_TABLES))
def test_layers_snpe_runs_on_every_runtime_are_in_each_table(runtime: str) -> None:
    table = load_tables()[RUNTIME_TABLES[runtime]]
    assert [op for op in EVERYWHERE if op not in table.ops] == []
    assert "Dropout" not in table.ops
