"""What a new user meets first: misspelt names get a did-you-mean, `emulator.start --connect` reaches
the adb server a plain `adb` command talks to, and tables stay readable in a CI log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config import find_config, load_config
from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from emulator.device import Faults
from emulator.lifecycle import list_devices
from harness.pipeline import deploy, plan
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG, ROOT


def test_misspelt_profile_runtime_model_and_fault_name_the_one_meant() -> None:
    with pytest.raises(EdgeloopError, match=r"unknown device profile 'pixle' \(did you mean 'pixel'\? known: .*pixel4"):
        load_profile("pixle")
    config, profile = load_config(CONFIG), load_profile("pixel")
    with pytest.raises(EdgeloopError, match=r"unknown runtime 'dps' \(did you mean 'dsp'\? known: aip, cpu, dsp,"):
        plan(config, profile, runtimes=["dps"])
    with pytest.raises(EdgeloopError, match=r"no model named 'digit' \(did you mean 'digits'\? known: digits\)$"):
        plan(config, profile, models=["digit"])
    with pytest.raises(EdgeloopError, match=r"unknown fault 'throtle_bps' \(did you mean 'throttle_bps'\?"):
        Faults.from_mapping({"throtle_bps": 5}, "--fault")


def test_emulator_start_connect_uses_the_adb_server_of_android_adb_server_port(adb_server, tmp_path: Path) -> None:
    """adb itself talks to $ANDROID_ADB_SERVER_PORT: a device connected elsewhere (5037) would be
    missing from the `adb -s SERIAL shell ...` the README shows next."""
    env = {**adb_server.env, "EDGELOOP_HOME": str(tmp_path)}
    started = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "emulator.start", "--profile", "pixel4",
                              "--connect"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    devices = list_devices(tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        serial = started.stdout.strip()
        assert [d.serial for d in devices] == [serial]
        wait_until(lambda: serial in {d.serial for d in adb_server.client.device_list()}, f"{serial} on the server")
    finally:
        for device in devices:
            adb_server.client.disconnect(device.serial)
            device.stop()


def test_tables_piped_into_a_log_keep_their_cells_whole(tmp_path: Path) -> None:
    """A CI log is no terminal: rich alone then wraps at 80 columns, cutting layer names (and serials) in pieces."""
    container = tmp_path / "digits.onnx"
    convert(ROOT / "examples/digits/digits_cnn.onnx", container, cache=False)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    shown = subprocess.run([str(Path(sys.executable).with_name("edgeloop")), "info", "--container", str(container)],
                           env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if "/features/features.6/MaxPool" in line]
    assert len(rows) == 1 and "1x16x4x4" in rows[0], shown.stdout


EDGELOOP = str(Path(sys.executable).with_name("edgeloop"))


@pytest.mark.parametrize(("argv", "line"), [
    (["deploy", "--devise", "pixel"], "error: deploy: unknown option --devise (did you mean '--device'? nearest of "),
    (["quantize.debug", "--target-snr", "40"], "error: quantize.debug: unknown option --target-snr (did you mean "
                                               "'--target-sqnr'?"),
    (["deplyo"], "error: unknown task 'deplyo' (did you mean 'deploy'?"),
    (["deploy", "--runs"], "error: deploy: --runs needs a value (see `edgeloop deploy --help`)"),
    (["deploy", "--emulate", "extra"], "error: deploy: unexpected argument 'extra' (see `edgeloop deploy --help`)"),
])
def test_a_command_line_typo_is_bad_input_in_one_line(argv: list[str], line: str) -> None:
    """Exit 2 like every other bad input; invoke's own 1 would read as a failed check in CI."""
    result = subprocess.run([EDGELOOP, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    [said] = result.stderr.splitlines()
    assert said.startswith(line), said


def test_output_into_a_reader_that_left_ends_without_a_traceback() -> None:
    """`edgeloop --list | head -1`: the pipe's reader is gone before edgeloop writes (here: from the start)."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([EDGELOOP, "--list"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert result.returncode == 141 and result.stderr == "", result.stderr


def test_a_bad_adb_port_variable_is_one_line() -> None:
    """adbutils would fail with a ValueError while being imported."""
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": "abc"}
    result = subprocess.run([EDGELOOP, "deploy", "--device", "pixel", "--emulate"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: $ANDROID_ADB_SERVER_PORT must be a port number (1-65535), got 'abc' (unset it, or set it to the port "
        "of your adb server)"]


def test_a_deploy_in_a_log_has_no_progress_residue(adb_server, tmp_path: Path) -> None:
    """Piped, the progress bars are off: rich's transient bars otherwise leave an empty line in the log."""
    env = {**adb_server.env, "EDGELOOP_BUILD": str(tmp_path / "build"), "EDGELOOP_HOME": str(tmp_path / "home")}
    result = subprocess.run([EDGELOOP, "deploy", "--device", "galaxy-s23", "--config", str(CONFIG), "--runtime", "cpu",
                             "--report-dir", str(tmp_path / "reports")], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    [said] = result.stderr.splitlines()
    assert said.startswith("error: no device matches profile 'galaxy-s23'"), result.stderr


def test_a_project_folder_given_as_config_names_the_file_to_pass(tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError, match=rf"^{tmp_path}: a folder, not a deployment file "
                                            rf"\(pass --config {tmp_path}/edgeloop.yaml\)$"):
        find_config(tmp_path)


def test_convert_refuses_to_write_over_its_own_source(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes((ROOT / "examples/digits/digits_cnn.onnx").read_bytes())
    before = model.read_bytes()
    (tmp_path / "link.onnx").symlink_to(model)
    for output in (tmp_path / "." / "m.onnx", tmp_path / "link.onnx"):
        with pytest.raises(EdgeloopError, match=r"--output .* is the input file itself \(write the result to another"):
            convert(model, output)
    assert model.read_bytes() == before


def test_deploy_emulates_a_profile_given_as_a_yaml_file(adb_server, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/deploy.md: --device takes a profile name or a profile YAML; the emulated device is started
    from that file (it was looked up again by the name inside it, which no folder holds)."""
    monkeypatch.setenv("EDGELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    own = tmp_path / "my-phone.yaml"
    own.write_text((ROOT / "deploy/device_profiles/pixel.yaml").read_text().replace("name: pixel\n", "name: myphone\n"))
    outcome = deploy(str(own), config_path=CONFIG, runtimes=["cpu"], adb=f"127.0.0.1:{adb_server.port}",
                     emulate=True, report_root=tmp_path / "reports")
    assert [(r.profile, r.runtime, r.passed) for r in outcome.results] == [("myphone", "cpu", True)]
    assert (tmp_path / "home" / "emulators" / "myphone").is_dir()
    with pytest.raises(EdgeloopError, match=r"missing\.yaml: no such device profile file \(give the path of a "):
        load_profile(str(tmp_path / "missing.yaml"))


def test_the_pytest_plugin_emulates_a_profile_given_as_a_yaml_file(adb_server, tmp_path: Path) -> None:
    own = tmp_path / "my-phone.yaml"
    own.write_text((ROOT / "deploy/device_profiles/pixel.yaml").read_text().replace("name: pixel\n", "name: myphone\n"))
    (tmp_path / "test_mine.py").write_text(
        "def test_cpu(edgeloop_deploy, edgeloop_device):\n"
        "    [result] = edgeloop_deploy(runtimes=['cpu'])\n"
        "    assert (result.profile, result.passed, edgeloop_device.profile.name) == ('myphone', True, 'myphone')\n")
    env = {**adb_server.env, "EDGELOOP_BUILD": str(tmp_path / "build"), "EDGELOOP_HOME": str(tmp_path / "home"),
           "EDGELOOP_LOCK_DIR": str(tmp_path / "locks"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--edgeloop-device",
                             str(own), "--edgeloop-emulate", "--edgeloop-config", str(CONFIG), "test_mine.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
