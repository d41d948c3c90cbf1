"""The device shell's commands (toybox-like output and errors) and its safety: no host program is
ever started, no path leaves the sandbox, native code is refused."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.emulator.test_shell_support import OWNERS, TMP, ShellRunner

# ---- listing and reading -------------------------------------------------------------------


def test_ls_plain_long_and_all(sh: ShellRunner) -> None:
    sh.fs.mkdir(f"{TMP}/d")
    sh.write(f"{TMP}/d/b.bin", b"12345", mode=0o640)
    sh.write(f"{TMP}/d/.dot", b"")
    sh.fs.mkdir(f"{TMP}/d/sub")
    assert sh("ls /data/local/tmp/d").out == "b.bin\nsub\n"
    assert sh("ls -a /data/local/tmp/d").out == ".\n..\n.dot\nb.bin\nsub\n"
    long = sh("cd /data/local/tmp && ls -l d").out.splitlines()
    assert long[0].startswith("total")
    file_fields = long[1].split()
    assert (file_fields[0], file_fields[4], file_fields[-1]) == ("-rw-r-----", "5", "b.bin")
    assert long[2].startswith("drwx") and long[2].endswith(" sub")
    assert sh("ls -ld /data/local/tmp/d/b.bin").out.split()[0] == "-rw-r-----"
    missing = sh("ls /nope /data/local/tmp/d/b.bin")
    assert (missing.status, missing.err) == (1, "ls: /nope: No such file or directory\n")
    assert missing.out == "/data/local/tmp/d/b.bin\n"


def test_ls_of_the_root_shows_the_android_tree(sh: ShellRunner) -> None:
    names = sh("ls /").out.split()
    assert {"data", "sdcard", "system", "vendor"} <= set(names)


def test_stat_and_ls_report_the_same_owners_as_sync(sh: ShellRunner) -> None:
    sh.write("/sdcard/x", b"x")
    for path, ids in OWNERS.items():
        assert sh(f"stat -c '%u %g' {path}").out.split() == [str(i) for i in ids], path
    assert sh("stat -c '%U:%G' /sdcard/x /system/bin/sh").out.split() == ["shell:sdcard_rw", "root:shell"]
    assert sh("ls -l /sdcard/x").out.split()[2:4] == ["shell", "sdcard_rw"]


def test_cat_head_tail_wc(sh: ShellRunner) -> None:
    lines = "".join(f"line{n}\n" for n in range(1, 21)).encode()
    sh.write(f"{TMP}/l.txt", lines)
    assert sh("cat /data/local/tmp/l.txt").out == lines.decode()
    assert sh("head -n 2 /data/local/tmp/l.txt").out == "line1\nline2\n"
    assert sh("head -3 /data/local/tmp/l.txt | tail -n 1").out == "line3\n"
    assert sh("tail -n 2 /data/local/tmp/l.txt").out == "line19\nline20\n"
    assert sh("tail -n +20 /data/local/tmp/l.txt").out == "line20\n"
    assert sh("head -c 4 /data/local/tmp/l.txt").out == "line"
    assert sh("wc -l /data/local/tmp/l.txt").out == "20 /data/local/tmp/l.txt\n"
    assert sh("wc -c < /data/local/tmp/l.txt").out == f"{len(lines)}\n"
    assert sh("cat /data/local/tmp/l.txt | wc -l").out == "20\n"
    missing = sh("cat /nope")
    assert (missing.status, missing.err) == (1, "cat: /nope: No such file or directory\n")
    assert sh("cat /data/local/tmp").err == "cat: /data/local/tmp: Is a directory\n"


def test_hashes_match_hashlib(sh: ShellRunner) -> None:
    data = os.urandom(300_000)
    sh.write(f"{TMP}/blob", data)
    assert sh("md5sum /data/local/tmp/blob").out == f"{hashlib.md5(data).hexdigest()}  /data/local/tmp/blob\n"
    assert sh("cd /data/local/tmp; sha256sum blob").out == f"{hashlib.sha256(data).hexdigest()}  blob\n"
    assert sh("sha256sum", stdin=b"abc").out == f"{hashlib.sha256(b'abc').hexdigest()}  -\n"
    assert sh("sha256sum /nope").status == 1


def test_grep(sh: ShellRunner) -> None:
    text = b"alpha\nBeta\ngamma beta\n"
    assert sh("grep beta", stdin=text).out == "gamma beta\n"
    assert sh("grep -i beta", stdin=text).out == "Beta\ngamma beta\n"
    assert sh("grep -c a", stdin=text).out == "3\n"
    assert sh("grep -v m", stdin=text).out == "alpha\nBeta\n"
    assert sh("grep -q zeta", stdin=text).status == 1
    assert sh("grep -E '^(al|ga)'", stdin=text).out == "alpha\ngamma beta\n"
    assert sh("getprop | grep -F '[ro.product.model]'").out == "[ro.product.model]: [Pixel 7]\n"


# ---- changing files ------------------------------------------------------------------------


def test_mkdir_and_its_errors(sh: ShellRunner) -> None:
    assert sh("mkdir -p /data/local/tmp/a/b/c && test -d /data/local/tmp/a/b/c").status == 0
    ro = sh("mkdir /system/x")
    assert (ro.status, ro.err) == (1, "mkdir: '/system/x': Read-only file system\n")
    assert sh("mkdir /data/local/tmp/a").err == "mkdir: '/data/local/tmp/a': File exists\n"
    assert sh("mkdir /data/local/tmp/no/such").err == "mkdir: '/data/local/tmp/no/such': No such file or directory\n"
    assert sh("mkdir /data/x").err == "mkdir: '/data/x': Permission denied\n"
    assert sh("mkdir -m 700 /data/local/tmp/m && stat -c %a /data/local/tmp/m").out == "700\n"


def test_rm_files_and_folders(sh: ShellRunner) -> None:
    sh("mkdir -p /data/local/tmp/t/sub && touch /data/local/tmp/t/f /data/local/tmp/t/sub/g")
    refused = sh("rm /data/local/tmp/t")
    assert (refused.status, refused.err) == (1, "rm: /data/local/tmp/t: Is a directory\n")
    assert sh("rm /data/local/tmp/t/f && test ! -e /data/local/tmp/t/f").status == 0
    assert sh("rm /data/local/tmp/gone").err == "rm: /data/local/tmp/gone: No such file or directory\n"
    assert sh("rm -f /data/local/tmp/gone").status == 0
    assert sh("rm -rf /data/local/tmp/t").status == 0 and not sh.fs.exists(f"{TMP}/t")
    assert sh("rm /system/bin/ls").err == "rm: /system/bin/ls: Read-only file system\n"
    sh.image_file("/system/etc/hosts", b"127.0.0.1 localhost\n", mode=0o644)
    assert sh("rm /system/etc/hosts").err == "rm: /system/etc/hosts: Read-only file system\n"
    assert sh("rmdir /data/local/tmp/none").status == 1


def test_cp_and_mv(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/src.txt", b"payload", mode=0o755)
    sh("mkdir /data/local/tmp/into")
    assert sh("cd /data/local/tmp && cp src.txt copy.txt && cp src.txt into && mv copy.txt moved.txt").status == 0
    assert sh.read(f"{TMP}/into/src.txt") == b"payload" and sh.read(f"{TMP}/moved.txt") == b"payload"
    assert not sh.fs.exists(f"{TMP}/copy.txt")
    assert sh("stat -c %a /data/local/tmp/into/src.txt").out == "755\n"
    sh("mkdir -p /data/local/tmp/tree/a && echo deep > /data/local/tmp/tree/a/f")
    assert sh("cp /data/local/tmp/tree /data/local/tmp/t2").status == 1
    assert sh("cp -r /data/local/tmp/tree /data/local/tmp/t2 && cat /data/local/tmp/t2/a/f").out == "deep\n"
    assert sh("mv /data/local/tmp/moved.txt /data/local/tmp/into && ls /data/local/tmp/into").out == (
        "moved.txt\nsrc.txt\n")
    assert sh("cp /data/local/tmp/src.txt /system/x").err == "cp: /system/x: Read-only file system\n"
    moved = sh("mv /data/local/tmp/nope /data/local/tmp/x")
    assert moved.err == "mv: /data/local/tmp/nope: No such file or directory\n"


def test_ln_makes_hard_links_that_cost_no_storage(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/blob", b"x" * 1000, mode=0o755)
    used = sh.fs.used_bytes()
    assert sh(f"mkdir {TMP}/job && ln {TMP}/blob {TMP}/job/run.sh && stat -c '%i %h %s' {TMP}/blob").status == 0
    inode, links, size = sh(f"stat -c '%i %h %s' {TMP}/job/run.sh").out.split()
    assert sh(f"stat -c %i {TMP}/blob").out.split() == [inode] and (links, size) == ("2", "1000")
    assert sh.fs.used_bytes() == used  # one file, two names
    assert sh(f"echo changed > {TMP}/job/run.sh && cat {TMP}/blob").out == "changed\n"  # the same file
    assert sh(f"ln {TMP}/blob {TMP}/job/run.sh").err == f"ln: {TMP}/job/run.sh: File exists\n"
    sh.write(f"{TMP}/other", b"other")
    assert sh(f"ln -f {TMP}/other {TMP}/job/run.sh && cat {TMP}/job/run.sh").out == "other"
    # removing one name frees nothing while another holds the file; removing the last frees it
    sh.write(f"{TMP}/big", b"y" * 5000)
    assert sh(f"ln {TMP}/big {TMP}/big2").status == 0
    before = sh.fs.used_bytes()
    sh(f"rm {TMP}/big")
    assert sh.fs.used_bytes() == before
    sh(f"rm {TMP}/big2")
    assert sh.fs.used_bytes() == before - 5000
    # no hard links to or into the system image
    assert sh(f"ln /system/bin/sh {TMP}/sh").status == 1
    assert sh(f"ln {TMP}/blob /system/bin/x").err == "ln: /system/bin/x: Read-only file system\n"


def test_symbolic_links(sh: ShellRunner) -> None:
    sh(f"mkdir -p {TMP}/d && echo hi >{TMP}/d/f")
    made = sh(f"cd {TMP} && ln -s d/f lf && ln -s /proc/cpuinfo cpu && ln -s {TMP}/d ld && ln -s gone dangling")
    assert (made.status, made.err) == (0, "")
    assert sh(f"cd {TMP} && ls -l lf | cut -d' ' -f1,5,8-").out == "lrwxrwxrwx 3 lf -> d/f\n"
    assert sh(f"cd {TMP} && cat lf ld/f && head -1 cpu && readlink lf && realpath ld/f").out == (
        f"hi\nhi\nprocessor\t: 0\nd/f\n{TMP}/d/f\n")
    assert sh(f"cd {TMP} && stat -c %s ld/f && find . -type l | sort").out == "3\n./cpu\n./dangling\n./ld\n./lf\n"
    assert sh(f"cd {TMP} && ls -d ld/ && rm ld dangling && ls d").out == "ld/\nf\n"  # rm takes the links only
    # through a link as through its target: a read-only area stays read-only, a loop ends
    assert sh(f"ln -s /system/bin/sh {TMP}/sh && echo x >{TMP}/sh").err == (
        f"/system/bin/sh: can't create {TMP}/sh: Read-only file system\n")
    assert sh(f"ln -s a {TMP}/b && ln -s b {TMP}/a && cat {TMP}/a").err == (
        f"cat: {TMP}/a: Too many symbolic links encountered\n")
    assert sh("ln -s x /system/bin/y").err == "ln: /system/bin/y: Read-only file system\n"


@pytest.mark.parametrize(
    ("spec", "before", "after"),
    [("755", 0o644, "755"), ("+x", 0o644, "755"), ("u+x", 0o644, "744"), ("go-r", 0o644, "600"),
     ("go=r", 0o777, "744"), ("u=rwx,g=rx,o=", 0o600, "750"), ("0600", 0o777, "600")],
)
def test_chmod_modes(spec: str, before: int, after: str, sh: ShellRunner) -> None:
    sh.write(f"{TMP}/m", b"x", mode=before)
    result = sh(f"chmod {spec} /data/local/tmp/m && stat -c %a /data/local/tmp/m")
    assert (result.out, result.err) == (after + "\n", "")


def test_owner_bits_a_chmod_takes_away_show_and_hold(sh: ShellRunner, tmp_path: Path) -> None:
    """The host file keeps its owner's read and write (the device manages its own tree), the device
    reports and enforces the bits its chmod gave: `ls -ld`, `stat`, a write to a read-only file."""
    listing = sh(f"cd {TMP} && mkdir d && chmod 500 d && touch f && chmod 444 f && ls -ld d f | cut -c1-10")
    assert listing.out == "dr-x------\n-r--r--r--\n"
    assert sh(f"echo x >{TMP}/f").err == f"/system/bin/sh: can't create {TMP}/f: Permission denied\n"
    assert sh(f"chmod 0 {TMP}/f && cat {TMP}/f; stat -c %A {TMP}/f").out == "----------\n"
    assert sh(f"ln {TMP}/f {TMP}/g && mv {TMP}/g {TMP}/h && stat -c %a {TMP}/h").out == "0\n"  # one inode's mode
    restarted = ShellRunner(tmp_path)  # the same storage after a restart
    assert restarted(f"stat -c %a {TMP}/f {TMP}/d; chmod 640 {TMP}/f && echo y >{TMP}/f && cat {TMP}/f").out == (
        "0\n500\ny\n")
    restarted.close()


def test_chmod_errors(sh: ShellRunner) -> None:
    assert sh("chmod 755 /data/local/tmp/none").err == "chmod: /data/local/tmp/none: No such file or directory\n"
    assert sh("chmod q+z /data/local/tmp").err == "chmod: bad mode 'q+z'\n"
    assert sh("chmod 755 /system/bin").err == "chmod: /system/bin: Read-only file system\n"


def test_touch_and_stat(sh: ShellRunner) -> None:
    assert sh("touch /data/local/tmp/new && stat -c '%s %a %n %F' /data/local/tmp/new").out == (
        "0 644 /data/local/tmp/new regular empty file\n")
    sh.write(f"{TMP}/five", b"12345")
    assert sh("stat -c %s /data/local/tmp/five").out == "5\n"
    full = sh("stat /data/local/tmp/five").out
    assert "File: '/data/local/tmp/five'" in full and "Size: 5" in full and "(644/-rw-r--r--)" in full
    assert sh("stat /nope").err == "stat: /nope: No such file or directory\n"
    assert sh("touch /system/x").err == "touch: '/system/x': Read-only file system\n"


def test_df_reports_the_quota(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/mb", b"\0" * (3 * 1024 * 1024))
    lines = sh("df").out.splitlines()
    assert lines[0].split()[:2] == ["Filesystem", "1K-blocks"]
    rows = {line.split()[-1]: line.split() for line in lines[1:]}
    assert set(rows) == {"/data", "/sdcard"}
    size, used, available = (int(v) for v in rows["/data"][1:4])
    assert size == sh.fs.quota_bytes // 1024
    assert used >= 3 * 1024 and used + available <= size
    assert [line.split()[-1] for line in sh("df /data/local/tmp").out.splitlines()[1:]] == ["/data"]
    assert "G" in sh("df -h /sdcard").out.splitlines()[1].split()[1]


def test_writing_past_the_quota_fails_cleanly(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/big", b"x" * 10_000)
    sh.fs.quota_bytes = sh.fs.used_bytes() + 4_000
    result = sh("cat /data/local/tmp/big > /data/local/tmp/copy; echo $?")
    assert result.out == "1\n" and "No space left on device" in result.err
    assert sh("echo small > /data/local/tmp/ok && cat /data/local/tmp/ok").out == "small\n"


def test_tee_writes_a_copy(sh: ShellRunner) -> None:
    assert sh("echo hi | tee /data/local/tmp/t1").out == "hi\n"
    assert sh.read(f"{TMP}/t1") == b"hi\n"


# ---- finding -------------------------------------------------------------------------------


def test_find(sh: ShellRunner) -> None:
    sh("mkdir -p /data/local/tmp/f/Result_0 /data/local/tmp/f/Result_1 && cd /data/local/tmp/f && "
       "touch Result_0/out.raw Result_1/out.raw notes.txt")
    assert sh("find /data/local/tmp/f -name '*.raw' -type f").out == (
        "/data/local/tmp/f/Result_0/out.raw\n/data/local/tmp/f/Result_1/out.raw\n")
    assert sh("cd /data/local/tmp/f && find . -type d").out == ".\n./Result_0\n./Result_1\n"
    assert sh("find /data/local/tmp/f -maxdepth 1 -type f").out == "/data/local/tmp/f/notes.txt\n"
    assert sh("find /data/local/tmp/f -mindepth 2 | wc -l").out == "2\n"
    assert sh("find /nope").err == "find: /nope: No such file or directory\n"
    assert sh("find /data/local/tmp/f -bogus x").status == 1


# ---- text and system information ------------------------------------------------------------


def test_echo_and_printf(sh: ShellRunner) -> None:
    assert sh("echo -n a; echo b").out == "ab\n"
    assert sh(r"echo 'a\tb'; echo -E 'a\tb'").out == "a\tb\na\\tb\n"
    assert sh(r"printf '%s=%d %5.2f|%-3s|%x %%\n' n 42 3.14159 ab 255").out == "n=42  3.14|ab |ff %\n"
    assert sh("printf '%s,' a b c").out == "a,b,c,"
    bad = sh("printf '%d|%s\\n' abc x")
    assert (bad.status, bad.out, bad.err) == (1, "0|x\n", "printf: invalid number 'abc'\n")
    assert sh(r"printf '%b|%c|%5.1e\n' 'a\tb' xyz 1234.5").out == "a\tb|x|1.2e+03\n"


def test_test_operators(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/f", b"x")
    sh.write(f"{TMP}/empty", b"")
    checks = {
        "[ a = a ]": 0, "[ a != a ]": 1, "[ -z '' ]": 0, "[ -n '' ]": 1, "[ abc ]": 0, "[ '' ]": 1,
        "[ 3 -gt 2 ]": 0, "[ 3 -le 2 ]": 1, "[ -f /data/local/tmp/f ]": 0, "[ -d /data/local/tmp/f ]": 1,
        "[ -s /data/local/tmp/empty ]": 1, "[ -e /nope ]": 1, "[ ! -e /nope ]": 0,
        "[ -w /data/local/tmp/f ]": 0, "[ -w /system/bin ]": 1, "[ -x /data/local/tmp/f ]": 1,
        "test -d /data -a -d /system": 0, "test -d /nope -o -d /system": 0, "[ \\( 1 -eq 1 \\) ]": 0,
        "[ x -eq 1 ]": 2, "[ a = a": 2, "test": 1,
    }
    statuses = {command: sh(command).status for command in checks}
    assert statuses == checks


def test_getprop_identity(sh: ShellRunner) -> None:
    lines = sh("getprop").out.splitlines()
    assert "[ro.product.model]: [Pixel 7]" in lines and "[ro.product.cpu.abi]: [arm64-v8a]" in lines
    keys = [line.split("]")[0] for line in lines]
    assert keys == sorted(keys)
    assert sh("getprop ro.product.manufacturer").out == "Google\n"
    assert sh("getprop no.such.prop").out == "\n"
    assert sh("getprop no.such.prop fallback").out == "fallback\n"
    assert sh("getprop ro.serialno").out == sh.device.props["ro.serialno"] + "\n"


def test_uname_id_basename_dirname(sh: ShellRunner) -> None:
    assert sh("uname -m").out == "aarch64\n"
    assert sh("uname").out == "Linux\n"
    assert sh("uname -a").out.split()[-1] == "aarch64"
    assert sh("id").out.startswith("uid=2000(shell) gid=2000(shell)")
    assert sh("id -un").out == "shell\n"
    assert sh("basename /a/b/c.raw; basename /a/b/c.raw .raw; basename /a/b/; dirname /a/b/c; dirname c").out == (
        "c.raw\nc\nb\n/a/b\n.\n")
    sh.device.props["ro.product.cpu.abilist"] = "x86_64"
    assert sh("uname -m").out == "x86_64\n"


def test_sleep_and_unknown_options(sh: ShellRunner) -> None:
    assert sh("sleep 0.01 && echo ok").out == "ok\n"
    assert sh("sleep abc").err == "sleep: bad time 'abc'\n"
    assert sh("ls -Z /").err == "ls: Unknown option 'Z'\n"


# ---- safety --------------------------------------------------------------------------------

HOST_STARTERS = [
    (subprocess, "Popen"), (os, "system"), (os, "popen"), (os, "fork"), (os, "forkpty"),
    (os, "posix_spawn"), (os, "posix_spawnp"),
    *[(os, name) for name in dir(os) if name.startswith(("exec", "spawn"))],
]


@pytest.fixture
def host_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way Python starts a host program, patched to record the attempt and refuse it."""
    attempts: list[str] = []

    def refuse(name: str):
        def starter(*args: object, **kwargs: object) -> None:
            attempts.append(f"{name}{args!r}")
            raise AssertionError(f"the shell tried to start a host program via {name}")

        return starter

    for module, name in HOST_STARTERS:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refuse(name))
    return attempts


