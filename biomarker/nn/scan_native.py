"""Optional fast CPU path: the fused C kernel of `scan_native.c`, compiled at first use, called via ctypes.

Why: on CPU the pure-PyTorch chunked scan is bound by one pass over memory per chunk step; the fused kernel
keeps each channel's state in registers and is several times faster again (numbers in docs/scan.md). Why
this way: the kernel is plain C with no Python or torch headers, so the system C compiler builds it in about
a second (a torch C++ extension takes minutes), and ctypes releases the GIL so Python threads run channel
ranges in parallel. Where no C compiler exists the build fails once, a warning says why, and `auto` uses
the pure-PyTorch scan: this is an accelerator, never a requirement.

The shared library is cached per source, compiler flags and CPU (it is built with -march=native) under
$BIOMARKER_CACHE (default ~/.cache/biomarker)/scan_native/.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from einops import rearrange

from .scan_errors import ScanInputError

SOURCE = Path(__file__).with_name("scan_native.c")
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC")
# Linked in a second step WITHOUT -ffast-math: gcc links crtfastmath.o into anything linked with it, shared
# libraries included (before gcc 13), and that object switches on flush-to-zero / denormals-are-zero for the
# WHOLE process the moment the library loads; every other float in Python, numpy and torch would change.
LINK_FLAGS = ("-shared",)
SEGMENT = 64  # must equal SEGMENT in scan_native.c: steps between saved states
MAX_STATE = 256  # must equal MAX_STATE in scan_native.c
MAX_RANK = 64  # must equal MAX_RANK in scan_native.c: the largest low-rank delta input
MAX_WORKERS = 8  # each worker owns a (batch, L, n) gradient buffer for B and C, so cap their number
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_lock = threading.Lock()


def _cpu_fingerprint() -> str:
    """-march=native code must not run on a different CPU sharing the same home folder."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + platform.processor() + flags


def _build(compiler: str, dtype_suffix: str, target: Path) -> None:
    """Compile to a temporary name and rename, so concurrent processes never load a half-written file."""
    defines = ["-DSCAN_DOUBLE"] if dtype_suffix == "f64" else []
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial, objects = Path(tmp) / target.name, Path(tmp) / "scan_native.o"
        for command in ([compiler, *FLAGS, *defines, "-c", "-o", str(objects), str(SOURCE)],
                        [compiler, *LINK_FLAGS, "-o", str(partial), str(objects), "-lm"]):
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        os.replace(partial, target)


@functools.lru_cache(maxsize=None)
def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    """The loaded kernel for `dtype`, building it on first use; None (after one warning) when it cannot."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("no C compiler found: the selective scan uses the pure-PyTorch path (slower on CPU)", stacklevel=3)
        return None
    suffix = _SUFFIX[dtype]
    key = hashlib.sha256(SOURCE.read_bytes() + repr((compiler, FLAGS, LINK_FLAGS)).encode() + _cpu_fingerprint().encode())
    folder = Path(os.environ.get("BIOMARKER_CACHE", Path.home() / ".cache" / "biomarker")) / "scan_native" / key.hexdigest()[:16]
    target = folder / f"scan_{suffix}.so"
    try:
        with _lock:
            if not target.exists():
                folder.mkdir(parents=True, exist_ok=True)
                _build(compiler, suffix, target)
        library = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        warnings.warn(f"the C selective-scan kernel could not be built ({detail.strip()[:300]}); "
                      "using the pure-PyTorch path (slower on CPU)", stacklevel=3)
        return None
    int64, pointer = ctypes.c_int64, ctypes.c_void_p
    rows = ctypes.POINTER(_Rows)
    for base, strided, pointers, tail in (("scan_forward", 6, 5, 1), ("scan_backward", 11, 7, 0), ("conv_silu", 0, 4, 0)):
        function = getattr(library, f"{base}_{suffix}")
        function.argtypes = [int64] * 6 + [rows] * strided + [pointer] * pointers + [int64] * tail
        function.restype = int64
    return library


def native_kernel_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when the C kernel for `dtype` (float32 or float64) is built and loadable on this machine."""
    return dtype in _SUFFIX and _library(dtype) is not None


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="scan")


# A forked child (e.g. a DataLoader worker) inherits the pool object but not its threads: start a new one there.
os.register_at_fork(after_in_child=_pool.cache_clear)


