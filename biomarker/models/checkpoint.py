"""Checkpoint I/O: a directory with `model.safetensors` and `config.json`, for any registered model or bundle.

config.json holds a `kind` key ('transformer', 'ssamba', 'screening'; the classes register themselves in
`models/kinds.py`, so this module reads and writes files and imports no model) and whatever that kind's
`from_description` needs (the typed config, the feature config, adapter sets, cohorts), so a checkpoint rebuilds
itself with no code outside this package (SSAST's fine-tuned checkpoints could not: ssast#4, #7). Weights are
stored in fp16 by default (a few MB) and load into fp32 modules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from biomarker.models.kinds import class_for_kind
from biomarker.records import ModelConfigError, ModelNotFoundError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


def write_checkpoint(module: nn.Module, description: dict[str, Any], directory: str | Path, dtype: torch.dtype) -> Path:
    """Write `module`'s state dict (floating tensors cast to `dtype`) and `description` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        key: (value.detach().to(dtype) if value.is_floating_point() else value.detach()).contiguous().cpu()
        for key, value in module.state_dict().items()
    }
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {"format_version": FORMAT_VERSION, "weights_dtype": str(dtype).removeprefix("torch."), **description}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def read_description(directory: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint directory, or ModelNotFoundError naming what is missing."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{directory}: no {CONFIG_FILE}; not a model checkpoint directory")
    return json.loads(path.read_text())


# Encoder settings that change how the saved weights are used, never which weights exist, so they may differ
# from the checkpoint's: e.g. a pretrained full-attention transformer run with factorized frequency-time
# attention (AAT does this to a pretrained AST). Anything that shapes a parameter is refused.
WEIGHT_FREE_SETTINGS = frozenset({"attention", "dropout"})
# `depth` may shrink: the encoder keeps its first `depth` blocks (layer dropping; the later blocks' weights are
# not loaded). Why: a screener built on the first blocks of a pretrained encoder scores a recording in a fraction
# of the time and keeps the pretrained low-level features; growing it would leave blocks without weights.
_BLOCK_KEY = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
# `pooling` may change on a bare encoder (no head reads it yet); a bundle's heads are sized by it.
BARE_ENCODER_SETTINGS = frozenset({"depth", "pooling"})


def override_encoder_config(description: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a checkpoint `description` whose encoder config (a bundle's included) takes `overrides`.

    Only WEIGHT_FREE_SETTINGS may be overridden; the result is what gets saved next, so a model trained
    with an override keeps it across save/reload. Unknown keys for the encoder kind fail in `from_dict`.
    """
    shaping = sorted(set(overrides) - WEIGHT_FREE_SETTINGS - BARE_ENCODER_SETTINGS)
    if shaping:
        raise ModelConfigError(
            f"cannot override {', '.join(map(repr, shaping))} of a saved model: it shapes the weights "
            f"(only {sorted(WEIGHT_FREE_SETTINGS)} may change, depth may shrink, and a bare encoder's pooling may change)"
        )
    description = json.loads(json.dumps(description))  # deep copy; the caller's dict stays as read
    encoder = description["encoder"] if description.get("kind") == "screening" else description
    if "depth" in overrides:
        saved = int(encoder["config"]["depth"])
        if not 1 <= int(overrides["depth"]) <= saved:
            raise ModelConfigError(f"depth={overrides['depth']!r}: a saved encoder of {saved} blocks can keep 1 to {saved} of them")
        if overrides["depth"] < saved and (encoder.get("adapter_sets") or description.get("kind") == "screening"):
            raise ModelConfigError("depth can only shrink a bare pretrained encoder, not a bundle or adapter sets trained on all its blocks")
    if "pooling" in overrides and description.get("kind") == "screening":
        raise ModelConfigError("pooling can only change on a bare pretrained encoder: a bundle's heads were trained on its pooling")
    encoder["config"] = {**encoder["config"], **overrides}
    return description


def from_pretrained(
    directory: str | Path, device: str | torch.device = "cpu", *, overrides: dict[str, Any] | None = None
) -> nn.Module:
    """Rebuild any saved encoder or ScreeningModel from `directory`, weights in fp32, in eval mode.

    `overrides`: weight-free encoder settings to use instead of the saved ones, e.g. {"attention": "factorized"},
    and `depth` to keep only the first blocks of a pretrained encoder.
    """
    description = read_description(directory)
    if overrides:
        description = override_encoder_config(description, overrides)
    model = class_for_kind(description.get("kind", ""))
    model = model.from_description(description)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"{directory}: {WEIGHTS_FILE} is missing")
    state = load_file(str(weights))
    if overrides and "depth" in overrides:  # the first `depth` blocks only (see WEIGHT_FREE_SETTINGS)
        state = {k: v for k, v in state.items() if not (m := _BLOCK_KEY.search(k)) or int(m.group(1)) < overrides["depth"]}
    model.load_state_dict(state, strict=True)  # copies fp16 values into the fp32 parameters
    return model.to(device).eval()