def test_no_host_program_is_ever_started(sh: ShellRunner, host_starts: list[str], tmp_path: Path) -> None:
    host_ls = "/bin/ls"
    sh.write(f"{TMP}/calls-host.sh", f"#!/system/bin/sh\n{host_ls} /\n/usr/bin/python3 -c 1\n".encode(), mode=0o755)
    sh.write(f"{TMP}/bash.sh", b"#!/bin/bash\necho bash\n", mode=0o755)
    battery = {
        "ls / >/dev/null": 0,
        "sh -c 'ls /' >/dev/null": 0,
        "/system/bin/ls / >/dev/null": 0,
        "/bin/ls": 127,
        "/usr/bin/env": 127,
        "python3 -c 'print(1)'": 127,
        "bash -c true": 127,
        "su -c id": 127,
        "toybox ls": 127,
        "env python3": 127,
        "command python3": 127,
        "exec /bin/sh": 127,
        "$(which python3) -V": 127,
        f"{tmp_path}/sandbox/system/bin/x": 127,
        "/data/local/tmp/calls-host.sh": 127,
        "/data/local/tmp/bash.sh": 127,
        "PATH=/usr/bin:/bin python3": 127,
    }
    statuses = {command: sh(command).status for command in battery}
    assert statuses == battery
    assert host_starts == []


