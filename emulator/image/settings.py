"""Android's settings provider (`settings get/put/delete/list system|secure|global`): three tables of
strings, seeded with what a freshly set-up phone with developer options on has. Kept while the
device runs (an `adb reboot` keeps them too; a new device process starts from the defaults)."""

from __future__ import annotations

import hashlib
import threading

NAMESPACES = ("system", "secure", "global")


def default_settings(model: str, serialno: str) -> dict[str, dict[str, str]]:
    android_id = hashlib.sha256(f"android_id:{serialno}".encode()).hexdigest()[:16]
    return {
        "system": {"screen_off_timeout": "30000", "screen_brightness": "102", "screen_brightness_mode": "1",
                   "accelerometer_rotation": "1", "font_scale": "1.0"},
        "secure": {"android_id": android_id, "location_mode": "3", "adb_notify": "1"},
        "global": {"adb_enabled": "1", "development_settings_enabled": "1", "airplane_mode_on": "0",
                   "stay_on_while_plugged_in": "0", "wifi_on": "1", "device_name": model,
                   "window_animation_scale": "1.0", "transition_animation_scale": "1.0",
                   "animator_duration_scale": "1.0"},
    }


class Settings:
    def __init__(self, tables: dict[str, dict[str, str]]) -> None:
        self._tables = tables
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> str | None:
        with self._lock:
            return self._tables[namespace].get(key)

    def put(self, namespace: str, key: str, value: str) -> None:
        with self._lock:
            self._tables[namespace][key] = value

    def delete(self, namespace: str, key: str) -> int:
        """How many rows went (0 or 1), as the provider reports."""
        with self._lock:
            return int(self._tables[namespace].pop(key, None) is not None)

    def items(self, namespace: str) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._tables[namespace].items())
