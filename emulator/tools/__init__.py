"""The device image's system programs: logcat, dumpsys, settings and taskset (`/system/bin/<name>`).

Importing this package registers them (emulator.programs.register); each reads or changes the
device's image (emulator.image) through `ctx.device.image`.
"""

from emulator.tools import dumpsys, logcat, settings, taskset

__all__ = ["dumpsys", "logcat", "settings", "taskset"]
