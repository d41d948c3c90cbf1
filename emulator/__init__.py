"""The emulated Android device: an adb *device* (adbd) in Python, on loopback only."""
