"""On-device measurements (harness.measure) against the emulated device: net-run's peak memory as its
engine measured it, temperatures before and after from its thermal model, CPU affinity through taskset,
and --cooldown-temp waiting on a device kept hot by a run of its own."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deploy.config import load_config
from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from harness.farm import load_matrix
from harness.measure import RunOptions, cool_down, device_temperature, parse_zones, read_temperature
from harness.pipeline import plan, prepare, run_job
from harness.report.results import PASSED
from harness.run import shell_v2
from harness.transfer import DEVICE_ROOT
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG, open_session

EDGELOOP = str(Path(sys.executable).parent / "edgeloop")


@pytest.fixture
def cpu_job(deploy_env):
    return plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu"])[0]


def _logged_peaks(session) -> list[int]:
    """The VmHWM net-run's engine measured, run by run, as it logs it when it finishes."""
    log = session.device.shell2("logcat -d -s edgeloop-net-run", v2=True).stdout
    return [int(kb) for kb in re.findall(r"finished: exit 0 after [\d.]+ s, VmHWM (\d+) kB", log)]


def test_memory_temperatures_and_affinity_of_each_run(adb_server, start_emulated, cpu_job, tmp_path: Path) -> None:
    running = start_emulated("pixel")
    with open_session(adb_server, running) as session:
        result = run_job(cpu_job, session, runs=3, work_dir=tmp_path / "job", options=RunOptions(cpu_mask="f0"))
        peaks = _logged_peaks(session)
    assert result.status == PASSED, result.failure
    document = result.to_json()
    memory, thermal = document["memory"], document["thermal"]
    # the peak of each measured run is the engine's own figure (the warm-up's is the first one logged)
    assert len(peaks) == 4 and memory["run_peak_kb"] == peaks[1:]
    assert memory["peak_kb"] == max(peaks[1:]) > 10_000 and memory["samples"] >= 3
    # net-run keeps its cores busy: every run leaves the die hotter than it found it
    assert all(after > before for before, after in zip(thermal["run_before_c"], thermal["run_after_c"], strict=True))
    assert thermal["before_c"] == thermal["run_before_c"][0] and set(thermal["zones_after"]) >= {"cpu-big", "skin"}
    assert document["run_options"] == {"cpu_mask": "f0", "perf_profile": "high_performance", "cooldown_c": None}
    assert "taskset f0 sh run.sh" in (tmp_path / "job" / "run-1" / "command.txt").read_text()


def test_cooldown_waits_until_the_device_is_below(adb_server, start_emulated, cpu_job, tmp_path: Path) -> None:
    """A hung net-run keeps every core busy (the thermal model heats the die); the job waits for the
    device to cool below the limit, which it does once that run is stopped."""
    running = start_emulated("pixel")
    art = prepare(cpu_job)
    with open_session(adb_server, running) as session:
        installed = session.install(art.bundle)
        running.set_faults(netrun_hang=True)
        heater = threading.Thread(target=shell_v2, args=(session.device, f"cd {installed.remote_dir} && sh run.sh "
                                                         f"{DEVICE_ROOT}/heater", 120, (bytearray(), bytearray())))
        heater.start()
        wait_until(lambda: (read_temperature(session.device) or 0) > 40, what="the die to pass 40 °C")
        running.set_faults(netrun_hang=False)
        phases: list[str] = []

        def on_phase(name: str) -> None:
            phases.append(name)
            if name == "cooldown" and phases.count("cooldown") == 1:  # waiting now: stop the heater
                session.device.shell2(f"pkill -f {DEVICE_ROOT}/heater", v2=True)

        result = run_job(cpu_job, session, work_dir=tmp_path / "job", artifacts=art, on_phase=on_phase,
                         options=RunOptions(cooldown_c=38))
        heater.join(30)
    assert result.status == PASSED, result.failure
    thermal = result.to_json()["thermal"]
    assert thermal["cooldown_s"] > 0.5 and thermal["run_before_c"][0] < 38
    assert result.to_json()["run_options"]["cooldown_c"] == 38


def test_cooldown_gives_up_in_one_line(adb_server, emulated_pixel) -> None:
    """A device that never gets below the limit: the wait is bounded (the clock is driven here)."""
    from harness.devices import connect

    device = connect(adb_server.client, emulated_pixel.serial)
    ticks = iter(range(0, 1000, 100))
    with pytest.raises(EdgeloopError) as info:
        cool_down(device, 5.0, timeout_s=250, clock=lambda: next(ticks), pause=lambda s: None)
    assert "\n" not in str(info.value)
    assert re.match(rf"device {emulated_pixel.serial} stayed at \d+\.\d °C, not below --cooldown-temp 5 °C, "
                    r"for 250 s", info.value.message)


@pytest.mark.parametrize("value, said", [("abc", "got 'abc'"), (-3, "got -3"), (500, "got 500"),
                                         (float("nan"), "got nan")])
def test_bad_cooldown_temperatures_are_refused_in_one_line(value, said) -> None:
    with pytest.raises(EdgeloopError) as info:
        RunOptions(cooldown_c=value)
    assert info.value.message.startswith("--cooldown-temp must be a temperature in °C from 1 to 120")
    assert said in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("mask", ["xyz", "0", "", "0x"])
def test_bad_cpu_masks_are_refused_in_one_line(mask) -> None:
    with pytest.raises(EdgeloopError, match="--cpu-mask must be a hexadecimal mask of CPU cores"):
        RunOptions(cpu_mask=mask)


def test_the_command_line_and_matrix_yaml_refuse_bad_values_in_one_line_before_any_work(tmp_path: Path) -> None:
    done = subprocess.run([EDGELOOP, "deploy", "--config", str(CONFIG), "--cooldown-temp", "hot"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == "" and list(tmp_path.iterdir()) == []  # no report folder
    assert done.stderr == ("error: --cooldown-temp must be a temperature in °C from 1 to 120, got 'hot' "
                           "(e.g. --cooldown-temp 40)\n")
    matrix = tmp_path / "matrix.yaml"
    for line, said in (("cooldown_temp: 300", "matrix.yaml:2: cooldown_temp: "),
                       ("cpu_mask: '0'", "matrix.yaml:2: cpu_mask: must be a hexadecimal mask of CPU cores, got '0'")):
        matrix.write_text(f"profiles: [pixel]\n{line}\n")
        with pytest.raises(EdgeloopError) as info:
            load_matrix(matrix)
        assert said in info.value.message and "\n" not in info.value.message


def test_zones_that_report_nonsense_are_left_out() -> None:
    lines = ("@@edgeloop@@ now cpu-0 41000\n@@edgeloop@@ now cpu-1 43500\n@@edgeloop@@ now skin 50000\n"
             "@@edgeloop@@ now pm-ibat -1000000\n@@edgeloop@@ now xo \n@@edgeloop@@ before cpu-0 99000\n")
    zones = parse_zones(lines, "now")
    assert zones == {"cpu-0": 41.0, "cpu-1": 43.5, "skin": 50.0}
    assert device_temperature(zones) == 43.5  # a CPU zone, even when another is hotter
    assert device_temperature({"skin": 31.0, "battery": 29.0}) == 31.0 and device_temperature({}) is None
