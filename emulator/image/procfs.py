"""/proc as the shell user reads it: cpuinfo, meminfo, stat, uptime, loadavg and one folder per process.

Numbers come from the image: cores from its SoC, RAM from the profile's ram_mb (MemTotal), time and
load from its activity (USER_HZ jiffies: a busy core adds 90 % user and 10 % system time, an idle
one 0.5 % system and the rest idle), memory of a net-run from its engine's own measurement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from emulator.image.activity import Snapshot
from emulator.image.tree import SHELL, Dir, File, Node, fixed

if TYPE_CHECKING:
    from emulator.image import DeviceImage, ProcessView

USER_HZ = 100
SYSTEM_THREADS = 1200  # threads of a booted phone's own daemons and apps, for /proc/loadavg
SHELL_GROUPS = "1004 1007 1011 1015 1028 3001 3002 3003 3006 3009 3011"  # as `id` lists them
_READER: ContextVar[int | None] = ContextVar("proc_reader", default=None)


@contextmanager
def reading_as(pid: int) -> Iterator[None]:
    """What runs in the block reads /proc/self as process `pid` (set by the shell for each command)."""
    token = _READER.set(pid)
    try:
        yield
    finally:
        _READER.reset(token)


def tree(image: DeviceImage) -> Dir:
    files: dict[str, Node] = {
        "cpuinfo": File(lambda: cpuinfo(image)),
        "meminfo": File(lambda: meminfo(image)),
        "stat": File(lambda: stat(image)),
        "uptime": File(lambda: uptime(image.activity.snapshot())),
        "loadavg": File(lambda: loadavg(image)),
    }

    def entries() -> dict[str, Node]:
        processes = image.processes()
        folders: dict[str, Node] = {str(p.pid): _process_dir(image, p.pid) for p in processes}
        reader = _READER.get()
        sessions = [p.pid for p in processes if p.ppid == 1]
        if reader is not None and str(reader) in folders:
            folders["self"] = folders[str(reader)]
        elif sessions:  # read by no process (sync's STAT and RECV, `adb pull`): the newest adb shell session
            folders["self"] = folders[str(sessions[-1])]
        return {**files, **folders}

    return Dir(entries)


def _process_dir(image: DeviceImage, pid: int) -> Dir:
    def render(view: str) -> str:
        process = image.process(pid)
        return "" if process is None else _VIEWS[view](image, process)  # it ended since the listing

    return fixed({view: File(lambda v=view: render(v), owner=SHELL) for view in _VIEWS}, mode=0o555)


def cpuinfo(image: DeviceImage) -> str:
    soc = image.soc
    blocks = [f"processor\t: {core.index}\nBogoMIPS\t: {soc.bogomips}\nFeatures\t: {soc.features}\n"
              f"CPU implementer\t: {core.implementer}\nCPU architecture: 8\nCPU variant\t: {core.variant}\n"
              f"CPU part\t: {core.part}\nCPU revision\t: 0\n" for core in soc.cores]
    return "\n".join(blocks) + "\n"


def memory_rows(image: DeviceImage) -> dict[str, int]:
    """/proc/meminfo's figures (kB): the profile's RAM, used as a phone at rest uses it (35 % by the
    system, 26 % cache) plus the resident memory of the programs that measure theirs (net-run)."""
    total = image.profile.ram_mb * 1024
    programs = sum(p.work.memory.get("VmRSS", 0) for p in image.processes() if p.work)
    system, cached, buffers = total * 35 // 100, total * 25 // 100, total // 100
    free = max(total * 2 // 100, total - system - cached - buffers - programs)
    swap = total // 2  # zram
    return {
        "MemTotal": total, "MemFree": free, "MemAvailable": free + cached * 7 // 10 + buffers,
        "Buffers": buffers, "Cached": cached, "SwapCached": 0,
        "Active": system // 2 + programs, "Inactive": cached, "SwapTotal": swap, "SwapFree": swap,
        "Dirty": 128, "AnonPages": system // 2 + programs, "Mapped": cached // 3, "Shmem": total // 200,
        "Slab": total * 3 // 100, "KernelStack": 24_000, "PageTables": 60_000,
        "CommitLimit": total // 2 + swap, "Committed_AS": system * 3 + programs,
    }


def meminfo(image: DeviceImage) -> str:
    return "".join(f"{f'{name}:':<16}{value:>8} kB\n" for name, value in memory_rows(image).items())


def core_jiffies(snapshot: Snapshot, core: int) -> tuple[int, int, int]:
    """(user, system, idle) USER_HZ ticks of one core since boot; each only ever grows."""
    busy, idle = snapshot.busy[core], snapshot.idle(core)
    return (int(busy * 0.9 * USER_HZ), int((busy * 0.1 + idle * 0.005) * USER_HZ), int(idle * 0.995 * USER_HZ))


def stat(image: DeviceImage) -> str:
    snapshot = image.activity.snapshot()
    per_core = [core_jiffies(snapshot, c) for c in range(image.activity.cores)]
    user, system, idle = (sum(column) for column in zip(*per_core, strict=True))
    lines = [f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0"]
    lines += [f"cpu{c} {u} 0 {s} {i} 0 0 0 0 0 0" for c, (u, s, i) in enumerate(per_core)]
    processes = image.processes()
    switches = int(snapshot.uptime * 2000 + sum(snapshot.busy) * 4000)
    lines += [f"intr {switches // 2}", f"ctxt {switches}", f"btime {int(image.boot_time)}",
              f"processes {max((p.pid for p in processes), default=4000) - 3000}",
              f"procs_running {1 + sum(len(w.cores) for w in snapshot.running)}", "procs_blocked 0",
              f"softirq {switches // 4}"]
    return "\n".join(lines) + "\n"


def uptime(snapshot: Snapshot) -> str:
    idle = sum(snapshot.idle(c) for c in range(len(snapshot.busy)))
    return f"{snapshot.uptime:.2f} {idle:.2f}\n"


def loadavg(image: DeviceImage) -> str:
    snapshot = image.activity.snapshot()
    processes = image.processes()
    threads = sum(p.threads for p in processes)
    last = max((p.pid for p in processes), default=4000)
    one, five, fifteen = snapshot.loadavg
    running = 1 + sum(len(w.cores) for w in snapshot.running)
    return f"{one:.2f} {five:.2f} {fifteen:.2f} {running}/{SYSTEM_THREADS + threads} {last}\n"


def _mask_list(mask: int) -> str:
    """0-3,6 for 0b1001111."""
    cores = [c for c in range(mask.bit_length()) if mask >> c & 1]
    ranges: list[list[int]] = []
    for c in cores:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _state(process: ProcessView) -> str:
    return "R (running)" if process.work else "S (sleeping)"


def status(image: DeviceImage, process: ProcessView) -> str:
    memory = process.memory
    rows = [
        ("Name", process.name), ("State", _state(process)), ("Tgid", process.pid), ("Pid", process.pid),
        ("PPid", process.ppid), ("TracerPid", 0), ("Uid", "2000\t2000\t2000\t2000"),
        ("Gid", "2000\t2000\t2000\t2000"), ("FDSize", 64), ("Groups", SHELL_GROUPS),
        *((key, f"{memory[key]:>8} kB") for key in ("VmPeak", "VmSize", "VmHWM", "VmRSS")),
        ("Threads", process.threads), ("Cpus_allowed", f"{process.mask:x}"),
        ("Cpus_allowed_list", _mask_list(process.mask)),
    ]
    return "".join(f"{key}:\t{value}\n" for key, value in rows)


def process_stat(image: DeviceImage, process: ProcessView) -> str:
    """/proc/<pid>/stat: utime and stime (fields 14 and 15) are its work's core-seconds in ticks."""
    busy = process.work.busy_s if process.work else 0.0
    started = int((process.started - image.boot_time) * USER_HZ)
    memory = process.memory
    fields = [process.pid, f"({process.name})", _state(process)[0], process.ppid, process.pid, process.pid, 0, -1,
              4194560, 0, 0, 0, 0, int(busy * 0.9 * USER_HZ), int(busy * 0.1 * USER_HZ), 0, 0, 20, 0,
              process.threads, 0, max(0, started), memory["VmSize"] * 1024, memory["VmRSS"] // 4]
    return " ".join(map(str, fields + [0] * (52 - len(fields)))) + "\n"


def cmdline(image: DeviceImage, process: ProcessView) -> str:
    return "".join(f"{arg}\0" for arg in process.cmdline.split(" "))


_VIEWS = {"status": status, "stat": process_stat, "cmdline": cmdline}