def test_escape_attempts_stay_in_the_sandbox(sh: ShellRunner, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    result = sh("cd ../../..; pwd; cat etc/passwd; cat /etc/passwd; cat /data/local/tmp/../../../../../etc/passwd")
    assert result.out == "/\n"
    assert result.err.count("No such file or directory") == 3
    assert "host secret" not in sh(f"cat {secret}; cat ../secret.txt; cat /../secret.txt").out
    assert sh("ls /..").out == sh("ls /").out
    os.symlink(secret, sh.fs.root / "data/local/tmp/link")
    followed = sh("cat /data/local/tmp/link")
    assert followed.out == "" and followed.err == "cat: /data/local/tmp/link: Permission denied\n"
    assert sh("echo pwned > /data/local/tmp/link").status == 1
    assert secret.read_text() == "host secret"
    assert sh("cd /data/local/tmp && echo x > ../../../../x.txt").status == 1
    assert not (tmp_path / "x.txt").exists() and not (sh.fs.root / "x.txt").exists()


def _elf(machine: int, bits: int = 64) -> bytes:
    header = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1, 1]) + b"\0" * 9
    return header + struct.pack("<HHI", 2, machine, 1) + b"\0" * 40


def test_native_binaries_are_refused_naming_their_arch(sh: ShellRunner, host_starts: list[str]) -> None:
    sh.write(f"{TMP}/x86", _elf(62), mode=0o755)
    sh.write(f"{TMP}/arm64", _elf(183), mode=0o755)
    sh.write(f"{TMP}/arm32", _elf(40, bits=32), mode=0o755)
    foreign = sh("cd /data/local/tmp && ./x86")
    assert foreign.status == 126
    assert foreign.err.startswith("/system/bin/sh: ./x86: not executable: 64-bit ELF file (x86-64;")
    native = sh("/data/local/tmp/arm64 --container m.onnx")
    assert native.status == 126
    assert "aarch64" in native.err and "/system/bin/edgeloop-net-run" in native.err
    assert "32-bit ELF file (arm;" in sh("/data/local/tmp/arm32").err
    assert host_starts == []


