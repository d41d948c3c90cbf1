"""`/system/bin/settings`: Android's settings command (SettingsService's shell command) on the image's
settings provider (emulator.image.settings).

`[--user N] get|put|delete|list NAMESPACE [KEY [VALUE]]`: get prints the value or `null`, put prints
nothing, delete prints `Deleted N rows`, list prints `key=value` lines. A bad command line prints
the usage and exits 255 (the command's -1), as Android's does; `put` takes and ignores a trailing
tag and `default` (this provider keeps no per-package defaults).
"""

from __future__ import annotations

from emulator.image.settings import NAMESPACES
from emulator.programs import ProgramContext, register

FAILED = 255
ARITY = {"get": (2, 2), "put": (3, 5), "delete": (2, 2), "list": (1, 1)}  # arguments after the verb
USAGE = """Settings provider (settings) commands:
  help
      Print this help text.
  get [--user <USER_ID> | current] NAMESPACE KEY
      Retrieve the current value of KEY.
  put [--user <USER_ID> | current] NAMESPACE KEY VALUE [TAG] [default]
      Change the contents of KEY to VALUE.
  delete [--user <USER_ID> | current] NAMESPACE KEY
      Delete the entry for KEY.
  list [--user <USER_ID> | current] NAMESPACE
      Print all defined keys.

NAMESPACE is one of {system, secure, global}, case-insensitive
"""


def _operands(args: list[str]) -> list[str]:
    """The command line without `--user N` (there is one user)."""
    kept, rest = [], iter(args)
    for arg in rest:
        if arg == "--user":
            next(rest, None)
        else:
            kept.append(arg)
    return kept


@register("/system/bin/settings")
def main(ctx: ProgramContext) -> int:
    args = _operands(ctx.argv[1:])
    verb, operands = (args[0], args[1:]) if args else ("", [])
    if verb in ("help", "-h"):
        ctx.stdout.write(USAGE.encode())
        return 0
    least, most = ARITY.get(verb, (1, 0))
    if not least <= len(operands) <= most or operands[0].lower() not in NAMESPACES:
        ctx.stderr.write(USAGE.encode())
        return FAILED
    store, namespace = ctx.device.image.settings, operands[0].lower()
    if verb == "get":
        value = store.get(namespace, operands[1])
        ctx.stdout.write(f"{'null' if value is None else value}\n".encode())
    elif verb == "put":
        store.put(namespace, operands[1], operands[2])
    elif verb == "delete":
        ctx.stdout.write(f"Deleted {store.delete(namespace, operands[1])} rows\n".encode())
    else:
        ctx.stdout.write("".join(f"{key}={value}\n" for key, value in store.items(namespace)).encode())
    return 0
