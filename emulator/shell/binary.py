"""toybox's commands for binary data: base64, od and cmp, with their output layouts."""

from __future__ import annotations

import base64
import binascii

from emulator.shell.builtins import Invocation, UsageError, getopt, read_operands

_ADDRESS = {"o": "%07o", "d": "%07d", "x": "%06x", "n": ""}
_C_NAMES = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def cmd_base64(inv: Invocation) -> int:
    """base64 [-d] [-w COLUMNS] [FILE]: lines of 76 by default (-w 0: one line)."""
    opts = getopt(inv.args, "di", "w")
    (_name, data), *_ = read_operands(inv, opts.operands[:1])
    if data is None:
        return 1
    if "d" in opts.flags:
        try:
            inv.out(base64.b64decode(b"".join(data.split()), validate=False))
        except (binascii.Error, ValueError):
            inv.err("bad input")
            return 1
        return 0
    encoded = base64.b64encode(data).decode()
    width = opts.number("w", 76)
    lines = [encoded[k : k + width] for k in range(0, len(encoded), width)] if width else [encoded]
    inv.out("".join(f"{line}\n" for line in lines if line) or "")
    return 0


def _od_item(kind: str, size: int, chunk: bytes) -> str:
    if kind == "c":
        byte = chunk[0]
        text = _C_NAMES.get(byte) or (chr(byte) if 32 <= byte < 127 else f"{byte:03o}")
        return f"{text:>4}"
    value = int.from_bytes(chunk.ljust(size, b"\0"), "little", signed=kind == "d")
    digits = {"x": 2 * size, "o": {1: 3, 2: 6, 4: 11, 8: 22}[size]}.get(kind)
    if digits is not None:
        return (" " if kind == "x" else "  " if size > 1 else " ") + format(value, f"0{digits}{kind}")
    width = {1: 4, 2: 6, 4: 11, 8: 20}[size] + (kind == "d")
    return f"{value:>{width}}"


def cmd_od(inv: Invocation) -> int:
    """od [-A o|d|x|n] [-t TYPE] [FILE...]: TYPE x, o, d, u with a size (1 2 4 8) or c; octal words
    by default; 16 bytes a line."""
    opts = getopt(inv.args, "bcdox", "AtjN")
    radix = opts.last("A", "o") or "o"
    spec = opts.last("t", "c" if "c" in opts.flags else "x1" if "x" in opts.flags else "o2") or "o2"
    if radix not in _ADDRESS or spec[0] not in "xoduc":
        raise UsageError(f"bad -A or -t: {radix} {spec}")
    kind, size = spec[0], int(spec[1:] or (1 if spec[0] == "c" else 4))
    data = b"".join(content or b"" for _name, content in read_operands(inv, opts.operands))
    data = data[opts.number("j", 0):]
    if "N" in opts.values:
        data = data[: opts.number("N", 0)]
    for offset in range(0, len(data), 16):
        line = data[offset : offset + 16]
        items = "".join(_od_item(kind, size, line[k : k + size]) for k in range(0, len(line), size))
        inv.out((_ADDRESS[radix] % offset if radix != "n" else "") + items + "\n")
    if radix != "n":
        inv.out(_ADDRESS[radix] % len(data) + "\n")
    return 0


def cmd_cmp(inv: Invocation) -> int:
    """cmp [-s] [-l] FILE1 FILE2: 0 when equal, 1 (with where) when not, 2 when one cannot be read."""
    opts = getopt(inv.args, "sl")
    if len(opts.operands) != 2:
        raise UsageError("needs 2 arguments")
    (first, a), (second, b) = read_operands(inv, opts.operands)
    if a is None or b is None:
        return 2
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            if "l" in opts.flags:
                inv.out("".join(f"{n + 1} {p:o} {q:o}\n" for n, (p, q) in enumerate(zip(a, b, strict=False)) if p != q))
            elif "s" not in opts.flags:
                line = a[:k].count(b"\n") + 1
                inv.out(f"{first} {second} differ: byte {k + 1}, line {line}\n")
            return 1
    if len(a) != len(b):
        if "s" not in opts.flags:
            inv.err(f"EOF on {first if len(a) < len(b) else second}")
        return 1
    return 0
