"""`adb shell` in a terminal: the device's pty (emulator/pty.py) and the interactive shell's line editor.

The tmux tests drive the real adb clients in a real pty; the others feed keys to the device's Pty
directly, for what a terminal makes awkward to check byte by byte.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.lifecycle import RunningDevice
from emulator.pty import Pty
from emulator.services import ShellRequest
from tests.conftest import AdbServer, wait_until
from tests.emulator.test_shell_support import ShellRunner


class _Screen(io.RawIOBase):
    """The host side of the terminal: every byte the device sends, raw."""

    def __init__(self) -> None:
        self.data = b""
        self.changed = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        with self.changed:
            self.data += bytes(data)
            self.changed.notify_all()
        return len(data)

    def shows(self, text: bytes) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.data, timeout=10)


class _Session:
    def __init__(self, sh: ShellRunner, command: str = "") -> None:
        self.screen = _Screen()
        self.pty = Pty(self.screen)
        self.status: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.status.append(sh.shell.run_terminal(self.pty, command)), daemon=True)
        self.thread.start()

    def type(self, keys: bytes, then: bytes) -> None:
        """Type keys and wait until the screen shows `then`."""
        self.pty.feed(keys)
        assert self.screen.shows(then), (then, self.screen.data)

    def ended(self) -> int:
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.status[0]


@pytest.fixture
def terminal(sh: ShellRunner) -> Iterator[_Session]:
    session = _Session(sh)
    assert session.screen.shows(b"panther:/ $ ")  # the pixel profile's ro.product.device
    yield session
    session.pty.end()


def test_services_get_a_pty_as_adbd_decides() -> None:
    # what adb 36 and 29 send with stdin a terminal (`adb shell`, `adb shell -x`, `adb shell -t CMD`) and without
    assert ShellRequest.parse("shell,v2,TERM=xterm,pty:") == ShellRequest("", v2=True, pty=True)
    assert ShellRequest.parse("shell:") == ShellRequest("", v2=False, pty=True)
    assert ShellRequest.parse("shell,v2,TERM=xterm,pty:echo hi") == ShellRequest("echo hi", v2=True, pty=True)
    assert ShellRequest.parse("shell,v2,TERM=xterm,raw:") == ShellRequest("", v2=True, pty=False)
    assert ShellRequest.parse("shell:ls") == ShellRequest("ls", v2=False, pty=False)
    assert ShellRequest.parse("exec:") == ShellRequest("", v2=False, pty=False)


def test_line_editing_keys(terminal: _Session) -> None:
    terminal.type(b"echo abx\x7fc\r", b"\r\nabc\r\n")  # Backspace redraws: \b, the rest, a blank, back
    assert b"echo abx\b \bc\r\n" in terminal.screen.data
    terminal.type(b"garbage\x15echo d\x1b[D\x1b[DX\x01\x06\x05\r", b"sh: echoX: inaccessible or not found\r\n")
    terminal.type(b"echo one; echo two\r", b"127|panther:/ $ echo one; echo two\r\none\r\ntwo\r\n")
    terminal.type(b"if true\r", b"\r\n> ")  # a continuation line gets PS2
    terminal.type(b"then echo y; fi\r", b"y\r\npanther:/ $ ")
    terminal.type(b"ab\x03", b"ab^C\r\n130|panther:/ $ ")  # ^C abandons the line
    terminal.type(b"sh\r", b"sh\r\npanther:/ $ ")  # a shell started on the terminal is interactive there
    terminal.type(b"echo $$; exit 5\r", b"\r\n5|panther:/ $ ")


def test_ctrl_c_ends_the_foreground_job_only(terminal: _Session) -> None:
    terminal.type(b"sleep 100 & bg=$!\r", b"$!\r\npanther:/ $ ")
    terminal.type(b"cat\r", b"cat\r\n")
    terminal.type(b"typed\r", b"typed\r\ntyped\r\n")  # cooked mode: echoed, then cat's copy
    terminal.type(b"\x03", b"^C\r\n130|panther:/ $ ")
    terminal.type(b"kill -0 $bg && echo alive; cat\r", b"alive\r\n")  # ^C reached cat, not the job
    terminal.type(b"x\x04", b"x")  # ^D after text hands the text over without a newline
    terminal.type(b"\x04", b"xpanther:/ $ ")  # ^D on an empty line: cat's end of input
    terminal.type(b"kill $bg; wait $bg; echo $?\r", b"143\r\n")
    terminal.type(b"sleep 100\r\x03", b"sleep 100\r\n^C\r\n130|panther:/ $ ")  # ^C before sleep started: still its


def test_window_size_and_exit(sh: ShellRunner) -> None:
    session = _Session(sh)
    assert session.screen.shows(b"$ ")
    session.pty.resize(50, 132)
    session.type(b"echo $COLUMNS $LINES\r", b"132 50\r\n")
    session.type(b"sleep 100 &\r", b"&\r\npanther:/ $ ")
    session.type(b"\x04", b"")  # ^D on an empty line leaves the shell; its job is hung up, not waited for
    assert session.ended() == 0


def test_a_command_on_a_terminal(sh: ShellRunner) -> None:
    session = _Session(sh, "read a; echo got $a; sleep 100")  # adb shell -t CMD
    session.type(b"word\r", b"word\r\ngot word\r\n")
    session.pty.feed(b"\x03")
    assert session.ended() == 130


def test_adb_shell_in_tmux(server: AdbServer, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    """The real clients (adb 36, adb 29) in a real pty: `adb shell` in a detached tmux session on the
    tests' own adb server, with shell protocol v2 (`shell,v2,TERM=..,pty:`), then the legacy `shell:`
    (`adb shell -x`)."""
    socket = str(tmp_path / "tmux.sock")  # a tmux server of the test's own (its socket goes with tmp_path)

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def start(session: str, *options: str) -> Path:
        """adb in a new tmux session; its exit status lands in the returned file (tmux 3.3 may take
        long to reap a pane's process, so #{pane_dead_status} is no measure of when adb ended)."""
        status = tmp_path / f"{session}.status"
        adb = " ".join([shlex.quote(server.adb), "-s", emulated_pixel.serial, "shell", *options])
        tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-e",
             f"ANDROID_ADB_SERVER_PORT={server.port}", f"{adb}; echo $? >{shlex.quote(str(status))}",
             ";", "set-option", "-g", "exit-empty", "off")  # the server outlives a session that ended
        # capture-pane drops trailing blanks: the prompt is `panther:/ $ `
        wait_until(lambda: screen(session).startswith("panther:/ $\n"), "the prompt")
        return status

    def screen(session: str) -> str:
        return tmux("capture-pane", "-p", "-t", session)

    def typed(session: str, *keys: str, then: str) -> None:
        tmux("send-keys", "-t", session, *keys)
        try:
            wait_until(lambda: then in screen(session), f"{then!r} on the screen")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{screen(session)}") from None

    def exit_status(status: Path) -> str:
        return wait_until(lambda: status.is_file() and status.read_text().strip(), "adb to exit")

    try:
        v2 = start("v2")
        typed("v2", "echo $((6 * 7))", "Enter", then="$ echo $((6 * 7))\n42\npanther:/ $\n")
        typed("v2", "echo abcx", "BSpace", "d", "Enter", then="$ echo abcd\nabcd\n")
        typed("v2", "echo $COLUMNS,$LINES", "Enter", then="\n100,30\n")  # adb sent the window's size
        typed("v2", "sleep 100", "Enter", then="$ sleep 100\n")
        typed("v2", "C-c", then="$ sleep 100\n^C\n130|panther:/ $\n")
        tmux("send-keys", "-t", "v2", "exit 3", "Enter")
        assert exit_status(v2) == "3"  # through shell protocol v2
        legacy = start("legacy", "-x")
        typed("legacy", "echo $((1 + 2))", "Enter", then="$ echo $((1 + 2))\n3\npanther:/ $\n")
        tmux("send-keys", "-t", "legacy", "exit", "Enter")
        exit_status(legacy)  # adb ends when the device closes the stream (v1 carries no exit code)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, timeout=10)