def test_text_tools(sh: ShellRunner) -> None:
    assert sh("printf 'b 2\\na 10\\nc 1\\n' | sort").out == "a 10\nb 2\nc 1\n"
    assert sh("printf 'b 2\\na 10\\nc 1\\n' | sort -k2 -n -r").out == "a 10\nb 2\nc 1\n"
    assert sh("printf 'x,3\\ny,1\\nx,3\\n' | sort -u -t, -k2").out == "y,1\nx,3\n"
    assert sh("printf 'x\\nx\\ny\\n' | uniq; printf 'x\\nx\\ny\\n' | uniq -c").out == "x\ny\n      2 x\n      1 y\n"
    assert sh("echo Hello | tr a-z A-Z; echo hello | tr -d l; echo a.b | tr . '\\n'").out == "HELLO\nheo\na\nb\n"
    assert sh("echo a:b:c | cut -d: -f2,3; echo a:b:c | cut -d : -f 1; echo abcdef | cut -c 2-4").out == (
        "b:c\na\nbcd\n")
    assert sh("echo a b c | xargs -n 2 echo item").out == "item a b\nitem c\n"
    assert sh("echo a b | xargs").out == "a b\n"
    assert sh("seq 3; seq 2 4 | wc -l; seq 10 -3 1 | tr '\\n' ,").out == "1\n2\n3\n3\n10,7,4,1,"
    assert sh("seq 25000 | tail -n 1").out == "25000\n"
    assert sh("printf '%*d|%1000000000s' 4 7 x | wc -c").out == f"{4 + 1 + (1 << 20)}\n"  # widths are capped


