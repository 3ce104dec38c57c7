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

SOURCE = Path(__file__).with_name("scan_native.c")
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-shared")
SEGMENT = 64  # must equal SEGMENT in scan_native.c: steps between saved states
MAX_STATE = 256  # must equal MAX_STATE in scan_native.c
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
        partial = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, *defines, "-o", str(partial), str(SOURCE), "-lm"],
                       check=True, capture_output=True, text=True, timeout=120)
        os.replace(partial, target)


@functools.lru_cache(maxsize=None)
def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    """The loaded kernel for `dtype`, building it on first use; None (after one warning) when it cannot."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("no C compiler found: the selective scan uses the pure-PyTorch path (slower on CPU)", stacklevel=3)
        return None
    suffix = _SUFFIX[dtype]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((compiler, *FLAGS)).encode() + _cpu_fingerprint().encode())
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
    getattr(library, f"scan_forward_{suffix}").argtypes = [int64] * 5 + [pointer] * 7
    getattr(library, f"scan_backward_{suffix}").argtypes = [int64] * 5 + [pointer] * 12
    return library


def native_kernel_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when the C kernel for `dtype` (float32 or float64) is built and loadable on this machine."""
    return dtype in _SUFFIX and _library(dtype) is not None


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="scan")


def _channel_ranges(channels: int) -> list[tuple[int, int]]:
    workers = max(1, min(torch.get_num_threads(), MAX_WORKERS, channels))
    bounds = [channels * i // workers for i in range(workers + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _run(function, ranges: list[tuple[int, int]], *args) -> None:
    """Call `function(c0, c1, *args_for_worker)` for each channel range in parallel threads."""
    futures = [_pool().submit(function, c0, c1, *(a(i) if callable(a) else a for a in args)) for i, (c0, c1) in enumerate(ranges)]
    for future in futures:
        future.result()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _NativeScan(torch.autograd.Function):
    """Core scan y = Σ_n C·h with the fused C kernel; backward recomputes states from per-segment checkpoints."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C):
        """u, dt: (b, d, L); A: (d, n); B, C: (b, n, L); all contiguous, same dtype, on CPU. Returns (b, d, L)."""
        library = _library(u.dtype)
        suffix = _SUFFIX[u.dtype]
        batch, dim, length = u.shape
        n = A.shape[1]
        Bt = rearrange(B, "b n l -> b l n").contiguous()
        Ct = rearrange(C, "b n l -> b l n").contiguous()
        y = torch.empty_like(u)
        needs_grad = any(ctx.needs_input_grad)
        checkpoints = u.new_empty(batch, dim, -(-length // SEGMENT), n) if needs_grad else None
        _run(getattr(library, f"scan_forward_{suffix}"), _channel_ranges(batch * dim), dim, length, n,
             *map(_ptr, (u, dt, A, Bt, Ct, y, checkpoints)))
        if needs_grad:
            ctx.save_for_backward(u, dt, A, Bt, Ct, checkpoints)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, dt, A, Bt, Ct, checkpoints = ctx.saved_tensors
        library = _library(u.dtype)
        batch, dim, length = u.shape
        n = A.shape[1]
        grad_y = grad_y.contiguous()
        ranges = _channel_ranges(batch * dim)
        grad_u, grad_dt = torch.empty_like(u), torch.empty_like(dt)
        grad_A_part = u.new_empty(batch, dim, n)
        grad_Bt_part = u.new_zeros(len(ranges), batch, length, n)
        grad_Ct_part = u.new_zeros(len(ranges), batch, length, n)
        _run(getattr(library, f"scan_backward_{_SUFFIX[u.dtype]}"), ranges, dim, length, n,
             *map(_ptr, (u, dt, A, Bt, Ct, checkpoints, grad_y, grad_u, grad_dt, grad_A_part)),
             lambda i: grad_Bt_part[i].data_ptr(), lambda i: grad_Ct_part[i].data_ptr())
        grad_B = rearrange(grad_Bt_part.sum(0), "b l n -> b n l")
        grad_C = rearrange(grad_Ct_part.sum(0), "b l n -> b n l")
        return grad_u, grad_dt, grad_A_part.sum(0), grad_B, grad_C


def scan_core_native(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Same contract as `scan_reference.scan_core_reference`; CPU tensors of float32 or float64 only."""
    if A.shape[1] > MAX_STATE:  # the kernel keeps the state in fixed-size stack buffers
        from .scan import ScanInputError

        raise ScanInputError(f"A has n={A.shape[1]} states; the C kernel holds at most {MAX_STATE} (use backend='torch')")
    return _NativeScan.apply(u.contiguous(), dt.contiguous(), A.contiguous(), B.contiguous(), C.contiguous())
