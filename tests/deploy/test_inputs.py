"""inputs: .npy and images become raw files plus an SNPE input list; validation errors are precise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list
from deploy.inputs import Preprocess, group_sources, prepare_inputs, validate
from tests.deploy.models import branchy_net, conv_net, save

EDGELOOP = Path(sys.executable).parent / "edgeloop"


@pytest.fixture(autouse=True)
def build_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))


@pytest.fixture
def container(tmp_path: Path) -> Path:
    return convert(save(conv_net(size=16), tmp_path / "m.onnx"), tmp_path / "c.onnx").path


def rgb_image(path: Path, height: int = 4, width: int = 6) -> np.ndarray:
    """A PNG with distinct pixel values; returns its HWC uint8 pixels."""
    pixels = (np.arange(height * width * 3).reshape(height, width, 3) * 3 % 256).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return pixels


def test_npy_files_round_trip_as_little_endian_raw(tmp_path: Path) -> None:
    arrays = [np.random.default_rng(i).standard_normal((1, 3, 2, 2)) for i in range(3)]  # float64 on disk
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"s{i}.npy", array)
    prepared = prepare_inputs([tmp_path / f"s{i}.npy" for i in range(3)], tmp_path / "raw")
    assert prepared.list_path.read_text().splitlines() == ["s0.raw", "s1.raw", "s2.raw"]
    for array, raw in zip(arrays, prepared.files, strict=True):
        np.testing.assert_array_equal(np.fromfile(raw, dtype="<f4"), array.astype(np.float32).ravel())


def test_image_scale_mean_std_and_both_layouts(tmp_path: Path) -> None:
    pixels = rgb_image(tmp_path / "img.png")
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
    want_hwc = (pixels.astype(np.float32) * 0.5 - np.array(mean, np.float32)) / np.array(std, np.float32)
    for layout, want in (("NCHW", want_hwc.transpose(2, 0, 1)), ("NHWC", want_hwc)):
        pre = Preprocess(mean=mean, std=std, scale=0.5, layout=layout)
        raw = prepare_inputs([tmp_path / "img.png"], tmp_path / layout, pre=pre).files[0]
        np.testing.assert_allclose(np.fromfile(raw, dtype="<f4"), want.ravel(), rtol=1e-6)


def test_container_gives_name_size_and_layout_and_the_list_validates(tmp_path: Path, container: Path) -> None:
    Image.new("RGB", (40, 30), (200, 100, 50)).save(tmp_path / "flat.jpg", quality=100)
    rgb_image(tmp_path / "small.png")
    out = tmp_path / "inputs"
    prepared = prepare_inputs([tmp_path], out, container=container)  # a folder: both images, sorted
    assert [p.name for p in prepared.files] == ["flat.raw", "small.raw"]
    assert prepared.list_path.read_text().splitlines() == ["image:=flat.raw", "image:=small.raw"]
    flat = np.fromfile(prepared.files[0], dtype="<f4").reshape(3, 16, 16)  # resized to the input's 16x16, NCHW
    for channel, value in enumerate((200, 100, 50)):
        assert abs(float(flat[channel].mean()) - value) < 2 and float(flat[channel].std()) < 2
    assert validate(prepared.list_path, container) == 2


def test_npy_of_the_wrong_size_names_the_file_and_writes_nothing(tmp_path: Path, container: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 16, 16), np.float32))  # fits (batch dim added)
    np.save(tmp_path / "b.npy", np.zeros((3, 15, 16), np.float32))
    with pytest.raises(EdgeloopError, match=r"b.npy: 720 values of shape \[3, 15, 16\] do not fit input 'image'"):
        prepare_inputs([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "out", container=container)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_unreadable_image_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(EdgeloopError, match=r"broken.png: not a readable image") as err:
        prepare_inputs([tmp_path / "broken.png"], tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_validate_reports_the_wrong_size_with_expected_and_actual_bytes(tmp_path: Path, container: Path) -> None:
    (tmp_path / "good.raw").write_bytes(np.zeros(3 * 16 * 16, "<f4").tobytes())
    (tmp_path / "short.raw").write_bytes(np.zeros(100, "<f4").tobytes())
    listing = tmp_path / "list.txt"
    listing.write_text("good.raw\nshort.raw\n")
    with pytest.raises(EdgeloopError) as err:
        validate(listing, container)
    assert str(err.value) == f"{tmp_path / 'short.raw'}: wrong size for input 'image': expected 3072 bytes, got 400"


@pytest.mark.parametrize("line, message", [
    ("missing.raw", r"list.txt line 1: .*missing.raw: input file not found"),
    ("imgae:=good.raw", r"list.txt line 1: unknown input tensor 'imgae'"),
])
def test_validate_missing_file_and_unknown_name(line: str, message: str, tmp_path: Path, container: Path) -> None:
    (tmp_path / "good.raw").write_bytes(np.zeros(3 * 16 * 16, "<f4").tobytes())
    (tmp_path / "list.txt").write_text(line + "\n")
    with pytest.raises(EdgeloopError, match=message):
        validate(tmp_path / "list.txt", container)


def test_multi_input_container_takes_sources_per_input(tmp_path: Path) -> None:
    two = convert(save(branchy_net(), tmp_path / "b.onnx"), tmp_path / "b_c.onnx").path
    for side, value in (("l", 1.0), ("r", 2.0)):
        (tmp_path / side).mkdir()
        for i in range(2):
            np.save(tmp_path / side / f"{i}.npy", np.full((1, 3, 8, 8), value + i, np.float32))
    with pytest.raises(EdgeloopError, match=r"has 2 inputs \(left, right\)"):
        prepare_inputs([tmp_path / "l"], tmp_path / "out", container=two)
    with pytest.raises(EdgeloopError, match=r"no sources for input 'right'"):
        prepare_inputs({"left": [tmp_path / "l"]}, tmp_path / "out", container=two)
    prepared = prepare_inputs(group_sources([f"left={tmp_path / 'l'}", f"right={tmp_path / 'r'}"]),
                              tmp_path / "out", container=two)
    assert read_input_list(prepared.list_path).entries == [{"left": "left/0.raw", "right": "right/0.raw"},
                                                           {"left": "left/1.raw", "right": "right/1.raw"}]
    assert np.fromfile(tmp_path / "out" / "right" / "1.raw", "<f4")[0] == 3.0
    (tmp_path / "r" / "1.npy").unlink()
    with pytest.raises(EdgeloopError, match="inputs have different numbers of files: left 2, right 1"):
        prepare_inputs({"left": [tmp_path / "l"], "right": [tmp_path / "r"]}, tmp_path / "out2", container=two)


def test_cli_prepares_then_checks(tmp_path: Path, container: Path) -> None:
    rgb_image(tmp_path / "x.png", 16, 16)
    run = {"capture_output": True, "text": True, "cwd": tmp_path}
    made = subprocess.run([str(EDGELOOP), "inputs", "--source", "x.png", "--output", "raw", "--container",
                           str(container), "--scale", "0.00392", "--mean", "0.5", "--std", "0.25"], **run)
    assert made.returncode == 0, made.stderr
    checked = subprocess.run([str(EDGELOOP), "inputs", "--check", "raw/input_list.txt", "--container",
                              str(container)], **run)
    assert checked.returncode == 0 and "1 inferences match" in checked.stdout
    (tmp_path / "raw" / "x.raw").write_bytes(b"\0" * 10)
    bad = subprocess.run([str(EDGELOOP), "inputs", "--check", "raw/input_list.txt", "--container",
                          str(container)], **run)
    assert bad.returncode == 2 and "expected 3072 bytes, got 10" in bad.stderr and "Traceback" not in bad.stderr
    for option, value, message in (("--scale", "x", "--scale 'x'"), ("--size", "8", "--size 8: expected HEIGHT,WIDTH"),
                                   ("--dtype", "float99", "unknown dtype 'float99'")):
        refused = subprocess.run([str(EDGELOOP), "inputs", "--source", "x.png", "--output", "raw2", option, value],
                                 **run)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "raw2").exists()


@pytest.mark.parametrize(("pre", "message"), [
    (Preprocess(dtype="object"), "unknown dtype 'object'"),
    (Preprocess(size=(0, 4)), r"--size 0,4: expected HEIGHT,WIDTH"),
    (Preprocess(layout="NHCW"), "unknown layout 'NHCW'"),
    (Preprocess(channels=1, mean=(0.5,) * 3), r"--mean has 3 values but the input has 1 channel \(give 1 value\)$"),
    (Preprocess(std=(0.2, 0.2)), r"--std has 2 values but the input has 3 channels \(give 1 value, or 3\)$"),
])
def test_bad_preprocessing_is_one_line_and_writes_nothing(pre: Preprocess, message: str, tmp_path: Path) -> None:
    rgb_image(tmp_path / "x.png")
    with pytest.raises(EdgeloopError, match=message):
        prepare_inputs([tmp_path / "x.png"], tmp_path / "out", pre=pre)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("pre", "message"), [
    (Preprocess(layout="XYZW"), "unknown layout 'XYZW'"),
    (Preprocess(std=(0.0,)), "--std 0.0: a std of 0 divides by zero"),
    (Preprocess(mean=(0.5,)), r"--mean applies to images only, and .*a\.npy is a \.npy array"),
    (Preprocess(scale=0.5, std=(2.0,)), r"--scale and --std apply to images only"),
])
def test_settings_a_container_or_an_array_would_hide_are_refused(pre: Preprocess, message: str, tmp_path: Path,
                                                                 container: Path) -> None:
    """A container's layout stands in for --layout, and a .npy array is written as it is: a bad or
    unused setting is still refused rather than silently dropped."""
    np.save(tmp_path / "a.npy", np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(EdgeloopError, match=message):
        prepare_inputs([tmp_path / "a.npy"], tmp_path / "out", container=container, pre=pre)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pre", [Preprocess(scale=1e38), Preprocess(std=(1e-45,))])
def test_settings_that_overflow_float32_are_one_line_without_a_numpy_warning(pre: Preprocess, tmp_path: Path,
                                                                            recwarn: pytest.WarningsRecorder) -> None:
    rgb_image(tmp_path / "x.png")
    with pytest.raises(EdgeloopError, match="make pixels beyond float32's range"):
        prepare_inputs([tmp_path / "x.png"], tmp_path / "out", pre=pre)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
