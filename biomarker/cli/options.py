"""Option parsing shared by commands: `KEY=VALUE` model settings (`pretrain --override`, `finetune --set`)."""

from __future__ import annotations

import json

import typer


def parse_settings(items: list[str], option: str) -> dict[str, object]:
    """`KEY=VALUE` pairs as model settings: VALUE read as JSON when it parses (96, [16,32]), else kept as text
    (sinusoidal), so no shell quoting of JSON strings is needed. `option` names the flag in the error."""
    settings: dict[str, object] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key or not value:
            raise typer.BadParameter(f"{option} expects KEY=VALUE, e.g. {option} embed_dim=96; got {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings
