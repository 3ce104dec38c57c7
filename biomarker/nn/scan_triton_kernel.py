"""The Triton kernel of `scan_triton` (imported only when that backend runs; see there for the method)."""

import triton
import triton.language as tl


@triton.jit
def _first_order(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def scan_forward(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, y_ptr, dim, length,
                 NSTATE: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr):
    batch = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)  # [BD]
    states = tl.arange(0, NSTATE)  # [N]
    steps = tl.arange(0, CHUNK)  # [T]
    channel_ok = channels < dim
    A = tl.load(a_ptr + channels[:, None] * NSTATE + states[None, :], mask=channel_ok[:, None], other=0.0)  # [BD, N]
    row = batch * dim * length + channels[:, None] * length  # [BD, 1] offsets of (batch, channel, 0)
    bc_row = batch * NSTATE * length + states[:, None] * length  # [N, 1]
    carry = tl.zeros((BLOCK_D, NSTATE), dtype=tl.float32)
    for start in range(0, length, CHUNK):
        t = start + steps[None, :]  # [1, T]
        ok = channel_ok[:, None] & (t < length)  # [BD, T]
        u = tl.load(u_ptr + row + t, mask=ok, other=0.0)
        dt = tl.load(dt_ptr + row + t, mask=ok, other=0.0)  # dt = 0 past L: the state stays as it is
        Bt = tl.load(b_ptr + bc_row + t, mask=t < length, other=0.0)  # [N, T]
        Ct = tl.load(c_ptr + bc_row + t, mask=t < length, other=0.0)
        decay = tl.exp(dt[:, None, :] * A[:, :, None])  # [BD, N, T]
        drive = (dt * u)[:, None, :] * Bt[None, :, :]  # [BD, N, T]
        prefix_a, prefix_b = tl.associative_scan((decay, drive), axis=2, combine_fn=_first_order)
        h = prefix_a * carry[:, :, None] + prefix_b  # [BD, N, T]
        y = tl.sum(h * Ct[None, :, :], axis=1)  # [BD, T]
        tl.store(y_ptr + row + t, y, mask=ok)
        last = (steps == CHUNK - 1)[None, None, :]
        carry = tl.sum(tl.where(last, h, 0.0), axis=2)  # [BD, N]: the state after this chunk
