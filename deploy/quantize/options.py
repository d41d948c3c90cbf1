"""Quantizer options with SNPE's names (snpe-dlc-quantize / qairt-quantizer), validated once.

Config files, task flags and the debugger all build a QuantizeOptions; `from_mapping` is the one
place that turns untrusted input into one, so every bad key or value gets the same clear error,
naming the option as the user wrote it: a flag (`--weights-bitwidth`) when the source is the
command line, the key (`weights_bitwidth`, as in edgeloop.yaml) otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError

QUANTIZERS = ("tf", "enhanced", "symmetric")
WEIGHT_BITWIDTHS = (4, 8, 16)
ACT_BITWIDTHS = (8, 16)
BIAS_BITWIDTHS = (8, 32)
ALGORITHMS = ("cle", "bc", "adaround", "seqmse")
MAX_MIN_RANGE = 100.0  # a wider least range makes 8-bit steps of 0.4 and more for every tensor: no model wants it
COMMAND_LINE = "command line"  # the source tasks.py passes: errors then name flags, not keys


def _spelled(source: str, key: str) -> str:
    """The option as written where it came from: `--weights-bitwidth` on the command line, else the key."""
    return f"--{key.replace('_', '-')}" if source == COMMAND_LINE else key


def _setting(source: str, key: str, value: object) -> str:
    """How to set an option there: `--weights-bitwidth 4` on the command line, `weights_bitwidth: 4` in YAML."""
    return f"{_spelled(source, key)} {value}" if source == COMMAND_LINE else f"{key}: {value}"


@dataclass(frozen=True)
class QuantizeOptions:
    param_quantizer: str = "tf"
    act_quantizer: str = "tf"
    weights_bitwidth: int = 8
    act_bitwidth: int = 8
    bias_bitwidth: int = 32
    use_per_channel_quantization: bool = False
    algorithms: tuple[str, ...] = ()
    override_params: Path | None = None
    pack_4_bit_weights: bool = False
    # SNPE 2.x enforces a range of at least 1e-4; AIMET and older SNPE use 0.01.
    min_range: float = 0.0001
    # AIMET runs 10000 (15000 below 8 bits) on a GPU; here the numpy default keeps a mobile CNN to seconds.
    adaround_iterations: int = 1000

    def __post_init__(self) -> None:
        self.validate("<options>")

    def validate(self, source: str) -> None:
        _choice(source, "param_quantizer", self.param_quantizer, QUANTIZERS)
        _choice(source, "act_quantizer", self.act_quantizer, QUANTIZERS)
        _choice(source, "weights_bitwidth", self.weights_bitwidth, WEIGHT_BITWIDTHS)
        _choice(source, "act_bitwidth", self.act_bitwidth, ACT_BITWIDTHS)
        _choice(source, "bias_bitwidth", self.bias_bitwidth, BIAS_BITWIDTHS)
        for algorithm in self.algorithms:
            _choice(source, "algorithms", algorithm, ALGORITHMS)
        if isinstance(self.adaround_iterations, bool) or not (isinstance(self.adaround_iterations, int)
                                                              and self.adaround_iterations >= 1):
            raise EdgeloopError(f"{source}: {_spelled(source, 'adaround_iterations')} must be a whole number >= 1, "
                                f"got {self.adaround_iterations!r}")
        if not 0 < self.min_range <= MAX_MIN_RANGE:  # also refuses inf and nan
            raise EdgeloopError(f"{source}: {_spelled(source, 'min_range')} must be more than 0 and at most "
                                f"{MAX_MIN_RANGE:g}, got {self.min_range}", "usual values are 0.0001 to 0.01")
        if self.pack_4_bit_weights and self.weights_bitwidth != 4:
            pack = _spelled(source, "pack_4_bit_weights")
            raise EdgeloopError(f"{source}: {pack} needs {_spelled(source, 'weights_bitwidth')} 4",
                                f"set {_setting(source, 'weights_bitwidth', 4)} or drop {pack}")

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str) -> QuantizeOptions:
        """Build options from a config section or parsed flags; `source` names where they came from."""
        if not isinstance(data, dict):
            raise EdgeloopError(f"{source}: quantization options must be a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in data if k not in fields)
        if unknown:
            raise EdgeloopError(f"{source}: unknown quantization option '{_spelled(source, unknown[0])}'",
                                f"known options: {', '.join(_spelled(source, f) for f in fields)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = _coerce(source, key, value)
        options = cls.__new__(cls)
        for name, f in fields.items():
            object.__setattr__(options, name, values.get(name, f.default))
        options.validate(source)
        return options

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for container metadata and cache keys)."""
        data = dataclasses.asdict(self)
        data["algorithms"] = list(self.algorithms)
        data["override_params"] = str(self.override_params) if self.override_params else None
        return data


def _choice(source: str, key: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
        raise EdgeloopError(f"{source}: {_spelled(source, key)} must be one of {', '.join(map(str, allowed))}, "
                            f"got {value!r}")


def _coerce(source: str, key: str, value: Any) -> Any:
    """Accept what YAML and command lines naturally produce ("cle,bc", "8", "true")."""
    name = _spelled(source, key)
    if key in ("weights_bitwidth", "act_bitwidth", "bias_bitwidth", "adaround_iterations"):
        try:
            return int(value) if not isinstance(value, bool) else value
        except (TypeError, ValueError):
            raise EdgeloopError(f"{source}: {name} must be an integer, got {value!r}") from None
    if key in ("use_per_channel_quantization", "pack_4_bit_weights"):
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise EdgeloopError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if key == "algorithms":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise EdgeloopError(f"{source}: {name} must be a list such as [cle, bc], got {value!r}")
        return tuple(str(a).strip().lower() for a in items if str(a).strip())
    if key == "override_params":
        return Path(value) if value not in (None, "") else None
    if key == "min_range":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EdgeloopError(f"{source}: {name} must be a number, got {value!r}") from None
    return value
