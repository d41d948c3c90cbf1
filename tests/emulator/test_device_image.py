"""The device image made from the profile (issue 15, item 3): props, /proc, /sys, logcat, dumpsys,
settings and taskset, through the real adb server with the clients scripts use (adbutils, ppadb),
and the thermal model on a clock the test drives."""

from __future__ import annotations

import contextlib
import io
import math
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import adbutils
import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper, numpy_helper

from deploy.container import write_meta
from deploy.profiles import load_profile
from emulator import netrun
from emulator.device import EmulatedDevice, Faults
from emulator.image import thermal
from emulator.image.activity import Work
from emulator.image.hardware import soc_for
from emulator.lifecycle import RunningDevice
from emulator.shell import COMMANDS, Shell
from tests.conftest import AdbServer, StartDevice, wait_until
from tests.deploy.models import conv_net
from tests.emulator.test_netrun import feeds_for, meta_for

PIXEL = load_profile("pixel")
CORES = len(soc_for(PIXEL).cores)  # 8: Tensor G2's 4 + 2 + 2
ZONE0 = "/sys/class/thermal/thermal_zone0/temp"
RUN_DIR = "/data/local/tmp/image-test"
NET_RUN = f"cd {RUN_DIR} && {netrun.TAG} --container m.onnx --input_list list.txt --output_dir out"
IDLE_C = thermal.AMBIENT_C + thermal.RISE_C * thermal.IDLE_HEAT


@pytest.fixture
def device(adb_server: AdbServer, emulated_pixel: RunningDevice) -> adbutils.AdbDevice:
    return adb_server.client.device(emulated_pixel.serial)


def install_model(device: adbutils.AdbDevice, inputs: int = 60, model: ModelProto | None = None,
                  folder: str = RUN_DIR) -> None:
    """A model (default: a small classifier) with `inputs` inputs in `folder`, pushed as the harness
    pushes a bundle."""
    model = model or conv_net()
    write_meta(model, meta_for(model))
    device.sync.push(model.SerializeToString(), f"{folder}/m.onnx")
    lines = []
    for i, feeds in enumerate(feeds_for(model, inputs)):
        [(name, array)] = feeds.items()
        device.sync.push(array.tobytes(), f"{folder}/in{i}.raw")
        lines.append(f"{name}:=in{i}.raw")
    device.sync.push(("\n".join(lines) + "\n").encode(), f"{folder}/list.txt")


def cpu_lines(stat_text: str) -> dict[str, list[int]]:
    return {fields[0]: [int(v) for v in fields[1:]] for line in stat_text.splitlines()
            if (fields := line.split()) and fields[0].startswith("cpu")}


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# ---- through adb ----------------------------------------------------------------------------


def test_props_say_a_booted_user_build_of_the_profile(device: adbutils.AdbDevice) -> None:
    assert device.getprop("sys.boot_completed") == "1"  # boot-wait loops end
    assert (device.prop.model, device.prop.device, device.prop.name) == ("Pixel 7", "panther", "panther")
    fingerprint = device.getprop("ro.build.fingerprint")
    build_id = device.getprop("ro.build.id")
    assert fingerprint == f"google/panther/panther:14/{build_id}/{device.getprop('ro.build.version.incremental')}" \
                          ":user/release-keys"
    assert re.fullmatch(r"UQ1A\.\d{6}\.\d{3}", build_id)  # an Android 14 release, as ro.build.version.sdk 34 says
    props = {k: device.getprop(k) for k in ("ro.build.version.sdk", "ro.build.version.release", "ro.secure",
                                            "ro.debuggable", "ro.soc.model", "ro.soc.manufacturer",
                                            "ro.board.platform", "ro.hardware", "ro.product.cpu.abilist")}
    assert props == {"ro.build.version.sdk": "34", "ro.build.version.release": "14", "ro.secure": "1",
                     "ro.debuggable": "0", "ro.soc.model": "GS201", "ro.soc.manufacturer": "Google",
                     "ro.board.platform": "gs201", "ro.hardware": "panther", "ro.product.cpu.abilist": "arm64-v8a"}
    listing = device.shell("getprop").splitlines()
    assert "[sys.boot_completed]: [1]" in listing and f"[ro.build.fingerprint]: [{fingerprint}]" in listing
    keys = [line[1:].partition("]")[0] for line in listing]
    assert keys == sorted(keys)


