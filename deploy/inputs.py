"""Model inputs as SNPE wants them: `.raw` files (little-endian, C order, no header) plus an input list.

`prepare_inputs` turns `.npy` arrays and PNG/JPEG images into raw files; images are resized,
scaled, normalised with mean/std and laid out NCHW or NHWC. Given a container, the input's
name, shape, layout and dtype come from it, and the written list is validated against it.
`validate` checks an existing list against a container: names, files, sizes, and values, which it
reads as the deploy's float reference will (NaN or inf is refused). No input written or accepted
holds NaN or inf: every figure computed from one would be NaN.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deploy.container import TensorInfo, load_container
from deploy.errors import EdgeloopError
from deploy.fsutil import shortened, writing
from deploy.inputlist import format_input_list, iter_feeds, read_input_list, refuse_nonfinite, validate_input_list

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
LAYOUTS = ("NCHW", "NHWC")
LIST_NAME = "input_list.txt"


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a tensor: x = (pixel * scale - mean) / std, per channel."""

    size: tuple[int, int] | None = None  # (height, width); None keeps the image's size
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1.0
    layout: str = "NCHW"
    channels: int = 3  # 1 reads images as grayscale
    dtype: str = "float32"


@dataclass
class PreparedInputs:
    list_path: Path
    files: list[Path]


