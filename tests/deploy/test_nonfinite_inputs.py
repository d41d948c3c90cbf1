"""An input holding NaN or inf is refused wherever the host reads input data: making raw files
(`invoke inputs`), checking a list (`inputs --check`) and the float reference of a deploy; each
refusal is one line naming the file and input, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.inputlist import write_input_list
from deploy.inputs import Preprocess, prepare_inputs, validate
from harness.reference import reference_outputs
from tests.deploy.models import conv_net, save

EDGELOOP = Path(sys.executable).parent / "edgeloop"
SHAPE = (1, 3, 16, 16)


@pytest.fixture(autouse=True)
def build_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    return tmp_path / "build"


@pytest.fixture
def container(tmp_path: Path) -> Path:
    return convert(save(conv_net(size=16), tmp_path / "m.onnx"), tmp_path / "c.onnx").path


def _raw_list(folder: Path, spoilt: float | None) -> Path:
    """Two raw inputs and their list; the second holds `spoilt` at flat index 7 (None: all finite)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        data = np.random.default_rng(i).standard_normal(SHAPE).astype("<f4")
        if i == 1 and spoilt is not None:
            data.flat[7] = spoilt
        data.tofile(folder / f"x{i}.raw")
    write_input_list(folder / "list.txt", [{"image": "x0.raw"}, {"image": "x1.raw"}])
    return folder / "list.txt"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_the_reference_refuses_a_non_finite_input_and_caches_nothing(
        value: float, tmp_path: Path, container: Path, build_root: Path) -> None:
    listing = _raw_list(tmp_path / "inputs", value)
    with pytest.raises(EdgeloopError) as err:
        reference_outputs(container, listing)
    assert err.value.message == (f"{listing} line 2: {tmp_path / 'inputs' / 'x1.raw'}: input 'image' holds 1 NaN "
                                 f"or inf value (the first, {value}, at flat index 7)")
    assert not (build_root / "cache" / "reference").exists() or not any((build_root / "cache" / "reference").rglob(
        "*.npz"))


def test_the_reference_of_finite_inputs_is_computed(tmp_path: Path, container: Path) -> None:
    outputs, _ = reference_outputs(container, _raw_list(tmp_path / "inputs", None))
    assert [a.shape for a in outputs["probs"]] == [(1, 10), (1, 10)]


def test_validate_reads_the_values_too(tmp_path: Path, container: Path) -> None:
    assert validate(_raw_list(tmp_path / "good", None), container) == 2
    with pytest.raises(EdgeloopError, match=r"list\.txt line 2: .*x1\.raw: input 'image' holds 1 NaN or inf value"):
        validate(_raw_list(tmp_path / "bad", np.nan), container)


def test_a_npy_with_nan_is_refused_before_any_raw_file_is_written(tmp_path: Path, container: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(SHAPE, np.float32))
    spoilt = np.zeros(SHAPE, np.float32)
    spoilt.flat[[3, 9]] = np.nan
    np.save(tmp_path / "b.npy", spoilt)
    for kwargs, what in (({"container": container}, "b.npy: input 'image'"), ({}, "b.npy")):
        with pytest.raises(EdgeloopError) as err:
            prepare_inputs([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "out", **kwargs)
        assert err.value.message.endswith(f"{what} holds 2 NaN or inf values (the first, nan, at flat index 3)")
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("pre", "message"), [
    (Preprocess(mean=(float("nan"),)), "--mean nan: every value must be a finite number"),
    (Preprocess(std=(1.0, float("inf"), 1.0)), "--std 1.0,inf,1.0: every value must be a finite number"),
    (Preprocess(scale=float("inf")), "--scale inf: every value must be a finite number"),
])
def test_non_finite_preprocessing_numbers_are_refused(pre: Preprocess, message: str, tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(SHAPE, np.float32))
    with pytest.raises(EdgeloopError, match=f"^{message}$".replace(".", r"\.")):
        prepare_inputs([tmp_path / "a.npy"], tmp_path / "out", pre=pre)
    assert not (tmp_path / "out").exists()


def test_cli_check_refuses_nan_with_exit_2_and_one_line(tmp_path: Path, container: Path) -> None:
    listing = _raw_list(tmp_path / "inputs", np.nan)
    run = subprocess.run([str(EDGELOOP), "inputs", "--check", str(listing), "--container", str(container)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith(f"error: {listing} line 2: ") and "holds 1 NaN or inf value" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
