"""The device's system properties: the profile's, completed with what a booted phone of that build has.

Boot-wait loops poll `sys.boot_completed`; tools read the build's identity (fingerprint, id, type)
and whether it is a user build (`ro.secure`, `ro.debuggable`). Every derived value is a default:
a profile that sets the property keeps its own.
"""

from __future__ import annotations

import hashlib

from deploy.profiles import Profile
from emulator.image.hardware import build_id


def build_props(profile: Profile, serialno: str, *, secure: bool) -> dict[str, str]:
    """Every property `getprop` lists, for a device of this profile that has finished booting."""
    given = profile.props
    sdk = given.get("ro.build.version.sdk", "34")
    build_type = given.get("ro.build.type", "user")
    ident = build_id(sdk)
    stamp = ident.split(".")[1]  # yymmdd
    incremental = str(int(hashlib.sha256(profile.name.encode()).hexdigest()[:8], 16) % 10**8).zfill(8)
    tags = "release-keys" if build_type == "user" else "dev-keys"
    brand, name, device = (given.get(f"ro.product.{k}", "generic") for k in ("brand", "name", "device"))
    release = given.get("ro.build.version.release", "14")
    fingerprint = f"{brand}/{name}/{device}:{release}/{ident}/{incremental}:{build_type}/{tags}"
    derived = {
        "sys.boot_completed": "1",
        "dev.bootcomplete": "1",
        "init.svc.bootanim": "stopped",
        "init.svc.adbd": "running",
        "ro.build.id": ident,
        "ro.build.display.id": ident,
        "ro.build.version.incremental": incremental,
        "ro.build.version.release": release,
        "ro.build.version.sdk": sdk,
        "ro.build.version.security_patch": f"20{stamp[:2]}-{stamp[2:4]}-{stamp[4:]}",
        "ro.build.type": build_type,
        "ro.build.tags": tags,
        "ro.build.fingerprint": fingerprint,
        "ro.vendor.build.fingerprint": fingerprint,
        "ro.product.cpu.abi": profile.abi,
        "ro.product.cpu.abilist": profile.abi,
        "ro.secure": "1",  # 0 only on eng builds
        "ro.debuggable": "0" if build_type == "user" else "1",
        "ro.boot.serialno": serialno,
    }
    props = {**derived, **given, "ro.serialno": serialno, "ro.adb.secure": "1" if secure else "0"}
    props.pop("ro.kernel.qemu", None)  # adb treats qemu devices differently; a phone has none
    return props
