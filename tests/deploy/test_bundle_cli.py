"""`edgeloop bundle` and `edgeloop clean` from the command line: one-line errors, exit codes, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.deploy.test_bundle import make_container, make_inputs

REPO = Path(__file__).resolve().parents[2]


def _edgeloop(*args: str, cwd: Path, build: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGELOOP_BUILD": str(build), "EDGELOOP_HOME": str(cwd / "home")}  # clean --all: not ~
    env.pop("EDGELOOP_DEBUG", None)
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                           "import tasks; tasks.main()", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_bundle_then_clean(tmp_path: Path) -> None:
    container, inputs = make_container(tmp_path), make_inputs(tmp_path, lines=1)
    build = tmp_path / "build"
    ok = _edgeloop("bundle", "--container", str(container), "--device", "pixel4", "--runtime", "dsp",
                   "--input-list", str(inputs), "--option", "profiling_level=detailed", cwd=tmp_path, build=build)
    assert ok.returncode == 0, ok.stderr
    (bundle_dir,) = (build / "bundles").iterdir()
    assert f"bundle {bundle_dir.name}" in ok.stdout
    assert "--use_dsp --perf_profile high_performance --profiling_level detailed" in (bundle_dir / "run.sh").read_text()

    bad = _edgeloop("bundle", "--container", str(container), "--device", "pixel", "--runtime", "dsp",
                    "--input-list", str(inputs), cwd=tmp_path, build=build)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: profile 'pixel' has no dsp runtime (it has cpu, gpu, gpu_fp16)"

    (tmp_path / "reports").mkdir()
    (build / "inputs").mkdir()  # the docs' `inputs --output build/inputs`: the user's own files
    (build / "inputs" / "input_list.txt").write_text("x.raw\n")
    cleaned = _edgeloop("clean", "--all", cwd=tmp_path, build=build)
    assert cleaned.returncode == 0, cleaned.stderr
    assert sorted(p.name for p in build.iterdir()) == ["inputs"] and not (tmp_path / "reports").exists()
