"""Two `deploy --emulate` at once each get a device of their own: its own state folder (the second is a
scratch `pixel-2`, starting empty), its own lease, and the line that says it started names it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.harness.conftest import ROOT

EDGELOOP = str(Path(sys.executable).with_name("edgeloop"))


def test_two_emulated_deploys_at_once_get_a_device_each(adb_server, deploy_env, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(home),
           "EDGELOOP_LOCK_DIR": str(tmp_path / "locks")}
    procs = [subprocess.Popen([EDGELOOP, "deploy", "--emulate", "--runtime", "cpu", "--history", "off",
                               "--adb", f"127.0.0.1:{adb_server.port}", "--report-dir", str(tmp_path / f"r{i}")],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    started = [re.search(r"emulated pixel started as (\S+) \(device (\S+)\)", err) for _, err in outputs]
    assert all(started), outputs
    assert {m[2] for m in started} == {"pixel", "pixel-2"} and len({m[1] for m in started}) == 2
    assert not any("in use by" in err or "waiting" in err for _, err in outputs)
    assert [p.name for p in (home / "emulators").iterdir() if p.is_dir()] == ["pixel"]  # the scratch one is gone