def test_date_mktemp_realpath_du(sh: ShellRunner) -> None:
    before = int(time.time())
    stamp = int(sh("date +%s").out)
    assert before <= stamp <= time.time() + 1
    assert sh("date -u +%Y").out == time.strftime("%Y\n", time.gmtime())
    made = sh("mktemp").out.strip()
    assert made.startswith("/data/local/tmp/tmp.") and sh.fs.is_file(made)
    assert sh(f"stat -c %a {made}").out == "600\n"
    folder = sh("mktemp -d -p /sdcard run.XXXXXX").out.strip()
    assert folder.startswith("/sdcard/run.") and sh.fs.is_dir(folder) and len(folder) == len("/sdcard/run.XXXXXX")
    assert sh("mktemp -p /system").status == 1
    assert sh("cd /data/local/tmp && realpath ../tmp/./ /").out == "/data/local/tmp\n/\n"
    assert sh("readlink -f /data/local/../local/tmp").out == "/data/local/tmp\n"
    assert sh("realpath /nope").status == 1
    sh.fs.mkdir(f"{TMP}/k")
    sh.write(f"{TMP}/k/a", b"x" * 3000)
    assert sh("du -s /data/local/tmp/k").out == "3\t/data/local/tmp/k\n"


def test_time_nohup_whoami(sh: ShellRunner) -> None:
    timed = sh("time sleep 0.05")
    real = timed.err.split()[0]
    assert timed.status == 0 and real.startswith("0m") and 0.05 <= float(real[2:-1]) < 5
    assert sh("nohup echo hi; whoami; sync && echo synced").out == "hi\nshell\nsynced\n"
    assert sh("time false").status == 1
