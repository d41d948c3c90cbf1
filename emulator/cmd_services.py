"""`/system/bin/cmd` and `/system/bin/pm`: Android's command line to system services, with the one
service the emulated device runs, `package`. Its package list is the profile's `packages` (empty by
default), and it installs nothing: the device runs no apps, only its shell and system programs.

Wording and exit codes are Android's (frameworks/native/cmds/cmd, PackageManagerShellCommand): cmd
exits 20 when it finds no service; a service command's own failure is its -1, 255 to the shell.
The banner advertises the `cmd` feature because of this program: adb then installs by streaming to
`cmd package install -S SIZE`, which reads the whole APK before it answers `Failure [...]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO

from emulator.programs import ProgramContext, register

NO_SERVICE = 20
COMMAND_FAILED = 255  # a service's shell command returning -1
INSTALL_FAILED = "Failure [INSTALL_FAILED_INTERNAL_ERROR: the emulated device installs no packages]"
_CHUNK = 1 << 20

# Options of `list packages` that only filter: every package here is a preinstalled, enabled system one.
_SHOWS_ALL = frozenset({"-a", "-e", "-l", "-s", "-u"})
_SHOWS_NONE = frozenset({"-d", "-3", "--apex-only"})  # disabled, third-party, APEX packages: there are none
_LIST_VALUED = frozenset({"--user"})  # options that take the next argument as their value
# install's: adb puts the user's options (`adb install -i com.store app.apk`) before its `-S SIZE`.
_INSTALL_VALUED = frozenset({"-i", "-p", "-S", "--abi", "--user", "--install-location", "--force-uuid",
                             "--originating-uri", "--referrer", "--pkg", "--install-reason"})

PACKAGE_HELP = """Package manager (package) commands:
  help
    Print this help text.
  list packages [-a] [-d] [-e] [-i] [-l] [-s] [-u] [-3] [--apex-only] [--user USER_ID] [FILTER]
    Prints all packages; optionally only those whose name contains FILTER.
  install [-S BYTES] [PATH]
    Reads the package (BYTES of it from stdin with -S) and fails: this device installs no packages.
  uninstall PACKAGE
    Fails: this device has no removable packages.
"""


def _say(out: IO[bytes], text: str) -> None:
    out.write((text + "\n").encode())


def _options(args: list[str], valued: frozenset[str]) -> Iterator[tuple[str, str | None]]:
    """(option, its value) pairs, then ("", first argument) as ShellCommand reads a command line;
    an option in `valued` takes the next argument as its value."""
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            yield "", next(rest, None)
            return
        if not arg.startswith("-") or arg == "-":
            yield "", arg
            return
        yield arg, next(rest, None) if arg in valued else None
    yield "", None


def _list(ctx: ProgramContext, args: list[str]) -> int:
    if not args:
        _say(ctx.stdout, "Error: didn't specify type of data to list")
        return COMMAND_FAILED
    if args[0] not in ("packages", "package"):
        _say(ctx.stdout, f"Error: unknown list type '{args[0]}'")
        return COMMAND_FAILED
    shown, installer, name_filter = True, False, None
    for option, value in _options(args[1:], _LIST_VALUED):
        if option == "":
            name_filter = value
        elif option in _SHOWS_NONE:
            shown = False
        elif option == "-i":
            installer = True
        elif option == "--user":
            if value is None:
                _say(ctx.stdout, 'Error: java.lang.IllegalArgumentException: Argument expected after "--user"')
                return COMMAND_FAILED
        elif option not in _SHOWS_ALL:
            _say(ctx.stdout, f"Error: Unknown option: {option}")
            return COMMAND_FAILED
    packages = ctx.device.profile.packages if shown else ()
    for name in packages:
        if name_filter is None or name_filter in name:
            _say(ctx.stdout, f"package:{name}" + ("  installer=null" if installer else ""))
    return 0


def _install(ctx: ProgramContext, args: list[str]) -> int:
    """Read what the host streams (so `adb install` gets its answer, not a broken pipe), then fail."""
    size = dict(_options(args, _INSTALL_VALUED)).get("-S") or ""
    left = int(size) if size.isdigit() else 0
    while left > 0 and not ctx.cancel.is_set():
        chunk = ctx.stdin.read(min(left, _CHUNK))
        if not chunk:
            break
        left -= len(chunk)
    _say(ctx.stdout, INSTALL_FAILED)
    return 1


def _uninstall(ctx: ProgramContext, args: list[str]) -> int:
    _say(ctx.stdout, "Failure [DELETE_FAILED_INTERNAL_ERROR]")
    return 1


_PACKAGE_COMMANDS: dict[str, Callable[[ProgramContext, list[str]], int]] = {
    "list": _list, "install": _install, "uninstall": _uninstall,
}


def package(ctx: ProgramContext, args: list[str]) -> int:
    """The `package` service's shell command (PackageManagerShellCommand's subset)."""
    command = args[0] if args else None
    handler = _PACKAGE_COMMANDS.get(command or "")
    if handler is not None:
        return handler(ctx, args[1:])
    if command in (None, "help", "-h"):
        ctx.stdout.write(PACKAGE_HELP.encode())
    else:
        _say(ctx.stdout, f"Unknown command: {command}")
    return COMMAND_FAILED


SERVICES: dict[str, Callable[[ProgramContext, list[str]], int]] = {"package": package}


@register("/system/bin/cmd")
def cmd(ctx: ProgramContext) -> int:
    args = ctx.argv[1:]
    if args[:1] == ["-w"] and len(args) > 1:  # wait for the service to start: every one here is running
        args = args[1:]
    if not args:
        _say(ctx.stderr, "cmd: No service specified; use -l to list all running services. "
                         "Use -w to start and wait for a service.")
        return NO_SERVICE
    if args == ["-l"]:
        ctx.stdout.write(("Currently running services:\n" + "".join(f"  {s}\n" for s in sorted(SERVICES))).encode())
        return 0
    service = SERVICES.get(args[0])
    if service is None:
        _say(ctx.stderr, f"cmd: Can't find service: {args[0]}")
        return NO_SERVICE
    return service(ctx, args[1:])


@register("/system/bin/pm")
def pm(ctx: ProgramContext) -> int:
    """Android's pm is a script that runs `cmd package "$@"`."""
    return package(ctx, ctx.argv[1:])
