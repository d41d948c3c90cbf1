"""SNPE `input_list.txt`: one inference per line, `name:=path` items or a bare path (docs/spec.md §2);
and the labels file beside it (one integer class per inference).

On the host, relative paths are resolved against the list file's folder; on a device, against
the working folder of net-run (the bundle root), which is how bundles lay them out.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from deploy.container import TensorInfo
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_text, shortened
from deploy.yamlnode import read_text

MAX_LIST_BYTES = 64 << 20  # an input list of a million inferences stays under this


@dataclass
class InputList:
    entries: list[dict[str, str]]  # one dict per inference: input name (or "" for a bare path) -> path
    output_layers: list[str] = field(default_factory=list)  # from a leading "#" line
    output_tensors: list[str] = field(default_factory=list)  # from a leading "%" line
    base: Path = Path(".")

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base / p


def parse_input_list_text(text: str, source: str = "<input list>", base: Path = Path(".")) -> InputList:
    """SNPE's input list: one inference a line, its items separated by spaces (bare paths, or name:=path)."""
    result = InputList(entries=[], base=base)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not result.entries and line[0] in "#%":
            names = line[1:].split()
            (result.output_layers if line[0] == "#" else result.output_tensors).extend(names)
            continue
        entry: dict[str, str] = {}
        for item in line.split():
            name, sep, path = item.partition(":=")
            if not sep:
                name, path = "", item
            if name in entry and not name:
                raise EdgeloopError(f"{source}:{lineno}: two paths on one line ('{shortened(entry[name])}' and "
                                    f"'{shortened(path)}')", "items are separated by spaces, so a file name "
                                    "cannot hold one: rename the file; several inputs take name:=path items")
            if name in entry:
                raise EdgeloopError(f"{source}:{lineno}: input '{shortened(name)}' given twice on one line")
            if not path:
                raise EdgeloopError(f"{source}:{lineno}: empty path for input '{shortened(name)}'")
            entry[name] = path
        if "" in entry and len(entry) > 1:
            raise EdgeloopError(f"{source}:{lineno}: mix of bare paths and name:=path items",
                                "use name:=path for every input of a multi-input model")
        result.entries.append(entry)
    if not result.entries:
        raise EdgeloopError(f"{source}: the input list has no inference lines")
    return result


def read_input_list(path: str | os.PathLike[str]) -> InputList:
    path = Path(path)
    return parse_input_list_text(read_text(path, "input list", MAX_LIST_BYTES), str(path), path.parent)


def bind_entry(entry: dict[str, str], inputs: list[TensorInfo], where: str) -> dict[str, str]:
    """Map one line's items to the model's input names, with a precise error when they do not fit."""
    if "" in entry:
        if len(inputs) != 1:
            raise EdgeloopError(f"{where}: a bare path needs a single-input model; this one has "
                                f"{len(inputs)} inputs ({', '.join(t.name for t in inputs)})",
                                "write name:=path for each input")
        return {inputs[0].name: entry[""]}
    names = {t.name for t in inputs}
    unknown = [n for n in entry if n not in names]
    if unknown:
        raise EdgeloopError(f"{where}: unknown input tensor '{shortened(unknown[0])}'",
                            f"the model's inputs are: {', '.join(sorted(names))}")
    missing = [t.name for t in inputs if t.name not in entry]
    if missing:
        raise EdgeloopError(f"{where}: no file for input '{missing[0]}'")
    return entry


def raw_size(path: Path, where: str = "") -> int:
    """The size of a raw input file, or one line saying what stands there instead: nothing, a folder, a
    device such as /dev/zero (endless), a name too long for the system; the name shortened."""
    lead = f"{where}: " if where else ""
    try:
        st = path.stat()
    except OSError as exc:
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        raise EdgeloopError(f"{lead}{shortened(path)}: " + ("input file not found" if missing else
                            f"cannot read the input file ({exc.strerror})"), "check the paths in the input list"
                            ) from None
    if stat.S_ISDIR(st.st_mode):
        raise EdgeloopError(f"{lead}{shortened(path)}: is a folder, not a raw input file",
                            "check the paths in the input list")
    if not stat.S_ISREG(st.st_mode):
        raise EdgeloopError(f"{lead}{shortened(path)}: is a device or pipe, not a raw input file",
                            "give a file written by `edgeloop inputs`")
    return st.st_size


def load_raw(path: Path, tensor: TensorInfo) -> np.ndarray:
    """Read one raw file (little-endian, C order, no header) and check its size first."""
    actual = raw_size(path)
    if actual != tensor.nbytes:
        raise EdgeloopError(
            f"{shortened(path)}: wrong size for input '{tensor.name}': expected {tensor.nbytes} bytes "
            f"({tensor.dtype} {list(tensor.shape)}), got {actual}")
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    return np.fromfile(path, dtype=dtype).reshape(tensor.shape).astype(tensor.dtype, copy=False)


