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
- `native`: a fused C kernel compiled at first use (`scan_native`), CPU tensors only, the fastest CPU path;
- `triton`: one Triton kernel per scan, time-parallel in chunks (`scan_triton`), CUDA tensors only; Triton
  comes with PyTorch's CUDA builds, so this is the GPU path when mamba-ssm is not installed;
- `cuda`: mamba-ssm's kernel (the `[gpu]` extra), CUDA tensors only;
- `auto`: on CUDA the mamba-ssm kernel when it imports, else `triton`, else `torch`; on CPU `native` when it builds,
  else `torch` (the portable fallback).

The state math always runs in fp32 (float64 when the inputs are float64), also under autocast: low-precision
states lose accuracy with log L (mamba PR #923). The output comes back in u's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from biomarker.device import mamba_kernel_available

from .scan_errors import ScanBackendUnavailableError, ScanInputError
from .scan_native import MAX_STATE, native_kernel_available, selective_scan_native
from .scan_reference import scan_core_reference
from .scan_torch import scan_core_chunked
from .scan_triton import scan_core_triton, triton_available

BACKENDS = ("auto", "reference", "torch", "native", "triton", "cuda")

# scan cores (y = Σ_n C·h from u and the final dt); the native backend fuses everything and is called whole
_CORES: dict[str, Callable[..., torch.Tensor]] = {
    "reference": scan_core_reference, "torch": scan_core_chunked, "triton": scan_core_triton,
}


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
    reverse: bool = False,
) -> torch.Tensor:
    """Run the selective scan.

    u, delta, z: (batch, d, L); A: (d, n); B, C: (batch, n, L); D, delta_bias: (d,).
    Returns y: (batch, d, L) in u's dtype. Differentiable in every tensor argument.
    `reverse` (not in mamba-ssm's signature; default off) scans from the last step to the first, i.e. exactly
    `selective_scan(flipped inputs).flip(-1)`: the backward direction of a bidirectional block. The C kernel
    does it in place; the other backends flip.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    chosen = resolve_backend(backend, u, A.shape[1])
    if reverse and chosen != "native":
        flipped = (None if t is None else t.flip(-1) for t in (u, delta, B, C, z))
        u_f, delta_f, B_f, C_f, z_f = flipped
        return selective_scan(u_f, delta_f, A, B_f, C_f, D, z_f, delta_bias, delta_softplus, chosen).flip(-1)
    if chosen == "cuda":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # lazy: the optional [gpu] extra

        return selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    compute = _compute_dtype(u)
    with torch.autocast(device_type=u.device.type, enabled=False):
        if chosen == "native":
            cast = [None if t is None else t.to(compute) for t in (u, delta, A, B, C, D, z, delta_bias)]
            return selective_scan_native(*cast, delta_softplus=delta_softplus, reverse=reverse).to(u.dtype)
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


def resolve_backend(backend: str, u: torch.Tensor, state_size: int = 16) -> str:
    """The concrete backend `selective_scan` will use for tensors like `u` and a state of `state_size`."""
    if backend not in BACKENDS:
        raise ScanInputError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    native_ok = u.device.type == "cpu" and state_size <= MAX_STATE and native_kernel_available(_compute_dtype(u))
    if backend == "auto":
        if u.is_cuda:
            if mamba_kernel_available():
                return "cuda"
            return "triton" if triton_available() else "torch"
        return "native" if native_ok else "torch"
    if backend == "triton" and not (u.is_cuda and triton_available()):
        raise ScanBackendUnavailableError(
            f"backend='triton' needs CUDA tensors (got {u.device.type}) and Triton (bundled with PyTorch's CUDA "
            "builds); use backend='torch'"
        )
    if backend == "native" and not native_ok:
        raise ScanBackendUnavailableError(
            f"backend='native' needs CPU tensors (got {u.device.type}), a state size <= {MAX_STATE} (got "
            f"{state_size}) and a C compiler to build the kernel (see the warning above, if any); use backend='torch'"
        )
    if backend == "cuda" and not (u.is_cuda and mamba_kernel_available()):
        where = "the tensors are on CUDA" if u.is_cuda else f"the tensors are on {u.device.type}, not CUDA"
        raise ScanBackendUnavailableError(
            f"backend='cuda' needs mamba-ssm's selective-scan kernel and CUDA tensors; {where} and the kernel "
            f"{'imports' if mamba_kernel_available() else 'does not import'}. Install the GPU extra "
            "(pip install 'biomarker[gpu]') on a CUDA machine, or use backend='torch'."
        )
    return backend


def _compute_dtype(u: torch.Tensor) -> torch.dtype:
    """State math in fp32, or float64 when the caller asks for it (the tests' 1e-10 check)."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


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
