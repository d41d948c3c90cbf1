"""Native code on the emulated device: recognise ELF files by their header and refuse them the way
Android's shell does, naming the architecture, because the emulator never runs native code.
"""

from __future__ import annotations

import struct

NETRUN = "/system/bin/edgeloop-net-run"

# e_machine values from the ELF specification and the names `uname -m` / `file` use for them.
_MACHINES = {3: "x86", 8: "mips", 40: "arm", 62: "x86-64", 164: "hexagon", 183: "aarch64", 243: "riscv"}
# Android ABI -> (e_machine, ELF class bits, uname -m)
ABIS = {
    "arm64-v8a": (183, 64, "aarch64"),
    "armeabi-v7a": (40, 32, "armv8l"),
    "armeabi": (40, 32, "armv7l"),
    "x86_64": (62, 64, "x86_64"),
    "x86": (3, 32, "i686"),
    "riscv64": (243, 64, "riscv64"),
}


def device_abis(props: dict[str, str]) -> list[str]:
    """The ABIs a device runs, primary first (`ro.product.cpu.abilist`, else `ro.product.cpu.abi`)."""
    listed = [a for a in props.get("ro.product.cpu.abilist", "").split(",") if a]
    return listed or [props.get("ro.product.cpu.abi", "arm64-v8a")]


def uname_machine(props: dict[str, str]) -> str:
    return ABIS.get(device_abis(props)[0], (0, 0, "aarch64"))[2]


def elf_refusal(head: bytes, props: dict[str, str]) -> str | None:
    """The shell's message for running this file when it is an ELF binary, else None."""
    if len(head) < 20 or not head.startswith(b"\x7fELF"):
        return None
    bits = {1: 32, 2: 64}.get(head[4], 0)
    endian = "<" if head[5] != 2 else ">"
    (machine,) = struct.unpack_from(endian + "H", head, 18)
    arch = _MACHINES.get(machine, f"machine {machine}")
    runnable = {(ABIS[a][0], ABIS[a][1]) for a in device_abis(props) if a in ABIS}
    if (machine, bits) in runnable:
        return f"can't execute: the emulated device runs no native code ({bits}-bit {arch} ELF); use {NETRUN}"
    return f"not executable: {bits}-bit ELF file ({arch}; this device runs {', '.join(device_abis(props))})"
