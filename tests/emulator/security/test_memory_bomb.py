"""A container that allocates more than the device has (issue 12): a 1 KB ConstantOfShape asking for
12 GB OOM-killed the whole emulated device. Now only that net-run fails, as a phone's lowmemorykiller
ends the app that asked, and the next run works."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deploy.profiles import load_profile
from emulator.sandbox import Sandbox
from tests.emulator.test_netrun import Device, feeds_for, install, meta_for, output, run

ELEMENTS = 3 << 30  # float32: 12 GiB, past every profile's RAM


def _bomb() -> onnx.ModelProto:
    """y = x + sum(ConstantOfShape([3 Gi])): about 1 KB on disk."""
    shape = numpy_helper.from_array(np.array([ELEMENTS], dtype=np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
             helper.make_node("Add", ["x", "total"], ["y"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=[shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _small() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "ok",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_container_that_exhausts_memory_fails_its_run_not_the_device(tmp_path: Path) -> None:
    bomb = _bomb()
    assert len(bomb.SerializeToString()) < 1024
    device = Device(load_profile("generic-arm64"))  # ram_mb 4096
    fs = Sandbox(tmp_path / "device", 1 << 26)
    install(fs, bomb, meta_for(bomb), feeds_for(bomb, 1))
    result = run(fs, device)
    assert result.rc == 137  # 128 + SIGKILL, what the shell sees of a process the lowmemorykiller ended
    assert "error_code=402; error_message=Out of memory: the network needs more than the 4096 MB" in result.stderr
    # the device (this process) is fine, and so is its next run
    small = _small()
    feeds = feeds_for(small, 2)
    install(fs, small, meta_for(small), feeds)
    assert run(fs, device).rc == 0
    np.testing.assert_array_equal(output(fs, 1, meta_for(small).outputs[0]), np.maximum(feeds[1]["x"], 0))


def test_a_run_past_the_devices_time_limit_is_killed_and_the_next_one_works(tmp_path: Path) -> None:
    small = _small()
    fs = Sandbox(tmp_path / "device", 1 << 26)
    install(fs, small, meta_for(small), feeds_for(small, 1))
    hasty = Device(dataclasses.replace(load_profile("pixel"), run_limit_s=1e-6))
    result = run(fs, hasty)
    assert result.rc == 137 and "error_code=403; error_message=net-run ran past this device's limit" in result.stderr
    assert run(fs, Device(load_profile("pixel"))).rc == 0  # the device runs the next one
