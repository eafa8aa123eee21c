"""What a configured method trains: an algorithm on a backbone (no torch here: the Snakefile reads it).

Description:
    A method of the config (`methods`) is an algorithm (DAML, MAML or ERM: `daml.meta`) on
    a backbone: the paper's Conv-4 or any timm model (`daml.models`), at its own input size
    and starting weights. `daml`, `maml` and `erm` are Conv-4 at `train.image_size` unless
    `method_settings` says otherwise; any other name is defined there:

        methods: [daml, maml, erm, xception]
        method_settings:
          xception: {algorithm: erm, backbone: legacy_xception, image_size: 299, label: Xception}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

from daml.errors import DamlError

NONE = "none"  # no pretrained weights (`daml.models.weights`)
CONV4 = "conv4"
ALGORITHMS = ("daml", "maml", "erm")
ALGORITHM_NAMES = {"daml": "DAML", "maml": "MAML", "erm": "ERM"}


@dataclass(frozen=True)
class Backbone:
    """A network and its input: `conv4` or a timm model name, the input side, the weights."""

    name: str = CONV4
    image_size: int = 84
    pretrained: str = NONE

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MethodSpec:
    """One configured method: its name (results path, tables), algorithm, backbone and label."""

    name: str
    algorithm: str
    backbone: Backbone = field(default_factory=Backbone)
    label: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> MethodSpec:
        return cls(data["name"], data["algorithm"], Backbone(**data["backbone"]), data.get("label", ""))


def method_specs(config: Mapping) -> list[MethodSpec]:
    """Every method of `config["methods"]`, completed from `method_settings` and `train`.

    Settings of a method that `methods` does not list are ignored, so a preset's baselines
    can be switched off by listing fewer methods; a misspelt name in `methods` still stops
    (it names no algorithm).
    """
    defined = config.get("method_settings") or {}
    specs = []
    for name in config["methods"]:
        settings = defined.get(name, {})
        algorithm = settings.get("algorithm", name if name in ALGORITHMS else None)
        if algorithm not in ALGORITHMS:
            raise DamlError(
                f"methods: {name!r} is not one of {list(ALGORITHMS)}, so method_settings.{name}"
                f".algorithm must say which it trains with ({', '.join(ALGORITHMS)})"
            )
        backbone = Backbone(
            settings.get("backbone", CONV4),
            int(settings.get("image_size", config["train"]["image_size"])),
            str(settings.get("pretrained", NONE)),
        )
        if backbone.name == CONV4 and backbone.pretrained != NONE:
            raise DamlError(f"method_settings.{name}.pretrained: Conv-4 has no pretrained weights; use none")
        label = settings.get("label") or ALGORITHM_NAMES.get(name, name.upper())
        specs.append(MethodSpec(name, algorithm, backbone, label))
    return specs
