"""The registry of checkpoint kinds: a leaf (timm's `_registry.py` shape) that imports no model.

Each model class that can rebuild a checkpoint registers itself where it is defined:

    @register_kind
    class TransformerEncoder(Encoder):
        kind: ClassVar[str] = "transformer"

`checkpoint.from_pretrained` and `ScreeningModel.from_description` look a `kind` up here, so the module that
reads checkpoints never imports the models it rebuilds and no import circle forms. Importing `biomarker.models`
imports every model module, so every kind is registered before any checkpoint is read.
"""

from __future__ import annotations

from typing import Any, TypeVar

from biomarker.records import ModelConfigError

_KINDS: dict[str, Any] = {}
T = TypeVar("T")


def register_kind(cls: T) -> T:
    """Class decorator: `cls.kind` (a config.json `kind`) is rebuilt by `cls.from_description`."""
    kind = getattr(cls, "kind")
    if kind in _KINDS and _KINDS[kind] is not cls:
        raise ModelConfigError(f"checkpoint kind {kind!r} is registered twice ({_KINDS[kind].__name__}, {cls.__name__})")
    _KINDS[kind] = cls
    return cls


def class_for_kind(kind: str) -> Any:
    """The model class that rebuilds checkpoints of `kind`."""
    if kind not in _KINDS:
        raise ModelConfigError(f"checkpoint kind {kind!r} is not one of {sorted(_KINDS)}")
    return _KINDS[kind]


def list_kinds() -> list[str]:
    return sorted(_KINDS)
