"""The quantizer: float container + calibration input list -> QDQ container with AIMET encodings."""

from deploy.quantize.options import QuantizeOptions

__all__ = ["QuantizeOptions"]
