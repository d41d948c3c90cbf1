"""The device shell's system commands: env, getprop, id, uname, sleep, date and test/[."""

from __future__ import annotations

import re
import threading
import time

from emulator.shell.builtins import Invocation, getopt, split_flags
from emulator.shell.cond import ConditionError, evaluate
from emulator.shell.elf import uname_machine
from emulator.shell.procs import signal_number, table_for


def cmd_env(inv: Invocation) -> int:
    args, env = list(inv.args), dict(inv.env)
    while args:
        if args[0] == "-i":
            env = {}
        elif args[0] == "-u" and len(args) > 1:
            env.pop(args[1], None)
            args = args[1:]
        elif "=" in args[0] and not args[0].startswith("="):
            name, _, value = args[0].partition("=")
            env[name] = value
        else:
            break
        args = args[1:]
    if args:
        return inv.interp.dispatch(args, env, inv.fds)
    inv.out("".join(f"{k}={v}\n" for k, v in env.items()))
    return 0


def cmd_getprop(inv: Invocation) -> int:
    props: dict[str, str] = inv.interp.device.props
    if not inv.args:
        inv.out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
        return 0
    default = inv.args[1] if len(inv.args) > 1 else ""
    inv.out(props.get(inv.args[0], default) + "\n")
    return 0


def cmd_id(inv: Invocation) -> int:
    flags, _ = split_flags(inv.args, "ugnr")
    if "u" in flags or "g" in flags:
        inv.out("shell\n" if "n" in flags else "2000\n")
        return 0
    inv.out("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
            "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),"
            "3009(readproc),3011(uhid) context=u:r:shell:s0\n")
    return 0


def cmd_uname(inv: Invocation) -> int:
    flags, _ = split_flags(inv.args, "asnrvmpio")
    props = inv.interp.device.props
    fields = {
        "s": "Linux",
        "n": "localhost",
        "r": props.get("ro.kernel.version", "5.10.0-android13-edgeloop"),
        "v": "#1 SMP PREEMPT",
        "m": uname_machine(props),
    }
    chosen = "snrvm" if "a" in flags else "".join(f for f in "snrvm" if f in flags) or "s"
    inv.out(" ".join(fields[f] for f in chosen) + "\n")
    return 0


def duration(text: str) -> float | None:
    """`1.5`, `2m`, `1h`, `3d` in seconds, None when it is not a duration."""
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", text)
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"] if m else None


def cmd_sleep(inv: Invocation) -> int:
    """Sleeps on the cancel event, so a client hanging up ends it at once."""
    total = 0.0
    for arg in inv.args or ["?"]:
        seconds = duration(arg)
        if seconds is None:
            inv.err(f"bad time '{arg}'" if inv.args else "needs 1 argument")
            return 1
        total += seconds
    return inv.interp.cancel.status() if inv.interp.cancel.wait(total) else 0


def cmd_test(inv: Invocation) -> int:
    args = list(inv.args)
    if inv.name == "[":
        if not args or args[-1] != "]":
            inv.err("missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if evaluate(args, inv.fs, inv.cwd) else 1
    except ConditionError as exc:
        inv.err(str(exc))
        return 2


def cmd_date(inv: Invocation) -> int:
    """date [-u] [+FORMAT]: strftime formats plus %s (epoch seconds) and %N (nanoseconds)."""
    now = time.time_ns()
    utc = "-u" in inv.args
    formats = [a[1:] for a in inv.args if a.startswith("+")]
    fmt = formats[0] if formats else "%a %b %e %H:%M:%S %Z %Y"
    fmt = fmt.replace("%s", str(now // 10**9)).replace("%N", f"{now % 10**9:09d}")
    moment = time.gmtime(now / 1e9) if utc else time.localtime(now / 1e9)
    inv.out(time.strftime(fmt, moment) + "\n")
    return 0


def cmd_whoami(inv: Invocation) -> int:
    inv.out("shell\n")
    return 0


def cmd_sync(inv: Invocation) -> int:
    """Writes reach the sandbox when their file is closed: nothing is left to flush."""
    return 0


def cmd_nohup(inv: Invocation) -> int:
    """There are no hang-up signals to ignore: run the command (a client hanging up still cancels it)."""
    if not inv.args:
        inv.err("needs 1 argument")
        return 127
    return inv.interp.dispatch(inv.args, inv.env, inv.fds)


def cmd_timeout(inv: Invocation) -> int:
    """timeout [-s SIG] DURATION COMMAND...: the command runs as a process of its own, killed with SIG
    (TERM) once DURATION has passed; then the status is 124."""
    opts = getopt(inv.args, "v", "sk", permute=False)
    seconds = duration(opts.operands[0]) if opts.operands else None
    if seconds is None or len(opts.operands) < 2:
        inv.err("needs DURATION and COMMAND")
        return 125
    signo = signal_number(opts.last("s", "TERM") or "TERM")
    interp = inv.interp
    with table_for(interp.device).running(" ".join(opts.operands[1:]), interp.process.session, interp.cancel,
                                          ppid=interp.process.pid) as process:
        child = interp.subshell()
        child.process, child.cancel = process, process.cancel
        timer = threading.Timer(seconds, process.cancel.kill, args=(128 + signo,))
        timer.start()
        try:
            status = child.as_process(lambda: child.dispatch(opts.operands[1:], inv.env, inv.fds), inv.fds)
        finally:
            timer.cancel()
    return 124 if process.cancel.killed_with == 128 + signo and not interp.cancel.is_set() else status


def cmd_nice(inv: Invocation) -> int:
    """nice [-n N] COMMAND...: the device has no scheduler priorities to change; the command runs."""
    opts = getopt(inv.args, "", "n", permute=False)
    if not opts.operands:
        inv.out("0\n")
        return 0
    return inv.interp.dispatch(opts.operands, inv.env, inv.fds)


def cmd_time(inv: Invocation) -> int:
    """Run a command and report its wall-clock and CPU time on stderr, in mksh's layout."""
    started, cpu = time.monotonic(), time.thread_time()
    status = inv.interp.dispatch(inv.args, inv.env, inv.fds) if inv.args else 0
    real, user = time.monotonic() - started, time.thread_time() - cpu
    inv.fds[2].write(f"    {_minutes(real)} real     {_minutes(user)} user     0m00.00s system\n".encode())
    return status


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:05.2f}s"
