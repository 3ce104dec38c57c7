"""Selective scan (Mamba's S6 recurrence) behind one signature with interchangeable backends.

Semantics and shapes are mamba-ssm's `selective_scan_fn`, so the CUDA kernel can stand in for ours:
    dt = softplus(delta + delta_bias)            (bias and softplus optional)
    h_t = exp(dt_t·A)·h_{t-1} + dt_t·B_t·u_t      (ZOH on A, Euler on B; h_{-1} = 0)
    y_t = Σ_n C_t[n]·h_t[n] + D·u_t,  out = y·silu(z)
A step with dt = 0 leaves the state unchanged: that is how padded positions are made harmless.

Backends:
- `reference`: sequential loop (`scan_reference`), the oracle of the tests and the benchmark baseline;
- `torch`: chunked pure-PyTorch scan with a recomputing custom backward (`scan_torch`), CPU and GPU,
  bounded memory at any L;
- `cuda`: mamba-ssm's kernel (the `[gpu]` extra), CUDA tensors only;
- `auto`: `cuda` when the kernel imports and the tensors are on CUDA, else `torch`.

The state math always runs in fp32 (float64 when the inputs are float64), also under autocast: low-precision
states lose accuracy with log L (mamba PR #923). The output comes back in u's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from biomarker.records import BiomarkerError

from .scan_reference import scan_core_reference
from .scan_torch import scan_core_chunked

BACKENDS = ("auto", "reference", "torch", "cuda")

_CORES: dict[str, Callable[..., torch.Tensor]] = {"reference": scan_core_reference, "torch": scan_core_chunked}


class ScanInputError(BiomarkerError, ValueError):
    """An argument of `selective_scan` has the wrong shape, dtype or device; the message names it."""


class ScanBackendUnavailableError(BiomarkerError, RuntimeError):
    """The requested backend cannot run here (e.g. `cuda` without mamba-ssm or without CUDA tensors)."""


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Run the selective scan.

    u, delta, z: (batch, d, L); A: (d, n); B, C: (batch, n, L); D, delta_bias: (d,).
    Returns y: (batch, d, L) in u's dtype. Differentiable in every tensor argument.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    chosen = resolve_backend(backend, u)
    if chosen == "cuda":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        return selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        dt = delta.to(compute)
        if delta_bias is not None:
            dt = dt + delta_bias.to(compute)[:, None]
        if delta_softplus:
            dt = F.softplus(dt)
        u_c = u.to(compute)
        y = _CORES[chosen](u_c, dt, A.to(compute), B.to(compute), C.to(compute))
        if D is not None:
            y = y + D.to(compute)[:, None] * u_c
        if z is not None:
            y = y * F.silu(z.to(compute))
    return y.to(u.dtype)


def resolve_backend(backend: str, u: torch.Tensor) -> str:
    """The concrete backend `selective_scan` will use for tensors like `u`."""
    from biomarker.device import mamba_kernel_available

    if backend not in BACKENDS:
        raise ScanInputError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "cuda" if u.is_cuda and mamba_kernel_available() else "torch"
    if backend == "cuda" and not (u.is_cuda and mamba_kernel_available()):
        where = "the tensors are on CUDA" if u.is_cuda else f"the tensors are on {u.device.type}, not CUDA"
        raise ScanBackendUnavailableError(
            f"backend='cuda' needs mamba-ssm's selective-scan kernel and CUDA tensors; {where} and the kernel "
            f"{'imports' if mamba_kernel_available() else 'does not import'}. Install the GPU extra "
            "(pip install 'biomarker[gpu]') on a CUDA machine, or use backend='torch'."
        )
    return backend


def _check_inputs(u, delta, A, B, C, D, z, delta_bias) -> None:
    """Shapes as in mamba-ssm; each failure names the argument, its shape and the expected one."""
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ScanInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ScanInputError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.device != u.device:
            raise ScanInputError(f"{name} is on {t.device} but u is on {u.device}; put all inputs on one device")
    if u.dim() != 3:
        raise ScanInputError(f"u must be (batch, d, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if length == 0:
        raise ScanInputError(f"u has length L=0 (shape {tuple(u.shape)}); a scan needs at least one step")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ScanInputError(f"A must be (d={dim}, n), got shape {tuple(A.shape)}")
    n = A.shape[1]
    expected = {"delta": (batch, dim, length), "z": (batch, dim, length), "B": (batch, n, length),
                "C": (batch, n, length), "D": (dim,), "delta_bias": (dim,)}
    for name, t in (("delta", delta), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is not None and tuple(t.shape) != expected[name]:
            raise ScanInputError(f"{name} must have shape {expected[name]} to match u {tuple(u.shape)} and A {tuple(A.shape)}, got {tuple(t.shape)}")