def _channel_ranges(channels: int) -> list[tuple[int, int]]:
    workers = max(1, min(torch.get_num_threads(), MAX_WORKERS, channels))
    bounds = [channels * i // workers for i in range(workers + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _run(function, ranges: list[tuple[int, int]], *args) -> None:
    """Call `function(c0, c1, *args)` for each channel range in parallel threads (ctypes drops the GIL).

    A callable in `args` is called with the worker index to give that worker its own buffer.
    """
    calls = [(c0, c1, *(a(i) if callable(a) else a for a in args)) for i, (c0, c1) in enumerate(ranges)]
    if len(calls) == 1:  # one thread: no hand-off to the pool
        statuses = [function(*calls[0])]
    else:
        statuses = [future.result() for future in [_pool().submit(function, *call) for call in calls]]
    if any(status == 1 for status in statuses):
        raise MemoryError("the selective-scan kernel could not allocate its per-channel scratch rows")
    if any(status != 0 for status in statuses):
        raise ValueError(f"the selective-scan kernel refused its arguments (status {max(statuses)})")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _Rows(ctypes.Structure):
    """A [batch][channel][time] view by element strides, as the C kernel's `Rows`; time may run backwards."""

    _fields_ = [("data", ctypes.c_void_p), ("batch", ctypes.c_int64), ("channel", ctypes.c_int64),
                ("time", ctypes.c_int64)]


def _rows(t: torch.Tensor | None, reverse: bool, time_axis: int = 2) -> _Rows:
    """A (b, d, L) tensor with any strides (time_axis 2), or (b, L, n) state vectors with n contiguous
    (time_axis 1; their channel stride is unused). `reverse` points at the last step and negates the time
    stride, so the kernel runs the scan from the end without anything being flipped in memory."""
    if t is None:
        return _Rows(None, 0, 0, 0)
    time_stride = t.stride(time_axis)
    channel_stride = t.stride(1) if time_axis == 2 else 0
    data = t.data_ptr()
    if reverse:
        data += (t.shape[time_axis] - 1) * time_stride * t.element_size()
        time_stride = -time_stride
    return _Rows(data, t.stride(0), channel_stride, time_stride)


def _empty_rows(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised (b, d, L) tensor laid out like `like` when that is channel-last ((b, L, d) in memory,
    what Linear layers produce and consume), else contiguous: outputs then feed the next layer without a copy."""
    batch, dim, length = like.shape
    if like.stride(1) == 1 and dim > 1:
        return like.new_empty(batch, length, dim).transpose(1, 2)
    return like.new_empty(batch, dim, length)


def _state_rows(t: torch.Tensor) -> torch.Tensor:
    """B or C (b, n, L) as (b, L, n) with n contiguous: a view when it already is (a slice of a channel-last
    projection), else one small copy."""
    rows = t.transpose(1, 2)  # (b, l, n); a plain transpose: this runs 48 times per SSAMBA-tiny forward
    return rows if rows.stride(-1) == 1 else rows.contiguous()


class _NativeScan(torch.autograd.Function):
    """The whole selective scan (bias, softplus, scan, D skip, silu gate) in the fused C kernel.

    Inputs are read and outputs written through their strides (channel-last views included), and a reversed
    scan walks time backwards in place. Backward recomputes states from one checkpoint per SEGMENT steps; it
    saves only the inputs.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus: bool, reverse: bool):
        """u, delta, z: (b, d, L), any strides; A: (d, n); B, C: (b, n, L); D, delta_bias: (d,) or None; one
        dtype (float32 or float64), on CPU. Returns out: (b, d, L), laid out like u."""
        batch, dim, length = u.shape
        Bt, Ct = _state_rows(B), _state_rows(C)
        needs_grad = any(ctx.needs_input_grad)
        checkpoints = u.new_empty(batch, dim, -(-length // SEGMENT), A.shape[1]) if needs_grad else None
        out = _scan_forward(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, reverse, checkpoints)
        if needs_grad:
            ctx.save_for_backward(u, delta, A, Bt, Ct, D, z, delta_bias, checkpoints)
            ctx.softplus, ctx.reverse = softplus, reverse
        return out

    @staticmethod
    def backward(ctx, grad_out):
        u, delta, A, Bt, Ct, D, z, delta_bias, checkpoints = ctx.saved_tensors
        library = _library(u.dtype)
        batch, dim, length = u.shape
        n = A.shape[1]
        reverse = ctx.reverse
        ranges = _channel_ranges(batch * dim)
        grad_u, grad_delta = _empty_rows(u), _empty_rows(delta)
        grad_z = None if z is None else _empty_rows(z)
        grad_A_part = u.new_empty(batch, dim, n)
        grad_D_part = None if D is None else u.new_empty(batch, dim)
        grad_bias_part = None if delta_bias is None else u.new_empty(batch, dim)
        grad_Bt_part = u.new_zeros(len(ranges), batch, length, n)
        grad_Ct_part = u.new_zeros(len(ranges), batch, length, n)
        # Every view below keeps its tensor referenced until the kernel returns (grad_out may be a strided view).
        views = [_rows(t, reverse) for t in (u, delta, z)] + [_rows(Bt, reverse, 1), _rows(Ct, reverse, 1)]
        views += [_rows(t, reverse) for t in (grad_out, grad_u, grad_delta, grad_z)]
        per_worker = [(_rows(grad_Bt_part[i], reverse, 1), _rows(grad_Ct_part[i], reverse, 1)) for i in range(len(ranges))]
        _run(getattr(library, f"scan_backward_{_SUFFIX[u.dtype]}"), ranges, dim, length, n, int(ctx.softplus),
             *map(ctypes.byref, views), lambda i: ctypes.byref(per_worker[i][0]),
             lambda i: ctypes.byref(per_worker[i][1]),
             *map(_ptr, (A, D, delta_bias, checkpoints, grad_A_part, grad_D_part, grad_bias_part)))
        return (
            grad_u,
            grad_delta,
            grad_A_part.sum(0),
            rearrange(grad_Bt_part.sum(0), "b l n -> b n l"),
            rearrange(grad_Ct_part.sum(0), "b l n -> b n l"),
            None if D is None else grad_D_part.sum(0),
            grad_z,
            None if delta_bias is None else grad_bias_part.sum(0),
            None,
            None,
        )


def _scan_forward(u, delta, A, Bt, Ct, D, z, delta_bias, softplus: bool, reverse: bool, checkpoints=None,
                  delta_weight=None) -> torch.Tensor:
    """One call of the forward kernel (no autograd). Bt, Ct: (b, L, n) rows with n contiguous. With
    `delta_weight` (d, rank), `delta` is the low-rank input as (b, L, rank) rows, and delta = delta_weight · it."""
    batch, dim, length = u.shape
    out = _empty_rows(u)
    views = [_rows(u, reverse), _rows(delta, reverse, 1 if delta_weight is not None else 2), _rows(z, reverse),
             _rows(Bt, reverse, 1), _rows(Ct, reverse, 1), _rows(out, reverse)]
    rank = 0 if delta_weight is None else delta_weight.shape[1]
    _run(getattr(_library(u.dtype), f"scan_forward_{_SUFFIX[u.dtype]}"), _channel_ranges(batch * dim), dim, length,
         A.shape[1], int(softplus), *map(ctypes.byref, views),
         *map(_ptr, (A, D, delta_bias, checkpoints, delta_weight)), rank)
    return out


def _check_state_size(A: torch.Tensor) -> None:
    if A.shape[1] > MAX_STATE:  # the kernel keeps the state in fixed-size stack buffers
        raise ScanInputError(f"A has n={A.shape[1]} states; the C kernel holds at most {MAX_STATE} (use backend='torch')")


def selective_scan_native(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          reverse=False) -> torch.Tensor:
    """`selective_scan` on the fused C kernel: CPU tensors, all float32 or all float64, n <= MAX_STATE.
    u, delta, z, B and C are used through their strides (no copies for channel-last views)."""
    _check_state_size(A)
    A, D, delta_bias = (None if t is None else t.contiguous() for t in (A, D, delta_bias))
    return _NativeScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)


def selective_scan_low_rank_native(u, dt_low, delta_weight, A, B, C, D=None, z=None, delta_bias=None,
                                   delta_softplus=False, reverse=False) -> torch.Tensor:
    """Inference only: `selective_scan_native` with delta = delta_weight @ dt_low formed inside the kernel
    (Mamba's dt_proj without its bias, which stays `delta_bias`). dt_low: (b, rank, L), any strides with rank
    contiguous in memory, e.g. a slice of the x_proj output; delta_weight: (d, rank), rank <= MAX_RANK."""
    _check_state_size(A)
    if delta_weight.shape[1] > MAX_RANK or delta_weight.shape[0] != u.shape[1] or dt_low.shape[1] != delta_weight.shape[1]:
        raise ScanInputError(f"delta_weight must be (d={u.shape[1]}, rank <= {MAX_RANK}) matching dt_low "
                             f"{tuple(dt_low.shape)}, got {tuple(delta_weight.shape)}")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (u, dt_low, delta_weight, A, B, C, D, z, delta_bias)):
        raise ScanInputError("the low-rank native scan has no backward; form delta and use selective_scan to train")
    A, D, delta_bias, delta_weight = (None if t is None else t.contiguous() for t in (A, D, delta_bias, delta_weight))
    return _scan_forward(u, _state_rows(dt_low), A, _state_rows(B), _state_rows(C), D, z, delta_bias,
                         delta_softplus, reverse, delta_weight=delta_weight)


def conv_silu_native(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, reverse: bool) -> torch.Tensor:
    """silu(depthwise conv over time) for inference on the CPU, channel-last: x [B, L, C] -> [B, L, C].

    weight [C, K] (tap k multiplies x[t - (K-1) + k], or x[t + (K-1) - k] when `reverse`), bias [C]. No autograd:
    callers use it only when no gradient is wanted (`biomarker.nn.mamba` differentiates the same math in torch).
    """
    x, weight, bias = (t.contiguous() for t in (x, weight.to(x.dtype), bias.to(x.dtype)))
    batch, length, channels = x.shape
    out = torch.empty_like(x)
    _run(getattr(_library(x.dtype), f"conv_silu_{_SUFFIX[x.dtype]}"), _channel_ranges(batch * length), length,
         channels, weight.shape[1], int(reverse), *map(_ptr, (x, weight, bias, out)))
    return out
