"""docs/farm.md's farm.yaml and matrix.yaml examples are valid input, so the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness.farm import load_matrix
from harness.inventory import load_inventory
from tests.farm.farm_helpers import ROOT


def test_yaml_examples_in_the_farm_docs_load(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "farm.md").read_text(), flags=re.S)
    checked = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        keys = set(yaml.safe_load(block))
        if "servers" in keys:
            checked.append(load_inventory(path))
        elif "profiles" in keys:
            checked.append(load_matrix(path))
    kinds = [type(c).__name__ for c in checked]
    assert kinds.count("Inventory") == 2 and kinds.count("Matrix") == 1
    inventory = checked[0]
    assert [s.server.address for s in inventory.servers][-1] == "farm-c.lab:5037"
    assert inventory.servers[-1].connect == ("10.1.0.7:5555",)
    assert inventory.devices["R5CT21ABCDE"].profile == "galaxy-s23"
