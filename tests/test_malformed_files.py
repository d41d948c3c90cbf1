"""Every YAML file edgeloop reads, fed malformed content (issue 14): each is one EdgeloopError that
names the file, never another exception; through the command line, one line and exit 2."""

from __future__ import annotations

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
from deploy.packs.schema import parse_pack
from deploy.profiles import load_profile_file
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