def refuse_nonfinite(array: np.ndarray, what: str) -> np.ndarray:
    """`array` unless it holds NaN or inf: every figure computed from such an input (calibration
    ranges, the reference, SQNR, cosine) would come out NaN, so it is refused naming `what` (the
    file and input) rather than measured."""
    if array.dtype.kind != "f":
        return array
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise EdgeloopError(f"{what} holds {bad.size} NaN or inf value{'s' if bad.size > 1 else ''} "
                            f"(the first, {array.flat[bad[0]]}, at flat index {bad[0]})",
                            "inputs must be finite: fix what wrote the file, e.g. a std of 0 or an unfilled "
                            "buffer; a mask takes a large negative number such as -1e9, not -inf")
    return array


def iter_feeds(input_list: InputList, inputs: list[TensorInfo], source: str = "<input list>"):
    """Yield one feed dict (name -> array) per inference, loading lazily to bound memory; an input
    holding NaN or inf is refused (refuse_nonfinite) as it is read."""
    by_name = {t.name: t for t in inputs}
    for i, entry in enumerate(input_list.entries, 1):
        where = f"{source} line {i}"
        paths = {name: input_list.resolve(path) for name, path in bind_entry(entry, inputs, where).items()}
        yield {name: refuse_nonfinite(load_raw(path, by_name[name]), f"{where}: {path}: input '{name}'")
               for name, path in paths.items()}


def validate_input_list(input_list: InputList, inputs: list[TensorInfo], source: str = "<input list>") -> None:
    """Check names and sizes of every file without reading them."""
    by_name = {t.name: t for t in inputs}
    for i, entry in enumerate(input_list.entries, 1):
        for name, path in bind_entry(entry, inputs, f"{source} line {i}").items():
            resolved = input_list.resolve(path)
            actual = raw_size(resolved, f"{source} line {i}")
            expected = by_name[name].nbytes
            if actual != expected:
                raise EdgeloopError(f"{shortened(resolved)}: wrong size for input '{name}': expected {expected} "
                                    f"bytes, got {actual}")


LABELS_HINT = "write one integer class per line of the input list"


@dataclass(frozen=True)
class Labels:
    """The true class of every inference, with the line of the labels file each stands on (`source`
    None: labels given in code, their lines being their positions), so a bad one is named where it
    can be fixed."""

    values: tuple[int, ...]
    lines: tuple[int, ...]
    source: str | None = None

    @classmethod
    def given(cls, values: Sequence[int]) -> Labels:
        return cls(tuple(int(v) for v in values), tuple(range(1, len(values) + 1)))

    def check_classes(self, classes: int) -> None:
        """Every label is a class index of an output with `classes` classes: one outside 0..classes-1
        would only ever count as a miss, and top-1 accuracy would mean nothing."""
        for value, line in zip(self.values, self.lines, strict=True):
            if not 0 <= value < classes:
                where = f"{self.source} line {line}" if self.source else f"label {line} of {len(self.values)}"
                raise EdgeloopError(f"{where}: class {value} is out of range: the model's output has {classes} "
                                    f"classes (0 to {classes - 1})",
                                    "labels are 0-based class indices of the model's output, one per line of "
                                    "the input list")


def read_labels(path: str | os.PathLike[str]) -> Labels:
    """A labels file: the first word of every non-blank line is an integer class (the rest may be a
    comment, such as the class name)."""
    path = Path(path)
    text = read_text(path, "labels file", MAX_LIST_BYTES)
    values, lines = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(int(line.split()[0]))
        except ValueError:
            raise EdgeloopError(f"{path} line {number}: '{shortened(line.strip())}' is not an integer class",
                                LABELS_HINT) from None
        lines.append(number)
    return Labels(tuple(values), tuple(lines), str(path))


def format_input_list(entries: list[dict[str, str]], output_tensors: list[str] | None = None) -> str:
    lines = [f"%{' '.join(output_tensors)}"] if output_tensors else []
    for entry in entries:
        lines.append(" ".join(path if not name else f"{name}:={path}" for name, path in entry.items()))
    return "\n".join(lines) + "\n"


def write_input_list(path: str | os.PathLike[str], entries: list[dict[str, str]],
                     output_tensors: list[str] | None = None) -> None:
    atomic_write_text(path, format_input_list(entries, output_tensors))


def result_path(output_dir: PurePosixPath, index: int, tensor_name: str) -> PurePosixPath:
    """Where net-run writes an output: Result_<i>/<tensor>.raw, '/' in a name makes sub-folders."""
    parts = [p for p in tensor_name.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise EdgeloopError(f"output tensor name '{tensor_name}' cannot be a file name")
    return output_dir.joinpath(f"Result_{index}", *parts[:-1], parts[-1] + ".raw")
