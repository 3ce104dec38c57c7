"""Fast selective scan in plain PyTorch: chunked two-level scan with a recomputing custom backward.

Why this shape (measured in ../shared/research/feasibility-cpu.md and docs/scan.md):
- Time-major layout (L, batch, d, n): every time step is one contiguous slab, so a superblock is a free slice
  and each sequential step below is a single fused `addcmul_` over a contiguous block.
- Two levels inside a superblock of T steps cut into chunks of Q: a sequential step over the Q positions of
  every chunk at once (Q ops, each over all chunks), then one correction per chunk that adds the carried state
  times the in-chunk cumulative decay (T/Q ops). About 2·sqrt(T) Python-level ops instead of T.
- Superblocks bound memory: the (T, batch, d, n) scratch never exceeds `SCRATCH_FLOATS`, so a 22k-step scan
  never holds the whole (L, d, n) tensor; memory is O(L·d) plus a fixed block.
- Decays exp(dt·A) lie in (0, 1] (A < 0, dt ≥ 0), so the cumulative products only underflow, never overflow.
- Backward saves only the inputs and one state per superblock, recomputes each superblock's states, and
  runs the reverse recurrence with the same chunked machinery.
"""

from __future__ import annotations

import math

import torch
from einops import einsum, rearrange

# Floats per (T, batch, d, n) scratch buffer; three of them are live at once (16 MB each in fp32).
SCRATCH_FLOATS = 1 << 22


def _chunk_len(steps: int) -> int:
    """About sqrt(steps): balances the in-chunk loop (Q ops) against the carry loop (steps/Q ops)."""
    return max(1, round(math.sqrt(steps)))


