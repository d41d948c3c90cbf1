"""Top-1 accuracy against labels: a label that is no class of the output (< 0, or >= the number of
classes) is one clear error naming the labels file, the line, the value and the class count,
never a silently meaningless accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploy.errors import EdgeloopError
from deploy.inputlist import Labels, read_labels
from harness.compare import measure

CLASSES = 10


def _outputs(count: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).standard_normal((1, CLASSES)).astype(np.float32) for i in range(count)]


def _labels(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "line", "value"), [
    ("3\n7\n\n10\n", 4, 10),  # the blank line counts: line 4 of the file
    ("-1\n0\n9\n", 1, -1),
    ("0\n9\n12  # a comment after the class\n", 3, 12),
])
def test_a_label_out_of_range_names_file_line_value_and_class_count(text: str, line: int, value: int,
                                                                    tmp_path: Path) -> None:
    path = _labels(tmp_path, text)
    outputs = _outputs(3)
    with pytest.raises(EdgeloopError) as err:
        measure(outputs, outputs, read_labels(path))
    assert err.value.message == (f"{path} line {line}: class {value} is out of range: the model's output has "
                                 f"{CLASSES} classes (0 to {CLASSES - 1})")
    assert "\n" not in str(err.value) and "0-based" in (err.value.hint or "")


def test_plain_labels_are_checked_too_by_their_position() -> None:
    """What callers without a labels file pass (a list of ints) is held to the same range."""
    outputs = _outputs(3)
    with pytest.raises(EdgeloopError, match=r"^label 2 of 3: class 10 is out of range: the model's output has 10 "):
        measure(outputs, outputs, [1, 10, 2])


def test_labels_at_both_ends_of_the_range_give_the_accuracy(tmp_path: Path) -> None:
    reference = [np.eye(CLASSES, dtype=np.float32)[[c]] for c in (0, 9, 4)]
    device = [reference[0], reference[1], np.eye(CLASSES, dtype=np.float32)[[5]]]
    from_file = measure(reference, device, read_labels(_labels(tmp_path, "0\n9\n4\n")))
    from_list = measure(reference, device, [0, 9, 4])
    assert from_file.top1_accuracy == from_list.top1_accuracy == pytest.approx(2 / 3)
    assert from_file.reference_top1_accuracy == 1.0


def test_labels_of_an_output_that_is_no_classifier_are_not_judged() -> None:
    feature_map = [np.ones((1, 3, 4, 4), np.float32)]
    assert measure(feature_map, feature_map, [42]).top1_accuracy is None


def test_read_labels_keeps_the_file_lines(tmp_path: Path) -> None:
    labels = read_labels(_labels(tmp_path, "\n3\n  \n7 cat\n"))
    assert labels == Labels(values=(3, 7), lines=(2, 4), source=str(tmp_path / "labels.txt"))


@pytest.mark.parametrize(("text", "message"), [
    ("3\nseven\n", r"labels\.txt line 2: 'seven' is not an integer class"),
    ("3\n2.5\n", r"labels\.txt line 2: '2\.5' is not an integer class"),
])
def test_read_labels_refuses_what_is_not_an_integer(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError, match=message):
        read_labels(_labels(tmp_path, text))


def test_read_labels_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError, match=r"absent\.txt: cannot read labels file \("):
        read_labels(tmp_path / "absent.txt")