def test_proc_describes_the_profiles_cores_and_ram(device: adbutils.AdbDevice) -> None:
    cpuinfo = device.shell("cat /proc/cpuinfo")
    assert cpuinfo.count("processor\t:") == CORES
    assert re.findall(r"CPU part\t: (0x[0-9a-f]+)", cpuinfo) == ["0xd05"] * 4 + ["0xd41"] * 2 + ["0xd44"] * 2
    meminfo = dict(re.findall(r"^(\w+):\s+(\d+) kB$", device.shell("cat /proc/meminfo"), re.M))
    assert int(meminfo["MemTotal"]) == PIXEL.ram_mb * 1024
    assert 0 < int(meminfo["MemFree"]) < int(meminfo["MemAvailable"]) < int(meminfo["MemTotal"])
    assert sorted(cpu_lines(device.shell("cat /proc/stat"))) == ["cpu", *sorted(f"cpu{c}" for c in range(CORES))]
    up, idle = map(float, device.shell("cat /proc/uptime").split())
    assert up > 0 and 0 < idle <= (up + 0.01) * CORES  # each rounded to 10 ms
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+", device.shell("cat /proc/loadavg"))


def test_sys_lists_cpus_clocks_thermal_zones_and_the_battery(device: adbutils.AdbDevice) -> None:
    cpus = device.shell("ls /sys/devices/system/cpu").split()
    assert [c for c in cpus if re.fullmatch(r"cpu\d+", c)] == sorted(f"cpu{c}" for c in range(CORES))
    assert device.shell("cat /sys/devices/system/cpu/online /sys/devices/system/cpu/possible").split() == ["0-7"] * 2
    freq = "/sys/devices/system/cpu/cpu7/cpufreq"
    assert device.shell(f"cat {freq}/cpuinfo_max_freq {freq}/scaling_governor").split() == ["2850000", "schedutil"]
    idle = int(device.shell(f"cat {freq}/scaling_cur_freq"))
    assert idle == 500000  # an idle core at its cluster's minimum
    zones = device.shell("for z in /sys/class/thermal/thermal_zone*; do cat $z/type; done").split()
    assert zones == ["cpu-little", "cpu-mid", "cpu-big", "gpu", "battery", "skin"]
    battery = "/sys/class/power_supply/battery"
    capacity, status, temp, voltage = device.shell(f"cat {battery}/capacity {battery}/status {battery}/temp "
                                                   f"{battery}/voltage_now").split()
    assert 0 < int(capacity) <= 100 and status == "Discharging"
    assert 200 < int(temp) < 400 and 3_500_000 < int(voltage) < 4_400_000


def test_virtual_files_agree_in_cat_ls_test_sync_and_adb_pull(device: adbutils.AdbDevice, adb_server: AdbServer,
                                                             emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    assert device.sync.read_text("/proc/cpuinfo") == device.shell2("cat /proc/cpuinfo").output
    folder = "/sys/devices/system/cpu"
    assert sorted(e.path for e in device.sync.list(folder)) == device.shell(f"ls {folder}").split()
    tests = "test -e /proc/meminfo && test -d /sys/class/thermal && test ! -e /proc/nope && echo ok"
    assert device.shell(tests) == "ok"
    st = device.sync.stat("/proc/meminfo")
    assert (st.mode & 0o170777, st.size) == (0o100444, 0)  # size 0, as /proc files are on Linux
    assert device.sync.stat(f"{folder}/cpu0/cpufreq/scaling_max_freq").size == 4096
    pulled = adb_server.run("-s", emulated_pixel.serial, "pull", "/proc/meminfo", str(tmp_path / "meminfo"))
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "meminfo").read_text().startswith(f"MemTotal:        {PIXEL.ram_mb * 1024} kB\n")


