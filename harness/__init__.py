"""Everything that talks to devices and judges results."""
