"""Where tensors run and in which precision: decided here and nowhere else.

Scoring runs in fp32 by default (a clinician's probability should not depend on the card it ran on);
training uses bf16 autocast on CUDA, fp32 on CPU. The selective scan's CUDA kernel (mamba-ssm, the `[gpu]`
extra) is used only when it imports and the tensors are on CUDA.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def pick_device(requested: str | None = "auto") -> torch.device:
    """`auto` (or None) gives cuda when available, else cpu. An explicit `cuda` without a GPU is an error,
    not a silent fall-back: the user asked for something we cannot do."""
    choice = (requested or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {requested} was requested but no CUDA device is available")
        return torch.device(choice)
    if choice == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")


@dataclass(frozen=True)
class PrecisionPolicy:
    """dtype policy: weights stay fp32; training may autocast; scoring does not by default."""

    train_autocast_dtype: torch.dtype | None
    score_autocast_dtype: torch.dtype | None = None


def precision_for(device: torch.device) -> PrecisionPolicy:
    if device.type == "cuda":
        return PrecisionPolicy(train_autocast_dtype=torch.bfloat16)
    return PrecisionPolicy(train_autocast_dtype=None)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast when a dtype is given, a no-op context otherwise."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@functools.lru_cache(maxsize=1)
def mamba_kernel_available() -> bool:
    """True when mamba-ssm's selective-scan CUDA kernel imports and a GPU exists."""
    if not torch.cuda.is_available():
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401  (lazy: the optional [gpu] extra)
    except Exception:  # any import failure (missing build, ABI mismatch) means: use our own scan
        return False
    return True


def describe(device: torch.device) -> str:
    """Human-readable device name for scores, logs and benchmark reports."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
