"""The Triton scan backend agrees with the sequential reference (outputs and gradients).

Here it runs under Triton's CPU interpreter in a subprocess (the interpreter flag must be set before the kernel
is defined); on the GPU machine the `gpu` test runs the compiled kernel on CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

CHECK = r"""
import torch
from biomarker.nn.scan_reference import scan_core_reference
from biomarker.nn.scan_triton import scan_core_triton
torch.manual_seed(0)
worst = 0.0
for length in (1, 7, 64, 130):
    b, d, n = 2, 6, 16
    base = dict(u=torch.randn(b, d, length), dt=torch.nn.functional.softplus(torch.randn(b, d, length)),
                A=-torch.rand(d, n) * 3 - 0.1, B=torch.randn(b, n, length), C=torch.randn(b, n, length))
    weights = torch.randn(b, d, length, dtype=torch.float64)
    results = []
    for core, dtype in ((scan_core_triton, torch.float32), (scan_core_reference, torch.float64)):
        leaves = {k: v.detach().to(dtype).clone().requires_grad_(True) for k, v in base.items()}
        y = core(**leaves)
        (y.double() * weights).sum().backward()
        results.append([y.detach().double()] + [leaves[k].grad.double() for k in base])
    for got, want in zip(*results):
        worst = max(worst, ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item())
print(worst)
"""


def test_triton_scan_matches_reference_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) <= 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("length", [1, 513, 4096])
def test_triton_scan_on_cuda_matches_reference(length):
    from biomarker.nn.scan import selective_scan

    torch.manual_seed(0)
    b, d, n = 2, 64, 16
    args = dict(u=torch.randn(b, d, length), delta=torch.randn(b, d, length), A=-torch.rand(d, n) * 3 - 0.1,
                B=torch.randn(b, n, length), C=torch.randn(b, n, length), D=torch.randn(d), z=torch.randn(b, d, length))
    reference = selective_scan(**{k: v.double() for k, v in args.items()}, delta_softplus=True, backend="reference")
    got = selective_scan(**{k: v.cuda() for k, v in args.items()}, delta_softplus=True, backend="triton")
    assert ((got.double().cpu() - reference).abs().max() / reference.abs().max()).item() <= 1e-4
