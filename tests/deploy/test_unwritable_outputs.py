"""Every artifact written where it cannot be is one line and exit 2 (deploy.fsutil.unwritable), never an
internal error: convert, inputs, quantize and bundle go through the same atomic writers.

The tests run as root, for whom a chmod 0555 folder is writable: /proc and a path under a regular
file refuse new files to everyone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.quantize import quantize
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list

EDGELOOP = Path(sys.executable).parent / "edgeloop"


def _edgeloop(*args: str, cwd: Path, build: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "EDGELOOP_BUILD": build}
    return subprocess.run([str(EDGELOOP), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a float container, its input list and a regular file `afile`."""
    folder = tmp_path_factory.mktemp("unwritable")
    model = conv_net()
    make_container(model, folder / "float.onnx")
    make_input_list(model, folder, 2)
    quantize(folder / "float.onnx", folder / "input_list.txt", folder / "q.onnx", cache=False)
    np.save(folder / "a.npy", np.zeros(model_input_shape(), np.float32))
    (folder / "afile").write_text("a file, not a folder")
    return folder


def model_input_shape() -> tuple[int, ...]:
    return tuple(d.dim_value for d in conv_net().graph.input[0].type.tensor_type.shape.dim)


@pytest.mark.parametrize(("args", "target", "build"), [
    (["convert", "-m", "float.onnx", "-o", "/proc/x.onnx"], "/proc/x.onnx", "build"),
    (["convert", "-m", "float.onnx", "-o", "afile/x.onnx"], "afile/x.onnx", "build"),
    (["convert", "-m", "float.onnx"], "afile/b/cache/convert", "afile/b"),
    (["inputs", "--source", "a.npy", "--output", "afile"], "afile/input_list.txt", "build"),
    (["inputs", "--source", "a.npy", "--output", "/proc/inp"], "/proc/inp/input_list.txt", "build"),
    (["quantize", "--container", "float.onnx", "--input-list", "input_list.txt", "--output", "/proc/q.onnx"],
     "/proc/q.onnx", "build"),
    (["quantize", "--container", "float.onnx", "--input-list", "input_list.txt", "--encodings-out",
      "afile/e.json"], "afile/e.json", "build"),
    (["quantize.debug", "--container", "float.onnx", "--quantized", "q.onnx", "--input-list", "input_list.txt",
      "--overrides-out", "/proc/x.json"], "/proc/x.json", "build"),
    (["bundle", "--container", "float.onnx", "--device", "pixel", "--runtime", "cpu", "--input-list",
      "input_list.txt"], "afile/b/bundles/", "afile/b"),
])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(made: Path, args: list[str], target: str,
                                                                 build: str) -> None:
    result = _edgeloop(*args, cwd=made, build=build)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: cannot write {target}") and result.stderr.count("\n") == 1
    assert ".tmp" not in result.stderr