def test_writes_are_refused_as_for_the_shell_user_of_a_user_build(device: adbutils.AdbDevice, adb_server: AdbServer,
                                                                 tmp_path: Path) -> None:
    governor = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    refused = device.shell2(f"echo performance > {governor}")
    assert refused.returncode == 1 and "Permission denied" in refused.output
    assert device.shell(f"cat {governor}") == "schedutil"
    assert device.shell2("rm /proc/cpuinfo").returncode == 1
    (tmp_path / "planted").write_text("x")
    pushed = adb_server.run("-s", device.serial, "push", str(tmp_path / "planted"), "/proc/planted")
    assert pushed.returncode == 1 and b"/proc/planted: Permission denied" in pushed.stderr
    assert device.shell2("test -e /proc/planted").returncode == 1


def test_a_net_run_advances_jiffies_heats_the_die_and_logs_its_lines(device: adbutils.AdbDevice) -> None:
    install_model(device)
    # 600 inferences (the 60 inputs ten times), so that each core's 10 % system share of the run passes
    # a whole jiffy on a quiet host: 60 gave 40 user jiffies over 8 cores and no system one
    listed = device.shell(f"cat {RUN_DIR}/list.txt")
    device.sync.push((listed.strip() + "\n").encode() * 10, f"{RUN_DIR}/list.txt")
    before = cpu_lines(device.shell("cat /proc/stat"))
    hot_before = int(device.shell(f"cat {ZONE0}"))
    device.shell("logcat -c; sleep 0.05")  # idle time in the window however fast the rest (idle > 0 below)
    ran = device.shell2(NET_RUN)
    assert ran.returncode == 0, ran.output
    after = cpu_lines(device.shell("cat /proc/stat"))
    user, system, idle = (after["cpu"][k] - before["cpu"][k] for k in (0, 2, 3))
    assert user > 0 and system > 0 and idle > 0
    assert all(after[f"cpu{c}"][0] > before[f"cpu{c}"][0] for c in range(CORES))  # every core worked
    assert int(device.shell(f"cat {ZONE0}")) > hot_before

    log = device.shell(f"logcat -d -v brief -s {netrun.TAG}").splitlines()
    assert log[0] == "--------- beginning of main"
    start, finish = log[1:]
    assert re.fullmatch(rf"I/{netrun.TAG}\( *\d+\): start: --container m.onnx .*", start)
    peak = re.fullmatch(rf"I/{netrun.TAG}\( *\d+\): finished: exit 0 after \d+\.\d+ s, VmHWM (\d+) kB", finish)
    assert peak and int(peak.group(1)) > 10_000  # the engine's own resident peak: onnxruntime and the network


def _peak_kb(device: adbutils.AdbDevice, folder: str) -> int:
    """net-run's VmHWM in its finishing log line, for one run in `folder`."""
    device.shell("logcat -c")
    assert device.shell2(f"cd {folder} && {netrun.TAG} --container m.onnx --input_list list.txt "
                         "--output_dir out").returncode == 0
    finish = device.shell(f"logcat -d -v brief -s {netrun.TAG}").splitlines()[-1]
    return int(re.search(r"VmHWM (\d+) kB", finish).group(1))


def test_each_run_has_its_own_peak_memory(device: adbutils.AdbDevice) -> None:
    """As a new process per net-run on a phone: a 32 MiB network run in between neither stays in a
    small network's peak nor is missing from its own."""
    install_model(device, inputs=3)
    weight = numpy_helper.from_array(np.full((2048, 4096), 0.01, np.float32), "w")
    big = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])], [weight]))
    install_model(device, inputs=3, model=big, folder=f"{RUN_DIR}/big")
    small = _peak_kb(device, RUN_DIR)
    large = _peak_kb(device, f"{RUN_DIR}/big")
    again = _peak_kb(device, RUN_DIR)
    assert large > small + 32_768  # its weights are resident in its own run
    assert abs(again - small) < 8_192, (small, large, again)


