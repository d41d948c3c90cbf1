"""Every YAML file edgeloop reads, fed malformed content (issue 14): each is one EdgeloopError that
names the file, never another exception; through the command line, one line and exit 2."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.config import load_config
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list, read_labels
from deploy.packs.schema import parse_pack
from deploy.profiles import load_profile_file
from deploy.quantize.aimet import read_encodings
from deploy.yamlnode import MAX_BYTES
from harness.farm import load_matrix
from harness.inventory import load_inventory

READERS: dict[str, Callable[[Path], Any]] = {
    "edgeloop.yaml": load_config, "profile.yaml": load_profile_file, "farm.yaml": load_inventory,
    "matrix.yaml": load_matrix, "pack.yaml": parse_pack,
}
MALFORMED: dict[str, bytes] = {
    "nested 5000 deep (flow)": b"[" * 5000 + b"]" * 5000,
    "nested 5000 deep (block)": "".join(f"{' ' * i}k:\n" for i in range(2000)).encode(),
    "not UTF-8": b"version: 1\nname: \xff\xfe\xfa\n",
    "a python tag": b"version: !!python/object/apply:os.system ['touch pwned']\n",
    "a key given twice": b"version: 1\nversion: 2\nservers: []\nservers: []\nprofiles: [pixel]\n",
    "larger than the limit": b"#" * (MAX_BYTES + 1),
    "empty": b"",
    "a scalar": b"42\n",
    "unterminated": b"models: {digits: [\n",
    "an alias inside itself": b"a: &a [*a]\n",
    "an alias inside itself, a level down": b"a: &a {b: [1, {c: *a}]}\n",
    "billion laughs": b"l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n".encode() for i in range(1, 24)),
    "aliases nested beyond the depth": b"l0: &l0 [x]\n" + b"".join(
        f"l{i}: &l{i} [[[[*l{i - 1}]]]]\n".encode() for i in range(1, 20)),
}
_rng = random.Random(14)
MALFORMED |= {f"random bytes {i}": _rng.randbytes(_rng.randint(1, 400)) for i in range(12)}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_one_error_naming_it(tmp_path: Path, reader: str, case: str) -> None:
    path = tmp_path / reader
    path.write_bytes(MALFORMED[case])
    cwd = Path.cwd()
    os.chdir(tmp_path)  # a python tag that ran would leave its file here
    try:
        with pytest.raises(EdgeloopError) as info:
            READERS[reader](path)
    finally:
        os.chdir(cwd)
    assert str(path) in info.value.message and "\n" not in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_a_malformed_deployment_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "edgeloop.yaml"
    example = (Path(__file__).resolve().parent.parent / "edgeloop.yaml").read_text()
    config.write_text(example.replace("version: 1", "version: !!python/object/apply:os.system ['touch pwned']"))
    edgeloop = Path(sys.executable).with_name("edgeloop")
    result = subprocess.run([str(edgeloop), "deploy", "--config", str(config), "--device", "pixel"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"{config}:3: version: cannot read this value" in result.stderr and not (tmp_path / "pwned").exists()


# ---- fuzz: seeded mutations of valid files, for every reader (issue 14, item 4) -------------------

_ROOT = Path(__file__).resolve().parent.parent
_NASTY = [b"\xff\xfe", b"\x00", b"!!python/object:os.system", b"[" * 300, b"{", b"}", b":", b"- ", b"\n  ",
          b"1e999", b"NaN", b"Infinity", b'"', b"&a *a", b"<<: *a", b"-1", b"\t", b"%", b":=", b"../../"]


def _mutants(valid: bytes, count: int, seed: int) -> list[bytes]:
    """Truncations, byte flips and nasty tokens inserted: what a damaged or hostile file looks like."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            kind = rng.randrange(3)
            if kind == 0:
                del data[at:]
            elif kind == 1 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            else:
                data[at:at] = rng.choice(_NASTY)
        out.append(bytes(data))
    return out


def _encodings_example() -> bytes:
    from deploy.quantize.aimet import export_encodings
    from deploy.quantize.encodings import tf_encoding
    return json.dumps(export_encodings({"relu1": tf_encoding(0.0, 6.0, 8)}, {"w": tf_encoding(-1.0, 1.0, 8)}),
                      indent=1).encode()


FUZZED: dict[str, tuple[Callable[[Path], Any], Callable[[], bytes]]] = {
    "edgeloop.yaml": (load_config, lambda: (_ROOT / "edgeloop.yaml").read_bytes()),
    "profile.yaml": (load_profile_file, lambda: (_ROOT / "deploy/device_profiles/pixel.yaml").read_bytes()),
    "pack.yaml": (parse_pack, lambda: (_ROOT / "deploy/packs/builtin/pack.yaml").read_bytes()),
    "farm.yaml": (load_inventory, lambda: b"servers:\n  - 127.0.0.1:5037\n  - {address: 10.0.0.2:5037, connect: "
                                          b"[10.0.0.9:5555]}\ndevices:\n  R5C:\n    labels: [lab]\n"),
    "matrix.yaml": (load_matrix, lambda: b"config: edgeloop.yaml\nprofiles: [pixel]\nruntimes: [cpu, dsp]\nruns: 3\n"),
    "encodings.json": (lambda p: read_encodings(p, {"w"}), _encodings_example),
    "input_list.txt": (read_input_list, lambda: b"#image\nimage:=a.raw\nimage:=b.raw\n"),
    "labels.txt": (read_labels, lambda: b"3 cat\n7\n\n1 dog\n"),
}


