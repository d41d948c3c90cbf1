"""The shell's command table: every command name the device's sh knows, the function that runs it and
its kind. One explicit table, handed to the interpreter (`Shell(fs, device, commands=COMMANDS)`):
importing a command module registers nothing, so what the device has is read here, in one place.

Kinds: a POSIX special builtin (`VAR=value cmd` keeps VAR, no /system/bin file), one only the
shell has (`cd`, `read`: no /system/bin file either) and an applet (toybox's, or `sh`), which is
also the executable /system/bin/<name> of the system image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from emulator.shell import (
    archive,
    awk,
    binary,
    builtins,
    diff,
    expr,
    fileops,
    files,
    grep,
    jobs,
    procs,
    sed,
    text,
    utils,
)
from emulator.shell.builtins import Command, Invocation

Fn = Callable[[Invocation], int]


def _special(fn: Fn) -> Command:
    return Command(fn, special=True, applet=False)


def _own(fn: Fn) -> Command:
    return Command(fn, applet=False)


COMMANDS: Mapping[str, Command] = MappingProxyType({
    # the shell itself
    ".": _special(builtins.cmd_source),
    ":": _own(builtins.cmd_true),  # Android has /system/bin/true but no /system/bin/:
    "break": _special(builtins.cmd_break),
    "cd": _own(builtins.cmd_cd),
    "command": _own(builtins.cmd_command),
    "continue": _special(builtins.cmd_break),
    "eval": _special(builtins.cmd_eval),
    "exec": _special(builtins.cmd_exec),
    "exit": _special(builtins.cmd_exit),
    "export": _special(builtins.cmd_export),
    "getopts": _own(builtins.cmd_getopts),
    "let": _own(builtins.cmd_let),
    "local": _special(builtins.cmd_local),
    "read": _own(builtins.cmd_read),
    "readonly": _special(builtins.cmd_local),
    "return": _special(builtins.cmd_return),
    "set": _special(builtins.cmd_set),
    "shift": _special(builtins.cmd_shift),
    "source": _special(builtins.cmd_source),
    "trap": _special(builtins.cmd_trap),
    "type": _own(builtins.cmd_type),
    "typeset": _special(builtins.cmd_local),
    "ulimit": _own(builtins.cmd_accept),
    "umask": _own(builtins.cmd_accept),
    "unset": _special(builtins.cmd_unset),
    "wait": _own(jobs.cmd_wait),
    # applets: /system/bin/<name>
    "[": Command(utils.cmd_test),
    "awk": Command(awk.cmd_awk),
    "base64": Command(binary.cmd_base64),
    "basename": Command(text.cmd_basename),
    "cat": Command(files.cmd_cat),
    "chmod": Command(fileops.cmd_chmod),
    "cmp": Command(binary.cmd_cmp),
    "cp": Command(fileops.cmd_cp),
    "cut": Command(text.cmd_cut),
    "date": Command(utils.cmd_date),
    "dd": Command(fileops.cmd_dd),
    "df": Command(files.cmd_df),
    "diff": Command(diff.cmd_diff),
    "dirname": Command(text.cmd_dirname),
    "du": Command(files.cmd_du),
    "echo": Command(text.cmd_echo),
    "env": Command(utils.cmd_env),
    "expr": Command(expr.cmd_expr),
    "false": Command(builtins.cmd_false),
    "find": Command(files.cmd_find),
    "getprop": Command(utils.cmd_getprop),
    "grep": Command(grep.cmd_grep),
    "gunzip": Command(archive.cmd_gzip),
    "gzip": Command(archive.cmd_gzip),
    "head": Command(files.cmd_head),
    "id": Command(utils.cmd_id),
    "kill": Command(procs.cmd_kill),
    "ln": Command(fileops.cmd_ln),
    "ls": Command(files.cmd_ls),
    "md5sum": Command(files.cmd_md5sum),
    "mkdir": Command(fileops.cmd_mkdir),
    "mksh": Command(builtins.cmd_sh),
    "mktemp": Command(fileops.cmd_mktemp),
    "mv": Command(fileops.cmd_mv),
    "nice": Command(utils.cmd_nice),
    "nohup": Command(utils.cmd_nohup),
    "od": Command(binary.cmd_od),
    "pidof": Command(procs.cmd_pidof),
    "pkill": Command(procs.cmd_pkill),
    "printf": Command(text.cmd_printf),
    "ps": Command(procs.cmd_ps),
    "pwd": Command(builtins.cmd_pwd),
    "readlink": Command(files.cmd_realpath),
    "realpath": Command(files.cmd_realpath),
    "rm": Command(fileops.cmd_rm),
    "rmdir": Command(fileops.cmd_rmdir),
    "sed": Command(sed.cmd_sed),
    "seq": Command(text.cmd_seq),
    "sh": Command(builtins.cmd_sh),
    "sha1sum": Command(files.cmd_sha1sum),
    "sha256sum": Command(files.cmd_sha256sum),
    "sleep": Command(utils.cmd_sleep),
    "sort": Command(text.cmd_sort),
    "stat": Command(files.cmd_stat),
    "sync": Command(utils.cmd_sync),
    "tail": Command(files.cmd_tail),
    "tar": Command(archive.cmd_tar),
    "tee": Command(files.cmd_tee),
    "test": Command(utils.cmd_test),
    "time": Command(utils.cmd_time),
    "timeout": Command(utils.cmd_timeout),
    "touch": Command(fileops.cmd_touch),
    "tr": Command(text.cmd_tr),
    "true": Command(builtins.cmd_true),
    "uname": Command(utils.cmd_uname),
    "uniq": Command(text.cmd_uniq),
    "wc": Command(files.cmd_wc),
    "which": Command(builtins.cmd_which),
    "whoami": Command(utils.cmd_whoami),
    "xargs": Command(text.cmd_xargs),
    "yes": Command(text.cmd_yes),
    "zcat": Command(archive.cmd_gzip),
})

# The system image's applet executables (the Sandbox shows them as files: emulator.programs.system_image).
APPLET_PATHS = frozenset(f"/system/bin/{name}" for name, command in COMMANDS.items() if command.applet)