def test_after_a_net_run_the_die_cools_as_the_model_says(device: adbutils.AdbDevice) -> None:
    """Idle, T approaches the idle temperature with time constant TAU_S: T2 - idle = (T1 - idle) exp(-dt/tau),
    dt read from /proc/uptime in the same `cat` as each temperature."""
    install_model(device)
    assert device.shell2(NET_RUN).returncode == 0

    def reading() -> tuple[float, float]:
        up, _idle, milli = device.shell(f"cat /proc/uptime {ZONE0}").split()
        return float(up), int(milli) / 1000

    up1, t1 = reading()
    assert t1 > IDLE_C + 0.05
    up2, t2 = wait_until(lambda: (r := reading())[0] >= up1 + 0.5 and r, "half a second of device time")
    expected = IDLE_C + (t1 - IDLE_C) * math.exp(-(up2 - up1) / thermal.TAU_S)
    assert t2 < t1
    assert abs(t2 - expected) <= 0.003 + (t1 - IDLE_C) * 0.02 / thermal.TAU_S  # uptime has 10 ms steps


def test_a_running_net_run_shows_in_proc_with_its_memory_and_taskset_mask(
        adb_server: AdbServer, start_emulated: StartDevice) -> None:
    running = start_emulated("pixel", faults=Faults(netrun_hang=True))  # it stays in its run until stopped
    client = adb_server.client.device(running.serial)
    install_model(client, inputs=1)
    thread = threading.Thread(target=lambda: _until_gone(client, NET_RUN.replace(netrun.TAG, f"taskset 30 "
                                                                                          f"{netrun.TAG}")))
    thread.start()
    pid = wait_until(lambda: next((line.split()[1] for line in client.shell("ps -A").splitlines()
                                   if line.endswith(netrun.TAG)), None), "net-run to start")
    status = wait_until(lambda: (s := status_fields(client.shell(f"cat /proc/{pid}/status")))
                        and int(s["VmRSS"].split()[0]) > 10_000 and s, "net-run to measure its memory")
    assert status["Name"] == netrun.TAG[:15] and status["State"].startswith("R")
    assert int(status["VmHWM"].split()[0]) >= int(status["VmRSS"].split()[0])
    assert (status["Cpus_allowed"], status["Cpus_allowed_list"], status["Threads"]) == ("30", "4-5", "3")
    assert client.shell(f"taskset -p {pid}") == f"pid {pid}'s current affinity mask: 30"
    fields = client.shell(f"cat /proc/{pid}/stat").split()
    assert fields[:3] == [pid, f"({netrun.TAG[:15]})", "R"] and len(fields) == 52
    meminfo = client.shell(f"dumpsys meminfo {netrun.TAG}")
    assert f"** MEMINFO in pid {pid} [{netrun.TAG[:15]}] **" in meminfo
    assert client.shell("cat /proc/cpuinfo | grep -c processor") == str(CORES)

    def busy_cores() -> list[int] | None:  # once two cores have a whole jiffy of user time
        cores = cpu_lines(client.shell("cat /proc/stat"))
        busy = [c for c in range(CORES) if cores[f"cpu{c}"][0] > 0]
        return busy if len(busy) >= 2 else None

    assert wait_until(busy_cores, "the run's cores to count user time") == [4, 5]  # the mask's, only those
    running.stop()
    thread.join(timeout=30)


def _until_gone(client: adbutils.AdbDevice, command: str) -> None:
    with contextlib.suppress(adbutils.AdbError, EOFError, OSError):  # the device stops under it
        client.shell2(command)


def test_logcat_holds_adbds_connections_and_follows_for_adbutils(device: adbutils.AdbDevice, tmp_path: Path) -> None:
    connections = device.shell("logcat -d -v brief -s adbd").splitlines()
    assert any(re.fullmatch(r"I/adbd\( *\d+\): new connection from 127\.0\.0\.1:\d+", ln) for ln in connections)
    saved = tmp_path / "logcat.txt"
    following = device.logcat(saved, clear=True, re_filter=netrun.TAG)  # `logcat --clear`, then `logcat -v time`
    device.shell(f"{netrun.TAG} --help")  # a run that never reaches the engine: start and finish, no VmHWM
    wait_until(lambda: "finished: exit 0" in saved.read_text(), "logcat to follow net-run's lines")
    start, finish = saved.read_text().splitlines()
    assert re.fullmatch(rf"\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} I/{netrun.TAG}\( *\d+\): start: --help", start)
    assert re.search(r"I/edgeloop-net-run\( *\d+\): finished: exit 0 after \d+\.\d{3} s$", finish)
    following.stop_nowait()
    device.shell(f"{netrun.TAG} --help")  # one more line wakes its reader, which then sees the stop
    following.stop(timeout=20)
    assert device.shell("logcat -d -s adbd") == ""  # cleared: what came since is net-run's only