def source_files(sources: Sequence[Path]) -> list[Path]:
    """Expand folders into their .npy and image files (sorted); keep files as given."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".npy"}))
        elif source.is_file():
            files.append(source)
        else:
            raise EdgeloopError(f"{source}: no such file or folder")
    if not files:
        raise EdgeloopError("no .npy or image files in " + ", ".join(map(str, sources)))
    return files


def load_image(path: Path, pre: Preprocess) -> np.ndarray:
    """One image as a batch-1 tensor in `pre.layout`."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if pre.channels == 1 else "RGB")
            if pre.size is not None:
                img = img.resize((pre.size[1], pre.size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgeloopError(f"{path}: not a readable image ({exc})") from None
    hwc = pixels.reshape(*pixels.shape[:2], pre.channels)
    for what, values in (("mean", pre.mean), ("std", pre.std)):
        if len(values) not in (1, pre.channels):
            channels = "1 channel" if pre.channels == 1 else f"{pre.channels} channels"
            raise EdgeloopError(f"--{what} has {len(values)} values but the input has {channels}",
                                "give 1 value" + ("" if pre.channels == 1 else f", or {pre.channels}"))
    with np.errstate(all="ignore"):  # an overflow is the user's values, said below rather than warned of
        hwc = (hwc * pre.scale - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    if not np.isfinite(hwc).all():
        raise EdgeloopError(f"{shortened(path)}: --scale {pre.scale:g}, --mean and --std make pixels beyond float32's "
                            "range", "give the usual values, e.g. --scale 0.00392 --mean 0.485 --std 0.229")
    tensor = hwc.transpose(2, 0, 1) if pre.layout == "NCHW" else hwc
    return tensor[np.newaxis].astype(pre.dtype)


def load_array(path: Path, dtype: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False).astype(dtype)
    except (ValueError, OSError) as exc:
        raise EdgeloopError(f"{path}: not a readable .npy array ({exc})") from None


def fit_to(array: np.ndarray, tensor: TensorInfo, path: Path) -> np.ndarray:
    """Reshape to the container's input shape (a missing batch dim is fine); sizes must agree."""
    if array.size != tensor.size:
        raise EdgeloopError(f"{path}: {array.size} values of shape {list(array.shape)} do not fit input "
                            f"'{tensor.name}' {list(tensor.shape)} ({tensor.size} values)",
                            "check --size and --layout, or the array's shape")
    return array.reshape(tensor.shape).astype(tensor.dtype)


def write_raw_set(arrays: Sequence[np.ndarray], stems: Sequence[str], out_dir: Path, *,
                  input_name: str | None = None, list_name: str = LIST_NAME) -> PreparedInputs:
    """Write `<stem>.raw` files and their input list (bare paths, or `input_name:=path`) into `out_dir`."""
    return write_raw_sets({input_name: (list(arrays), list(stems))}, Path(out_dir), list_name=list_name)


def write_raw_sets(groups: Mapping[str | None, tuple[list[np.ndarray], list[str]]], out_dir: Path, *,
                   list_name: str = LIST_NAME) -> PreparedInputs:
    """Write raw files for one or more inputs and one list line per inference, all or nothing.

    One input: `<stem>.raw` beside the list; several: `<input>/<stem>.raw`, one `name:=path` per
    input on each line. Paths in the list are relative to it (docs/spec.md §2). Files are staged in a
    temporary folder beside `out_dir` and moved in at the end, so a failure leaves no partial set.
    """
    counts = {name: len(arrays) for name, (arrays, _) in groups.items()}
    if len(set(counts.values())) > 1:
        raise EdgeloopError("inputs have different numbers of files: " +
                            ", ".join(f"{name} {n}" for name, n in counts.items()), "give one file per inference")
    for _, stems in groups.values():
        dup = next((s for i, s in enumerate(stems) if s in stems[:i]), None)
        if dup is not None:
            raise EdgeloopError(f"two sources would both write {dup}.raw", "rename one of them")
    nested = len(groups) > 1
    relative = {name: [f"{name}/{stem}.raw" if nested else f"{stem}.raw" for stem in stems]
                for name, (_, stems) in groups.items()}
    list_path = out_dir / list_name
    with writing(list_path):
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        with writing(list_path, staging):
            for name, (arrays, _) in groups.items():
                for array, rel in zip(arrays, relative[name], strict=True):
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    array.astype(array.dtype.newbyteorder("<"), copy=False).tofile(staging / rel)
            lines = [{name or "": relative[name][i] for name in groups} for i in range(next(iter(counts.values())))]
            (staging / list_name).write_text(format_input_list(lines))  # the staging folder is the atomic part
        files = [out_dir / rel for rels in relative.values() for rel in rels]
        with writing(list_path):
            for target in [*files, list_path]:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / target.relative_to(out_dir), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreparedInputs(out_dir / list_name, files)


def prepare_inputs(sources: Sequence[Path] | Mapping[str, Sequence[Path]], out_dir: Path, *,
                   container: Path | None = None, pre: Preprocess = Preprocess(),
                   input_name: str | None = None) -> PreparedInputs:
    """Convert .npy files and images into raw files and `out_dir/input_list.txt`.

    `sources` is a list of files/folders for one input (named `input_name`, or bare paths), or a
    mapping input name -> files/folders for several. With `container`, each input's shape (image
    size and channels), layout and dtype come from it, every input must be given, and the list is
    validated against it.
    """
    groups = dict(sources) if isinstance(sources, Mapping) else {input_name: list(sources)}
    _check_preprocess(pre)  # the user's settings, before a container's layout and dtype stand in for them
    tensors = _container_inputs(container, list(groups)) if container is not None else {}
    arrays: dict[str | None, tuple[list[np.ndarray], list[str]]] = {}
    for name, paths in groups.items():
        tensor = tensors.get(name)
        own = _preprocess_for(tensor, pre) if tensor is not None else pre
        _check_preprocess(own)
        files = source_files(paths)
        _refuse_normalising_arrays(files, pre)
        loaded = [load_array(p, own.dtype) if p.suffix.lower() == ".npy" else load_image(p, own) for p in files]
        if tensor is not None:
            loaded = [fit_to(a, tensor, p) for a, p in zip(loaded, files, strict=True)]
        loaded = [refuse_nonfinite(a, f"{p}: input '{tensor.name}'" if tensor is not None else str(p))
                  for a, p in zip(loaded, files, strict=True)]
        arrays[tensor.name if tensor is not None else name] = (loaded, [p.stem for p in files])
    prepared = write_raw_sets(arrays, Path(out_dir))
    if container is not None:
        validate(prepared.list_path, container)
    return prepared


def _container_inputs(container: Path, names: list[str | None]) -> dict[str | None, TensorInfo]:
    """The container input each group is for; a multi-input container needs every input named."""
    _, meta = load_container(container)
    if names == [None]:
        if len(meta.inputs) != 1:
            raise EdgeloopError(f"{container} has {len(meta.inputs)} inputs "
                                f"({', '.join(t.name for t in meta.inputs)})", "give sources as NAME=PATH per input")
        return {None: meta.inputs[0]}
    result = {name: meta.input(name) for name in names if name is not None}
    missing = [t.name for t in meta.inputs if t.name not in result]
    if missing:
        raise EdgeloopError(f"no sources for input '{missing[0]}' of {container}", "give NAME=PATH for every input")
    return result


def _preprocess_for(tensor: TensorInfo, pre: Preprocess) -> Preprocess:
    """Image size, channels and layout follow a 4-D NCHW/NHWC input of the container."""
    if len(tensor.shape) != 4 or tensor.layout not in LAYOUTS:
        return Preprocess(pre.size, pre.mean, pre.std, pre.scale, pre.layout, pre.channels, tensor.dtype)
    _, a, b, c = tensor.shape
    channels, size = (a, (b, c)) if tensor.layout == "NCHW" else (c, (a, b))
    return Preprocess(size, pre.mean, pre.std, pre.scale, tensor.layout, channels, tensor.dtype)


def validate(input_list: Path, container: Path) -> int:
    """Check every line of `input_list` against the container's inputs, names and sizes first (one
    precise line each), then every value, as the reference run of a deploy reads them; return the
    number of inferences."""
    _, meta = load_container(container)
    parsed = read_input_list(input_list)
    validate_input_list(parsed, meta.inputs, str(input_list))
    for _ in iter_feeds(parsed, meta.inputs, str(input_list)):
        pass
    return len(parsed.entries)


def _refuse_normalising_arrays(files: list[Path], pre: Preprocess) -> None:
    """--scale, --mean and --std describe pixels: a .npy array is written as it is, so asking to
    normalise one is refused rather than silently not done."""
    plain = Preprocess()
    given = [f"--{option}" for option in ("scale", "mean", "std") if getattr(pre, option) != getattr(plain, option)]
    arrays = [p for p in files if p.suffix.lower() == ".npy"]
    if given and arrays:
        verb = "apply" if len(given) > 1 else "applies"
        raise EdgeloopError(f"{' and '.join(given)} {verb} to images only, and {shortened(arrays[0])} is a .npy array "
                            "(written as it is)", "normalise the array before saving it, or leave out the option")


def _check_preprocess(pre: Preprocess) -> None:
    """Refuse settings that numpy or Pillow would only trip over with a traceback."""
    if pre.layout not in LAYOUTS:
        raise EdgeloopError(f"unknown layout '{pre.layout}'", f"choose {' or '.join(LAYOUTS)}")
    try:
        kind = np.dtype(pre.dtype).kind
    except TypeError:
        kind = ""
    if kind == "" or kind not in "biuf":
        raise EdgeloopError(f"unknown dtype '{pre.dtype}'", "give a numeric numpy dtype such as float32, uint8 or int8")
    for option, values in (("mean", pre.mean), ("std", pre.std), ("scale", (pre.scale,))):
        if not all(map(math.isfinite, values)):
            raise EdgeloopError(f"--{option} {','.join(map(str, values))}: every value must be a finite number")
    if 0 in pre.std:
        raise EdgeloopError(f"--std {','.join(map(str, pre.std))}: a std of 0 divides by zero",
                            "give the channel's standard deviation, 1 to leave it as it is")
    if pre.size is not None and (len(pre.size) != 2 or min(pre.size) < 1):
        raise EdgeloopError(f"--size {','.join(map(str, pre.size))}: expected HEIGHT,WIDTH (two positive integers)")


def parse_numbers(text: str, option: str, kind: type[int] | type[float] = float) -> tuple:
    """`1,2,3` from the command line as a tuple of `kind`, with an error naming the option."""
    try:
        return tuple(kind(v) for v in str(text).split(","))
    except ValueError:
        raise EdgeloopError(f"--{option} '{text}': expected comma-separated {kind.__name__}s") from None


def parse_number(text: str, option: str) -> float:
    """One float from the command line, with an error naming the option."""
    values = parse_numbers(text, option)
    if len(values) != 1:
        raise EdgeloopError(f"--{option} '{text}': expected one number")
    return values[0]


def group_sources(items: Sequence[str]) -> list[Path] | dict[str, list[Path]]:
    """Command-line sources: all plain paths (one input), or all `NAME=PATH` (several inputs)."""
    named = [item.partition("=") for item in items]
    is_named = [bool(sep and name and "/" not in name and not Path(item).exists())
                for item, (name, sep, _) in zip(items, named, strict=True)]
    if not any(is_named):
        return [Path(item) for item in items]
    if not all(is_named):
        raise EdgeloopError("mix of NAME=PATH and plain --source values", "use NAME=PATH for every source")
    groups: dict[str, list[Path]] = {}
    for name, _, path in named:
        groups.setdefault(name, []).append(Path(path))
    return groups
