"""The built-in pack's bundle really runs: pushed to the emulated device over a private adb server,
`sh run.sh <output_dir>` (the run contract) writes Result_N outputs equal to onnxruntime's on the host."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import onnxruntime as ort
import pytest

from deploy.bundle import bundle
from deploy.container import load_container
from deploy.inputlist import iter_feeds, read_input_list, result_path
from deploy.profiles import load_profile
from harness.devices import FoundDevice
from harness.run import run_bundle
from harness.session import device_session
from tests.deploy.test_bundle import make_container, make_inputs


@pytest.mark.e2e
def test_builtin_bundle_runs_on_emulated_device(adb_server, emulated_pixel, tmp_path: Path) -> None:
    container, inputs = make_container(tmp_path), make_inputs(tmp_path, lines=2)
    made = bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path / "build")
    device = adb_server.client.device(emulated_pixel.serial)
    with device_session(FoundDevice(emulated_pixel.serial, {}, device), "test") as held:
        pushed = held.install(made)
        outcome = run_bundle(device, pushed.remote_dir, "runs/r1", tmp_path / "logs", args=("--debug",), timeout=120)
    assert outcome.exit_code == 0, outcome.stderr

    session = ort.InferenceSession(str(container), providers=["CPUExecutionProvider"])
    listed = read_input_list(inputs)
    assert len(listed.entries) == 2
    for i, feeds in enumerate(iter_feeds(listed, load_container(container)[1].inputs)):
        expected = dict(zip([o.name for o in made.outputs], session.run(None, feeds), strict=True))
        for tensor in made.outputs:
            remote = pushed.remote_dir / result_path(PurePosixPath("runs/r1"), i, tensor.name)
            local = tmp_path / "pulled" / f"{i}_{tensor.name}.raw"
            local.parent.mkdir(exist_ok=True)
            device.sync.pull(str(remote), str(local))
            got = np.fromfile(local, dtype=np.float32).reshape(tensor.shape)
            np.testing.assert_allclose(got, expected[tensor.name], rtol=1e-5, atol=1e-6)
    timings = pushed.remote_dir / "runs/r1" / made.timings_path
    assert device.sync.stat(str(timings)).size > 0