def test_dumpsys_battery_and_friends(device: adbutils.AdbDevice) -> None:
    battery = device.battery()
    assert (battery.status, battery.health, battery.present, battery.scale) == (3, 2, True, 100)
    assert battery.ac_powered is False and battery.usb_powered is False and battery.technology == "Li-ion"
    assert 0 < battery.level <= 100 and 3500 < battery.voltage < 4400 and 20 < battery.temperature < 40
    assert battery.level == int(device.shell("cat /sys/class/power_supply/battery/capacity"))
    thermals = device.shell("dumpsys thermalservice")
    assert "Thermal Status: " in thermals and "mName=cpu-big" in thermals
    assert re.search(r"Load: \d+\.\d\d / \d+\.\d\d / \d+\.\d\d", device.shell("dumpsys cpuinfo"))
    assert f"Total RAM: {PIXEL.ram_mb * 1024:,}K" in device.shell("dumpsys meminfo")
    assert device.shell2("dumpsys nosuch").output == "Can't find service: nosuch\n"


def test_settings_get_put_delete(device: adbutils.AdbDevice) -> None:
    assert device.shell("settings get global adb_enabled") == "1"
    assert device.shell("settings get system image_test_key") == "null"
    device.shell("settings put system image_test_key 42")
    assert device.shell("settings get system image_test_key") == "42"
    assert "image_test_key=42" in device.shell("settings list system").splitlines()
    assert device.shell("settings delete system image_test_key") == "Deleted 1 rows"
    assert device.shell2("settings get nowhere x").returncode == 255


def test_ppadb_helpers_read_real_values(adb_server: AdbServer, emulated_pixel: RunningDevice) -> None:
    from ppadb import client  # the test extra (pyproject.toml): a second client library, never skipped
    device = client.Client(host="127.0.0.1", port=adb_server.port).device(emulated_pixel.serial)
    assert device.cpu_count() == CORES
    first = device.cpu_times()
    assert first.idle > 0 and first.total() > 0
    assert device.get_battery_level() == int(device.shell("cat /sys/class/power_supply/battery/capacity"))
    assert device.cpu_times().total() >= first.total()


# ---- the model on a clock the test drives ---------------------------------------------------


class Clock:
    """Device time the test drives: it moves when the test moves `now`, and by `step` at every reading."""

    def __init__(self) -> None:
        self.now, self.step = 1000.0, 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[tuple[EmulatedDevice, Clock]]:
    clock = Clock()
    dev = EmulatedDevice(PIXEL, name="image-test", port=0, sandbox_root=tmp_path / "sandbox",
                         log_path=tmp_path / "device.log", clock=clock)
    yield dev, clock
    dev.close()


def sh(device: EmulatedDevice, command: str) -> str:
    out = io.BytesIO()
    status = Shell(device.fs, device, COMMANDS).run(command, stdin=io.BytesIO(), stdout=out, stderr=out)
    assert status == 0, out.getvalue()
    return out.getvalue().decode()


