"""The data files inside the packages (op tables, packs, templates) must ship in a wheel: pyproject's
package-data globs have to cover every one of them, or a non-editable install breaks at run time."""

import fnmatch
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_data_globs_cover_every_data_file_in_deploy() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = [pattern for patterns in config.values() for pattern in patterns]
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    data = [path for path in tracked if not path.endswith(".py")]
    assert any(path.startswith("deploy/packs/builtin/") for path in data)
    assert any(path.startswith("deploy/opsupport/") for path in data)
    unshipped = [path for path in data if not any(fnmatch.fnmatch(Path(path).name, g) for g in globs)]
    assert unshipped == []
