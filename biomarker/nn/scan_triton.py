"""GPU selective scan in Triton: one kernel launch per scan, time-parallel inside chunks.

Why: without mamba-ssm's CUDA kernel (a source build needing nvcc), the chunked pure-PyTorch scan launches
dozens of small kernels per chunk, so on a GPU SSAMBA was launch-bound (measured on an H100: 80 ms for one
512-token forward, 1.7 s at 22k tokens, 7-12x slower than SSAST). Triton ships with PyTorch's CUDA builds,
so this path needs no extra install.

How: a program owns one batch row and a block of BLOCK_D channels with all N states, and walks the sequence in
chunks of CHUNK steps. Inside a chunk the recurrence h_t = a_t·h_{t-1} + b_t is an associative scan over
(a, b) pairs, (a1, b1)∘(a2, b2) = (a1·a2, a2·b1 + b2); the state carried between chunks enters as
h = A_prefix·h_carry + B_prefix. Steps past L get dt = 0 (a = 1, b = 0), which leaves the state unchanged —
the same rule that makes padding harmless. State math is fp32.

Backward recomputes through the chunked PyTorch core (`scan_torch`), which has its own memory-bounded
backward: training on a GPU is correct with this kernel; the forward (scoring, long inputs) is what it speeds up.
"""

from __future__ import annotations

import functools

import torch

from .scan_torch import scan_core_chunked

BLOCK_D = 4  # channels per program: 4 x 16 states x 64 steps keeps the tile in registers
CHUNK = 64


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when Triton imports and a CUDA device exists (Triton's interpreter is for tests only)."""
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401  (lazy: optional, CUDA machines only)
    except Exception:  # a missing or broken Triton means: use the PyTorch scan
        return False
    return True


def _kernel():
    """The Triton kernel, imported on first use so importing this module never needs Triton."""
    from .scan_triton_kernel import scan_forward

    return scan_forward


def _forward(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """u, dt: (batch, d, L); A: (d, n); B, C: (batch, n, L) -> y = Σ_n C·h: (batch, d, L), fp32."""
    batch, dim, length = u.shape
    nstate = A.shape[1]
    inputs = [t.contiguous().float() for t in (u, dt, A, B, C)]
    y = torch.empty(batch, dim, length, device=u.device, dtype=torch.float32)
    grid = (batch, (dim + BLOCK_D - 1) // BLOCK_D)
    _kernel()[grid](*inputs, y, dim, length, NSTATE=nstate, BLOCK_D=BLOCK_D, CHUNK=CHUNK)
    return y


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C):
        ctx.save_for_backward(u, dt, A, B, C)
        return _forward(u, dt, A, B, C)

    @staticmethod
    def backward(ctx, grad_y):
        leaves = [t.detach().requires_grad_(needs) for t, needs in zip(ctx.saved_tensors, ctx.needs_input_grad)]
        with torch.enable_grad():
            y = scan_core_chunked(*leaves)
        wanted = [t for t in leaves if t.requires_grad]
        grads = iter(torch.autograd.grad(y, wanted, grad_y))
        return tuple(next(grads) if t.requires_grad else None for t in leaves)


def scan_core_triton(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The `scan_core` contract of `scan.py` (dt already biased and softplus-ed): y = Σ_n C·h, fp32."""
    return _TritonScan.apply(u, dt, A, B, C)