def test_the_die_follows_the_first_order_model_and_throttles_past_its_trip_point(driven) -> None:
    device, clock = driven
    every_core = Work(None, frozenset(range(CORES)), 0.0)
    cur_freq = "/sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq"
    assert int(sh(device, f"cat {ZONE0}")) == round(IDLE_C * 1000)  # at rest, to the milli-degree
    with device.image.activity.working(every_core):
        clock.now += thermal.TAU_S
        full = thermal.AMBIENT_C + thermal.RISE_C * (1 + thermal.IDLE_HEAT)
        hot = full + (IDLE_C - full) * math.exp(-1)
        assert int(sh(device, f"cat {ZONE0}")) == round(hot * 1000)
        assert hot < thermal.TRIP_C and int(sh(device, f"cat {cur_freq}")) == 2_850_000  # busy: at its maximum
        clock.now += 10 * thermal.TAU_S  # long enough to pass the trip point
        die = full + (hot - full) * math.exp(-10)
        assert die > thermal.TRIP_C
        throttled = int(sh(device, f"cat {cur_freq}"))
        assert throttled <= 2_850_000 * thermal.clock_cap(die) < 2_850_000
        assert int(sh(device, "cat /sys/devices/system/cpu/cpu7/cpufreq/scaling_max_freq")) == throttled
        assert thermal.thermal_status(die) > 0
        assert f"Thermal Status: {thermal.thermal_status(die)}" in sh(device, "dumpsys thermalservice")
    clock.now += thermal.TAU_S
    cooled = IDLE_C + (die - IDLE_C) * math.exp(-1)
    assert int(sh(device, f"cat {ZONE0}")) == round(cooled * 1000)
    assert int(sh(device, f"cat {cur_freq}")) == 500_000  # idle again


def test_jiffies_count_each_cores_busy_and_idle_time(driven) -> None:
    device, clock = driven
    with device.image.activity.working(Work(None, frozenset({4, 5}), 0.0)):
        clock.now += 2.0
    clock.now += 1.0
    cores = cpu_lines(sh(device, "cat /proc/stat"))
    assert cores["cpu4"][:4] == [180, 0, 20 + 0, 99]  # 2 s busy: 90 % user, 10 % system; 1 s idle: 99.5 % idle
    assert cores["cpu0"][:4] == [0, 0, 1, 298]  # 3 s idle: 0.5 % system
    assert cores["cpu"][0] == 360 and sh(device, "cat /proc/uptime") == f"3.00 {3 * CORES - 4:.2f}\n"
    one = float(sh(device, "cat /proc/loadavg").split()[0])
    assert one == pytest.approx(2 * (1 - math.exp(-2 / 60)) * math.exp(-1 / 60), abs=0.005)


def test_net_run_keeps_the_cores_of_its_taskset_mask_busy(driven) -> None:
    """net-run's threads are the cores of its affinity: `taskset 3` keeps cores 0 and 1 busy, no other."""
    device, clock = driven
    model: ModelProto = conv_net()
    write_meta(model, meta_for(model))

    def put(path: str, data: bytes) -> None:
        device.fs.mkdir(path.rpartition("/")[0], parents=True)
        with device.fs.open_write(path) as f:
            f.write(data)

    put(f"{RUN_DIR}/m.onnx", model.SerializeToString())
    [(name, array)] = feeds_for(model, 1)[0].items()
    put(f"{RUN_DIR}/in0.raw", array.tobytes())
    put(f"{RUN_DIR}/list.txt", f"{name}:=in0.raw\n".encode())
    clock.step = 0.1  # the run's start and end are readings apart: its span is never empty
    sh(device, NET_RUN.replace(netrun.TAG, f"taskset 3 {netrun.TAG}"))
    cores = cpu_lines(sh(device, "cat /proc/stat"))
    assert [c for c in range(CORES) if cores[f"cpu{c}"][0] > 0] == [0, 1]
    log = sh(device, f"logcat -d -v tag -s {netrun.TAG}")
    assert "I/edgeloop-net-run: finished: exit 0 after" in log


def test_taskset_p_sets_a_running_process_mask(driven) -> None:
    """(That what a process starts inherits its mask, the net-run tests show: taskset's own shell passes it on.)"""
    device, _clock = driven
    out = sh(device, "taskset -p 3 $$; grep Cpus_allowed_list /proc/$$/status; taskset -p $$")
    pid = re.match(r"pid (\d+)'s", out)[1]
    assert out.splitlines() == [f"pid {pid}'s current affinity mask: ff", f"pid {pid}'s new affinity mask: 3",
                                "Cpus_allowed_list:\t0-1", f"pid {pid}'s current affinity mask: 3"]
    refused = io.BytesIO()
    status = Shell(device.fs, device, COMMANDS).run("taskset 100 true", stdin=io.BytesIO(), stdout=refused,
                                                    stderr=refused)
    assert (status, refused.getvalue()) == (1, b"taskset: failed to set pid 0's affinity: Invalid argument\n")
