"""Attacks on the host through the emulated device (issue 12), each refused: setuid files, other local
users reading a device's state, a container that points net-run at a host file, a profile name that
is a path. Through the real adb server where a client would come that way."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.errors import EdgeloopError
from deploy.profiles import load_profile, load_profile_file
from emulator.lifecycle import emulators_home, start_device
from emulator.sandbox import Sandbox
from tests.emulator.test_netrun import BUNDLE, Device, feeds_for, install, meta_for, output, put, run

TMP = "/data/local/tmp"


def _host(running, device_path: str) -> Path:
    return running.sandbox_root / device_path.lstrip("/")


def test_setuid_setgid_and_sticky_bits_never_reach_a_host_file(adb_server, start_emulated) -> None:
    """A local user pushed /bin/bash with mode 04755 and ran the sandbox's host file as root."""
    running = start_emulated("pixel")
    device = adb_server.client.device(running.serial)
    device.sync.push(io.BytesIO(b"#!/bin/sh\nid\n"), f"{TMP}/pushed", mode=0o6755)
    device.shell2(f"echo x > {TMP}/chmodded && chmod 7777 {TMP}/chmodded && chmod u+s,g+s {TMP}/pushed")
    for name in ("pushed", "chmodded"):
        mode = _host(running, f"{TMP}/{name}").stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), f"{name}: {oct(mode)}"
    assert device.shell2(f"stat -c %a {TMP}/pushed {TMP}/chmodded").output.split() == ["755", "777"]
    device.shell2(f"mkdir {TMP}/dir && chmod 1777 {TMP}/dir")
    assert not _host(running, f"{TMP}/dir").stat().st_mode & stat.S_ISVTX


@pytest.mark.parametrize("target", ["/etc/hostname", "../../../../../../../../etc/hostname", "/",
                                    str(Path(__file__).resolve())])
def test_a_symbolic_link_never_leads_out_of_the_device(tmp_path: Path, target: str) -> None:
    """`ln -s` with any target: followed inside the device only (`/` is the device's, `..` stops at
    it), and the host link itself points at a name without a `/` in its folder, so whatever on the
    host follows it (a race, a tool walking the sandbox) stays there too."""
    from tests.emulator.test_shell_support import ShellRunner

    sh = ShellRunner(tmp_path)
    assert sh(f"ln -s {target} {TMP}/l").status == 0
    read = sh(f"cat {TMP}/l/ 2>&1; cat {TMP}/l 2>&1; ls {TMP}/l/data/local")
    assert "tmp" in read.out if target == "/" else "No such file or directory" in read.out
    host_link = sh.fs.root / TMP.lstrip("/") / "l"
    assert "/" not in os.readlink(host_link)
    assert os.path.dirname(os.path.realpath(host_link)) == str(host_link.parent.resolve())
    sh.close()


def test_edgeloop_home_and_every_device_state_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    device = start_device("pixel", home=home, exit_with_parent=True)
    try:
        for folder in (home, emulators_home(home), device.state):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        # the device works from its own state folder, never from the checkout (relative host paths)
        assert Path(os.readlink(f"/proc/{device.pid}/cwd")) == device.state.resolve()
    finally:
        device.stop()


def _external_model(location: str, data: bytes) -> onnx.ModelProto:
    """y = x + w, with w stored as ONNX external data at `location`."""
    weight = numpy_helper.from_array(np.zeros(len(data) // 4, dtype=np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(data) // 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(data) // 4])],
                              initializer=[weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("location", [".git/config", "../../../../../../../etc/hostname", "/etc/hostname",
                                      "../../../../../../../../../{checkout}/pyproject.toml"])
def test_external_data_pointing_at_a_host_file_is_never_read(tmp_path: Path, location: str) -> None:
    """A container whose external data `location` named a host file got that file back in Result_0."""
    secret = b"HOST-SECRET-0123"  # 16 bytes: 4 floats
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(secret)
    location = location.format(checkout=Path.cwd().as_posix().lstrip("/"))
    fs = Sandbox(tmp_path / "device", 1 << 26)
    model = _external_model(location, secret)
    install(fs, model, meta_for(model), feeds_for(model, 1))
    cwd = Path.cwd()
    os.chdir(tmp_path)  # as if the device ran where the host file is
    try:
        result = run(fs, Device(load_profile("pixel")))
    finally:
        os.chdir(cwd)
    assert result.rc != 0 and "external data of tensor 'w'" in result.stderr
    assert "No such file or directory" in result.stderr or "Permission denied" in result.stderr
    assert not fs.exists(f"{BUNDLE}/out/Result_0/y.raw")


def test_external_data_inside_the_sandbox_is_read_from_the_containers_folder(tmp_path: Path) -> None:
    weights = np.arange(4, dtype=np.float32)
    fs = Sandbox(tmp_path / "device", 1 << 26)
    model = _external_model("weights.bin", weights.tobytes())
    feeds = feeds_for(model, 1)
    install(fs, model, meta_for(model), feeds)
    put(fs, f"{BUNDLE}/model/weights.bin", weights.tobytes())
    result = run(fs, Device(load_profile("pixel")))
    assert result.rc == 0, result.stderr
    got = output(fs, 0, meta_for(model).outputs[0])
    np.testing.assert_allclose(got, feeds[0]["x"] + weights)


def test_a_profile_name_that_is_a_path_is_refused(tmp_path: Path) -> None:
    """`name: ../../x` put a device's state outside EDGELOOP_HOME."""
    text = (Path(load_profile("pixel").path).read_text()).replace("name: pixel", "name: ../../escaped")
    profile = tmp_path / "evil.yaml"
    profile.write_text(text)
    refused = r"evil.yaml:\d+: name: '\.\./\.\./escaped' is not of the expected form"
    with pytest.raises(EdgeloopError, match=refused) as info:
        load_profile_file(profile)
    assert "letters, digits" in info.value.hint
    with pytest.raises(EdgeloopError, match="is not of the expected form"):
        start_device(str(profile), home=tmp_path / "home", exit_with_parent=True)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "home" / "escaped").exists()
    assert subprocess.run(["find", str(tmp_path), "-name", "escaped"], capture_output=True, text=True).stdout == ""
