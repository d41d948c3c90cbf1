"""adb's RSA authentication, the device side, as adbd does it with `ro.adb.secure=1`.

The device answers a host's CNXN with AUTH(TOKEN, 20 random bytes); the host signs the token with
its adb key (RSA-2048, PKCS#1 v1.5 over the token taken as a SHA-1 digest) and sends
AUTH(SIGNATURE); a signature that one of the device's keys verifies gets the device's CNXN, any
other a new token. A host out of keys offers AUTH(RSAPUBLICKEY): a phone would ask its user; the
emulated device has no user, so it stays unauthorized (`adb devices` says so).

The keys: those of the user who started the device (`~/.android/adbkey.pub`, and the `.pub` of each
key `$ADB_VENDOR_KEYS` names), read at each handshake (the adb server writes its key on its first
start, possibly after the device's), and any public key files given with `--adb-key`.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TOKEN, SIGNATURE, RSAPUBLICKEY = 1, 2, 3  # AUTH's arg0
TOKEN_SIZE = 20
KEY_WORDS = 64  # RSA-2048: the modulus in 32-bit words
# DER of DigestInfo{sha1}, which PKCS#1 v1.5 puts before the digest (RFC 8017, 9.2 note 1)
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


@dataclass(frozen=True)
class PublicKey:
    modulus: int
    exponent: int
    comment: str = ""

    def verifies(self, token: bytes, signature: bytes) -> bool:
        size = (self.modulus.bit_length() + 7) // 8
        if len(signature) != size:
            return False
        signed = pow(int.from_bytes(signature, "big"), self.exponent, self.modulus).to_bytes(size, "big")
        padding = b"\xff" * (size - 3 - len(SHA1_DIGEST_INFO) - len(token))
        return secrets.compare_digest(signed, b"\x00\x01" + padding + b"\x00" + SHA1_DIGEST_INFO + token)


def parse_public_key(text: str) -> PublicKey:
    """An `adbkey.pub` line: base64 of Android's RSAPublicKey struct (word count, n0inv, modulus and
    R^2 little-endian, exponent), then the key's comment (user@host). ValueError if it is not one."""
    blob, _, comment = text.strip().partition(" ")
    raw = base64.b64decode(blob, validate=True)
    words = struct.unpack_from("<I", raw)[0] if len(raw) >= 4 else 0
    if words != KEY_WORDS or len(raw) != 4 * (3 + 2 * words):
        raise ValueError("not an adb RSA-2048 public key")
    modulus = int.from_bytes(raw[8:8 + 4 * words], "little")
    exponent = struct.unpack_from("<I", raw, 8 + 8 * words)[0]
    return PublicKey(modulus, exponent, comment.strip())


MAX_KEY_FILE = 64 << 10  # an adbkey.pub is one 700-byte line; /dev/zero would never end


def key_file_problem(path: Path) -> str | None:
    """Why `path`, given to accept its holder's key, is no adb public key file (None when it holds at
    least one key): missing, a folder or device, the private half (`adbkey` rather than `adbkey.pub`),
    or text of another kind (/etc/passwd)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if len(raw) > MAX_KEY_FILE:
        return f"larger than {MAX_KEY_FILE >> 10} KiB, so not an adbkey.pub"
    text = raw.decode("utf-8", "replace")
    if "PRIVATE KEY-----" in text:
        return "a private key; give its public half, the adbkey.pub beside it"
    for line in filter(str.strip, text.splitlines()):
        try:
            parse_public_key(line)
            return None
        except ValueError:  # binascii.Error is one
            continue
    return "holds no adb public key (a line of base64 RSA-2048 key, then user@host, as adb writes adbkey.pub)"


def user_key_files() -> list[Path]:
    """The public keys of the user who runs the device, as their adb server finds its private keys."""
    files = [Path.home() / ".android" / "adbkey.pub"]
    for entry in filter(None, os.environ.get("ADB_VENDOR_KEYS", "").split(os.pathsep)):
        path = Path(entry)
        files += sorted(path.glob("*.pub")) if path.is_dir() else [Path(f"{path}.pub")]
    return files


def load_keys(files: Iterable[Path]) -> list[PublicKey]:
    """The keys of the files that exist and hold one (one key per line); others are skipped."""
    keys = []
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in filter(str.strip, lines):
            try:
                keys.append(parse_public_key(line))
            except ValueError:
                continue
    return keys


def new_token() -> bytes:
    return secrets.token_bytes(TOKEN_SIZE)
