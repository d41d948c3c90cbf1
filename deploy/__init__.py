"""Host-side build: everything before a device is involved."""

from importlib.metadata import PackageNotFoundError, version

try:
    TOOL_VERSION = version("edgeloop")
except PackageNotFoundError:  # running from a source tree that was not installed
    TOOL_VERSION = "0.0.0+source"
