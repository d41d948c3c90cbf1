"""The interactive shell's line editor: the basics of mksh's emacs mode, which is what `adb shell`
in a terminal meets on a phone.

Keys: printable characters insert at the cursor, Backspace (^? or ^H) deletes before it, ^D deletes
under it (on an empty line it ends the shell), ^U clears the line, Left/Right (or ^B/^F) and
Home/End (or ^A/^E) move, Enter runs the line, ^C abandons it (`^C`, then a new prompt; `$?` is 130).
Other control keys and escape sequences are ignored. A line longer than the terminal is not wrapped
by the editor (mksh scrolls it sideways; here the terminal wraps it and the cursor keys misplace).
"""

from __future__ import annotations

import codecs

from emulator.pty import EOF, ERASE, KILL, Pty

ESC = "\x1b"
ERASE_KEYS = tuple(map(chr, ERASE))
MOVES = {"\x02": "left", "\x06": "right", "\x01": "home", "\x05": "end",
         "\x1b[D": "left", "\x1b[C": "right", "\x1b[H": "home", "\x1b[F": "end", "\x1b[1~": "home",
         "\x1b[4~": "end", "\x1bOD": "left", "\x1bOC": "right", "\x1bOH": "home", "\x1bOF": "end"}


class Interrupted(Exception):
    """^C while a line was being edited."""


class LineEditor:
    def __init__(self, pty: Pty) -> None:
        self.pty = pty
        self._decode = codecs.getincrementaldecoder("utf-8")("replace")

    def read_line(self, prompt: str) -> str | None:
        """The line typed after `prompt`; None for ^D on an empty line or once the host has gone."""
        self._out(prompt)
        line: list[str] = []
        at = 0
        with self.pty.raw_mode():
            while (key := self._key()) is not None:
                if key in ("\r", "\n"):
                    self._out("\n")
                    return "".join(line)
                if key == "\x03":
                    self._out("^C\n")
                    raise Interrupted
                if key == chr(EOF) and not line:
                    return None
                at = self._edit(key, line, at)
        return None

    def _edit(self, key: str, line: list[str], at: int) -> int:
        """Apply one key to the line with the cursor at `at`, redrawing what changed; the new cursor."""
        move = MOVES.get(key)
        if move is not None:
            target = {"left": max(at - 1, 0), "right": min(at + 1, len(line)), "home": 0, "end": len(line)}[move]
            self._out("\b" * (at - target) if target < at else "".join(line[at:target]))
            return target
        delete = key == chr(EOF)  # ^D: the character under the cursor
        if key in ERASE_KEYS:  # the one before it
            if not at:
                return at
            at, delete = at - 1, True
            self._out("\b")
        if delete:
            if at < len(line):
                del line[at]
                self._redraw(line, at, at, blank=1)
        elif key == chr(KILL):
            self._out("\b" * at)
            blank, at = len(line), 0
            line.clear()
            self._redraw(line, 0, 0, blank)
        elif key >= " " and not key.startswith(ESC):
            line.insert(at, key)
            self._redraw(line, at, at + 1, blank=0)
            at += 1
        return at

    def _redraw(self, line: list[str], start: int, cursor: int, blank: int) -> None:
        """Rewrite the line from `start` (blanking `blank` old cells past its end), then put the cursor at `cursor`."""
        self._out("".join(line[start:]) + " " * blank + "\b" * (len(line) + blank - cursor))

    def _key(self) -> str | None:
        """One key: a character (UTF-8 decoded) or a whole escape sequence; None at the end of input."""
        while True:
            byte = self.pty.input.read(1)
            if not byte:
                return None
            char = self._decode.decode(byte)
            if char == ESC:
                return self._escape()
            if char:
                return char

    def _escape(self) -> str:
        sequence = ESC
        while True:
            byte = self.pty.input.read(1)
            if not byte:
                return sequence
            sequence += chr(byte[0])
            if len(sequence) == 2 and sequence[1] not in "[O":
                return sequence
            if len(sequence) > 2 and 0x40 <= byte[0] <= 0x7E:
                return sequence

    def _out(self, text: str) -> None:
        self.pty.output.write(text.encode("utf-8"))
