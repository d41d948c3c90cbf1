"""Input lists that cannot be right are one line that says what stands where a raw file should, with
long names shortened: a 100000-character line, /dev/zero, a folder, a space in a file name; a UTF-8
byte order mark is read as nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.container import TensorInfo
from deploy.errors import EdgeloopError
from deploy.inputlist import iter_feeds, parse_input_list_text, read_input_list, validate_input_list
from tests.deploy.models import conv_net
from tests.quantize.util import make_container

TENSOR = TensorInfo("x", (1, 4))
EDGELOOP = Path(sys.executable).parent / "edgeloop"


def _list(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "input_list.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    np.zeros(4, np.float32).tofile(tmp_path / "a.raw")
    return path


@pytest.mark.parametrize(("line", "words"), [
    ("/dev/zero", "/dev/zero: is a device or pipe, not a raw input file"),
    (".", "is a folder, not a raw input file"),
    ("missing.raw", "missing.raw: input file not found"),
    ("y" * 100_000 + ".raw", "yyy…" + "y" * 36 + ".raw: cannot read the input file (File name too long)"),
])
def test_what_stands_where_a_raw_file_should_is_said(tmp_path: Path, line: str, words: str) -> None:
    listed = read_input_list(_list(tmp_path, line + "\n"))
    for check in (lambda: validate_input_list(listed, [TENSOR], "l.txt"), lambda: next(iter_feeds(listed, [TENSOR]))):
        with pytest.raises(EdgeloopError) as info:
            check()
        assert words in info.value.message and len(str(info.value)) < 300


def test_a_byte_order_mark_is_read_as_nothing(tmp_path: Path) -> None:
    listed = read_input_list(_list(tmp_path, "\ufeffa.raw\n".encode()))
    assert listed.entries == [{"": "a.raw"}]
    validate_input_list(listed, [TENSOR])


def test_a_space_in_a_file_name_is_said_to_separate_items() -> None:
    with pytest.raises(EdgeloopError) as info:
        parse_input_list_text("my input.raw\n", "l.txt")
    assert info.value.message == "l.txt:1: two paths on one line ('my' and 'input.raw')"
    assert "a file name cannot hold one" in str(info.value)


def test_a_long_line_through_the_command_line_is_one_short_line(tmp_path: Path) -> None:
    container = make_container(conv_net(), tmp_path / "float.onnx")
    listed = _list(tmp_path, "z" * 100_000 + "\n")
    result = subprocess.run([str(EDGELOOP), "inputs", "--check", str(listed), "--container", str(container)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[:300]
    assert "File name too long" in result.stderr and len(result.stderr) < 400