@pytest.mark.parametrize("kind", sorted(FUZZED))
def test_fuzzed_files_are_read_or_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    """Every mutant is either read or refused with one EdgeloopError line naming the file: nothing
    else escapes (no UnicodeDecodeError, RecursionError, KeyError, ...), and no tag runs."""
    reader, example = FUZZED[kind]
    (tmp_path / "edgeloop.yaml").write_bytes((_ROOT / "edgeloop.yaml").read_bytes())
    for name in ("examples",):  # the deployment file's relative paths resolve as in the project
        (tmp_path / name).symlink_to(_ROOT / name)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for i, data in enumerate(_mutants(example(), 60, seed=sum(map(ord, kind)))):
            path = tmp_path / f"{i}-{kind}"
            path.write_bytes(data)
            try:
                reader(path)
            except EdgeloopError as exc:
                assert str(path) in exc.message and "\n" not in str(exc), (data, str(exc))
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("args", "damaged"), [
    (["quantize", "--container", "{model}", "--input-list", "{list}", "--override-params", "{bad}",
      "--output", "out.onnx"], "encodings.json"),
    (["quantize", "--container", "{model}", "--input-list", "{bad}", "--output", "out.onnx"], "input_list.txt"),
])
def test_a_fuzzed_file_through_the_command_line_is_one_line_exit_2_and_no_artifact(tmp_path: Path, args: list[str],
                                                                                   damaged: str) -> None:
    from tests.deploy.models import conv_net
    from tests.quantize.util import make_container, make_input_list
    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    listed = make_input_list(model, tmp_path, 2)
    bad = tmp_path / damaged
    example = FUZZED[damaged][1]() if damaged == "encodings.json" else listed.read_bytes()
    bad.write_bytes(b"\xff" + example[: len(example) // 2] + b"\x00{")
    edgeloop = Path(sys.executable).with_name("edgeloop")
    argv = [a.format(model=container, list=listed, bad=bad) for a in args]
    result = subprocess.run([str(edgeloop), *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "EDGELOOP_BUILD": str(tmp_path / "build")})
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr
    assert not list(tmp_path.glob("out.onnx*")) and not (tmp_path / "build" / "quantized").exists()


def test_aliases_are_refused_on_the_line_at_fault_and_small_ones_still_read(tmp_path: Path) -> None:
    """A recursive alias names the line of the collection it is in; an exponential one, the first value
    that grows beyond the budget; an alias of a list used a few times is as YAML reads it."""
    from deploy.yamlnode import load_yaml

    path = tmp_path / "f.yaml"
    path.write_bytes(b"ok: 1\na: &a\n  - [*a]\n")
    with pytest.raises(EdgeloopError, match=rf"^{path}:2: this value holds an alias of itself"):
        load_yaml(path, "file")
    path.write_bytes(MALFORMED["billion laughs"])
    with pytest.raises(EdgeloopError, match=rf"^{path}:5: the file grows too large through its aliases"):
        load_yaml(path, "file")
    path.write_bytes(b"d: &d [1, 2, 3]\nx: [*d, *d]\ny: {<<: {k: *d}}\n")
    assert load_yaml(path, "file") == {"d": [1, 2, 3], "x": [[1, 2, 3], [1, 2, 3]], "y": {"k": [1, 2, 3]}}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_byte_order_mark_is_read_as_nothing(tmp_path: Path, reader: str) -> None:
    """Windows editors start UTF-8 files with one: the file reads as without it (here to the same error)."""
    path = tmp_path / reader
    path.write_bytes(b"42\n")
    with pytest.raises(EdgeloopError) as plain:
        READERS[reader](path)
    path.write_bytes(b"\xef\xbb\xbf42\n")
    with pytest.raises(EdgeloopError) as marked:
        READERS[reader](path)
    assert str(marked.value) == str(plain.value)


def test_an_encodings_file_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """JSON's parser refuses the mark ("Unexpected UTF-8 BOM"): read_text drops it for every reader."""
    (tmp_path / "plain.json").write_bytes(_encodings_example())
    (tmp_path / "marked.json").write_bytes(b"\xef\xbb\xbf" + _encodings_example())
    assert read_encodings(tmp_path / "marked.json", {"w"}) == read_encodings(tmp_path / "plain.json", {"w"})