def _scan_forward_(decay: torch.Tensor, state: torch.Tensor, carry: torch.Tensor | None) -> torch.Tensor:
    """In place: state[t] ← decay[t]·state[t-1] + state[t] along dim 0, starting from `carry` (or zero).

    decay, state: (T, M) contiguous; carry: (M,) or None. Returns the last state (M,), a view into `state`.
    """
    steps = state.shape[0]
    q = _chunk_len(steps)
    main = (steps // q) * q
    if main:
        carry = _scan_chunks_forward_(decay[:main].view(-1, q, decay.shape[1]), state[:main].view(-1, q, state.shape[1]), carry)
    if main < steps:
        carry = _scan_chunks_forward_(decay[main:].unsqueeze(0), state[main:].unsqueeze(0), carry)
    return carry


def _scan_chunks_forward_(decay: torch.Tensor, state: torch.Tensor, carry: torch.Tensor | None) -> torch.Tensor:
    """decay, state: (chunks, Q, M). Local scan inside every chunk at once, then carry across chunks."""
    for i in range(1, state.shape[1]):
        state[:, i].addcmul_(decay[:, i], state[:, i - 1])
    if carry is None and state.shape[0] == 1:
        return state[0, -1]
    cumulative = torch.cumprod(decay, dim=1)
    for c in range(state.shape[0]):
        if carry is not None:
            state[c].addcmul_(cumulative[c], carry)
        carry = state[c, -1]
    return carry


def _scan_reverse_(decay: torch.Tensor, grad: torch.Tensor, carry: torch.Tensor | None) -> torch.Tensor:
    """In place: grad[t] ← grad[t] + decay[t+1]·grad[t+1] along dim 0, with grad[T-1] += carry.

    `carry` is decay[T]·grad[T] from the following superblock (already multiplied). Returns the same quantity
    for the preceding superblock: decay[0]·grad[0].
    """
    steps = grad.shape[0]
    q = _chunk_len(steps)
    main = (steps // q) * q
    if main < steps:
        carry = _scan_chunks_reverse_(decay[main:].unsqueeze(0), grad[main:].unsqueeze(0), carry)
    if main:
        carry = _scan_chunks_reverse_(decay[:main].view(-1, q, decay.shape[1]), grad[:main].view(-1, q, grad.shape[1]), carry)
    return carry


def _scan_chunks_reverse_(decay: torch.Tensor, grad: torch.Tensor, carry: torch.Tensor | None) -> torch.Tensor:
    """decay, grad: (chunks, Q, M). Reverse local scan inside every chunk, then carry backwards across chunks."""
    width = grad.shape[1]
    for i in range(width - 2, -1, -1):
        grad[:, i].addcmul_(decay[:, i + 1], grad[:, i + 1])
    if carry is not None or grad.shape[0] > 1:
        # suffix[:, i] = Π_{k>i} decay[:, k] inside the chunk (exclusive), suffix[:, Q-1] = 1
        suffix = torch.empty_like(decay)
        suffix[:, -1] = 1
        for i in range(width - 2, -1, -1):
            torch.mul(suffix[:, i + 1], decay[:, i + 1], out=suffix[:, i])
        for c in range(grad.shape[0] - 1, -1, -1):
            if carry is not None:
                grad[c].addcmul_(suffix[c], carry)
            carry = decay[c, 0] * grad[c, 0]
        return carry
    return decay[0, 0] * grad[0, 0]


def _superblock_len(length: int, slab: int) -> int:
    return max(1, min(length, SCRATCH_FLOATS // max(slab, 1)))


def _states(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, carry: torch.Tensor | None):
    """States of one superblock. u, dt: (T, b, d); B: (T, b, n); A: (d, n); carry: (b, d, n) or None.

    Returns (decay, drive, states), each (T, b, d, n); drive = dt·u·B is kept for the backward's h - drive.
    """
    decay = torch.exp(einsum(dt, A, "t b d, d n -> t b d n"))
    drive = einsum(dt * u, B, "t b d, t b n -> t b d n")
    states = drive.clone()
    flat = rearrange(states, "t b d n -> t (b d n)")
    _scan_forward_(rearrange(decay, "t b d n -> t (b d n)"), flat, None if carry is None else carry.reshape(-1))
    return decay, drive, states


class _ChunkedScan(torch.autograd.Function):
    """Core scan y = Σ_n C·h on time-major inputs; see the module docstring for the algorithm."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C):
        """u, dt: (L, b, d); A: (d, n); B, C: (L, b, n). Returns y: (L, b, d)."""
        length, batch, dim = u.shape
        span = _superblock_len(length, batch * dim * A.shape[1])
        y = u.new_empty(length, batch, dim)
        starts, carry = [], None
        for s in range(0, length, span):
            e = min(length, s + span)
            starts.append(carry)
            _, _, states = _states(u[s:e], dt[s:e], A, B[s:e], carry)
            y[s:e] = einsum(states, C[s:e], "t b d n, t b n -> t b d")
            carry = states[-1].clone()
        ctx.save_for_backward(u, dt, A, B, C)
        ctx.starts = starts
        ctx.span = span
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, dt, A, B, C = ctx.saved_tensors
        length = u.shape[0]
        grad_y = grad_y.contiguous()
        grad_u, grad_dt = torch.empty_like(u), torch.empty_like(dt)
        grad_B, grad_C = torch.empty_like(B), torch.empty_like(C)
        grad_A = torch.zeros_like(A)
        carry = None
        blocks = list(range(0, length, ctx.span))
        for index in range(len(blocks) - 1, -1, -1):
            s = blocks[index]
            e = min(length, s + ctx.span)
            decay, drive, states = _states(u[s:e], dt[s:e], A, B[s:e], ctx.starts[index])
            g = grad_y[s:e]
            grad_C[s:e] = einsum(g, states, "t b d, t b d n -> t b n")
            grad_h = einsum(g, C[s:e], "t b d, t b n -> t b d n")
            carry = _scan_reverse_(rearrange(decay, "t b d n -> t (b d n)"), rearrange(grad_h, "t b d n -> t (b d n)"), carry)
            # d loss / d(dt·A) at step t is grad_h[t]·decay[t]·h[t-1] = grad_h[t]·(h[t] - drive[t])
            torch.sub(states, drive, out=drive).mul_(grad_h)
            grad_A += einsum(drive, dt[s:e], "t b d n, t b d -> d n")
            grad_dtu = einsum(grad_h, B[s:e], "t b d n, t b n -> t b d")
            grad_B[s:e] = einsum(grad_h, dt[s:e] * u[s:e], "t b d n, t b d -> t b n")
            grad_dt[s:e] = einsum(drive, A, "t b d n, d n -> t b d") + grad_dtu * u[s:e]
            grad_u[s:e] = grad_dtu * dt[s:e]
        return grad_u, grad_dt, grad_A, grad_B, grad_C


def scan_core_chunked(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Same contract as `scan_reference.scan_core_reference`: u, dt (batch, d, L); A (d, n); B, C (batch, n, L)."""
    y = _ChunkedScan.apply(
        rearrange(u, "b d l -> l b d").contiguous(),
        rearrange(dt, "b d l -> l b d").contiguous(),
        A.contiguous(),
        rearrange(B, "b n l -> l b n").contiguous(),
        rearrange(C, "b n l -> l b n").contiguous(),
    )
    return rearrange(y, "l b d -> b d l")
