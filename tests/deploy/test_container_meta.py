"""A container whose `edgeloop` metadata was damaged (by hand, or by another tool) is refused where it
is loaded (deploy.container.read_meta), in one line naming the file and what is wrong: no later stage
(info, quantize, bundle) meets it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from deploy.container import META_KEY, load_container
from deploy.errors import EdgeloopError
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list

EDGELOOP = Path(sys.executable).parent / "edgeloop"


def _damaged(source: Path, dest: Path, change: object) -> Path:
    """A copy of container `source` whose metadata is `change(meta)` (a dict to edit) or the text given."""
    model = onnx.load(str(source))
    prop = next(p for p in model.metadata_props if p.key == META_KEY)
    if callable(change):
        meta = json.loads(prop.value)
        change(meta)
        prop.value = json.dumps(meta)
    else:
        prop.value = str(change)
    onnx.save(model, str(dest))
    return dest


def _set(path: str, value: object):
    def change(meta: dict) -> None:
        *parents, last = path.split("/")
        target = meta
        for step in parents:
            target = target[int(step) if step.isdigit() else step]
        target[int(last) if last.isdigit() else last] = value
    return change


CASES = {
    "not JSON": ("{kind: float", "is not valid JSON"),
    "a list": ("[1, 2]", "must be a mapping, got a list"),
    "inputs a string": (_set("inputs", "x"), "inputs: must be a list, got 'x'"),
    "an unknown dtype": (_set("inputs/0/dtype", "float33"), "inputs[0].dtype: unknown value 'float33'"),
    "a negative dim": (_set("inputs/0/shape/1", -256), "inputs[0].shape[1]: must be at least 1, got -256"),
    "a dim beyond int32": (_set("outputs/0/shape/0", 2**63 - 1), "outputs[0].shape[0]: must be at most 2147483647"),
    "too many bytes": (_set("inputs/0/shape", [1, 65536, 65536]), "inputs[0].shape: a tensor of shape"),
    "a name missing": (lambda meta: meta["outputs"][0].pop("name"), "outputs[0]: missing required key 'name'"),
    "an unknown kind": (_set("kind", "half"), "kind: unknown value 'half'"),
}


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("meta")
    make_input_list(conv_net(), folder, 1)
    return make_container(conv_net(), folder / "float.onnx")


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_metadata_is_one_error_naming_the_container(container: Path, tmp_path: Path, case: str) -> None:
    change, words = CASES[case]
    path = _damaged(container, tmp_path / "c.onnx", change)
    with pytest.raises(EdgeloopError) as info:
        load_container(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not an edgeloop container (its 'edgeloop' metadata ")
    assert words in message and "convert the model again" in message and "\n" not in message


@pytest.mark.parametrize("task", [
    ["info", "--container", "{c}"],
    ["quantize", "--container", "{c}", "--input-list", "input_list.txt", "--output", "{out}"],
    ["bundle", "--container", "{c}", "--device", "pixel", "--runtime", "cpu", "--input-list", "input_list.txt"],
])
def test_every_task_reading_a_damaged_container_says_so_in_one_line(container: Path, tmp_path: Path,
                                                                   task: list[str]) -> None:
    path = _damaged(container, container.with_name("damaged.onnx"), _set("inputs/0/shape/1", -256))
    argv = [a.format(c=path, out=tmp_path / "q.onnx") for a in task]
    result = subprocess.run([str(EDGELOOP), *argv], capture_output=True, text=True, cwd=container.parent,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EDGELOOP_BUILD": str(tmp_path / "b")},
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {path}: not an edgeloop container") and result.stderr.count("\n") == 1
    assert not (tmp_path / "q.onnx").exists()
