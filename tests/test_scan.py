"""The fast selective scan agrees with the sequential oracle in outputs and in the gradient of every input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import biomarker.nn.scan_native as scan_native
import biomarker.nn.scan_torch as scan_torch
from biomarker.device import mamba_kernel_available
from biomarker.nn.scan import (
    ScanBackendUnavailableError,
    ScanInputError,
    resolve_backend,
    selective_scan,
)

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
# every fast CPU backend this machine can run; the C kernel needs a C compiler (CI has one)
CPU_BACKENDS = ["torch"] + (["native"] if scan_native.native_kernel_available() else [])
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, state, length, dtype, *, seed=0, device="cpu"):
    """Mamba-like inputs: A < 0 (S4D-real scale), dt ≥ 0 even without softplus, so decays stay in (0, 1]."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    inputs = {
        "u": randn(batch, dim, length),
        "delta": rand(batch, dim, length) * 0.5,
        "A": -(rand(dim, state) * state + 0.5),
        "B": randn(batch, state, length),
        "C": randn(batch, state, length),
        "D": randn(dim),
        "z": randn(batch, dim, length),
        "delta_bias": rand(dim) * 0.1,
    }
    return {k: v.to(device).requires_grad_() for k, v in inputs.items()}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| over the largest |expected| (absolute when the reference is all zeros)."""
    scale = expected.abs().max().item()
    return (actual - expected).abs().max().item() / (scale if scale > 0 else 1.0)


def run_with_grads(inputs, options, backend, seed=1, reverse=False):
    used = {k: v for k, v in inputs.items() if k in ("u", "delta", "A", "B", "C") or options.get(k, False)}
    kwargs = {k: used[k] for k in ("D", "z", "delta_bias") if k in used}
    y = selective_scan(used["u"], used["delta"], used["A"], used["B"], used["C"], **kwargs,
                       delta_softplus=options.get("softplus", False), backend=backend, reverse=reverse)
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype).to(y.device)
    if reverse:  # the same incoming gradient, per step, as the flipped run it is compared with
        grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype).flip(-1).to(y.device)
    names = list(used)
    grads = torch.autograd.grad(y, [used[k] for k in names], grad_out)
    return {"y": y.detach(), **{f"grad {k}": g for k, g in zip(names, grads)}}


def assert_backends_agree(inputs, options, backends, tolerance, reference_inputs=None):
    """Outputs and every input's gradient of each backend against one run of the sequential oracle."""
    expected = run_with_grads(reference_inputs or inputs, options, "reference")
    for backend in backends:
        actual = run_with_grads(inputs, options, backend)
        assert actual.keys() == expected.keys()
        for key in expected:
            err = relative_error(actual[key].cpu().to(expected[key].dtype), expected[key])
            assert err <= tolerance, f"{key}: relative error {err:.2e} > {tolerance:.0e} ({backend} vs reference)"


ALL = {"D": True, "z": True, "delta_bias": True, "softplus": True}
NONE: dict[str, bool] = {}
EACH = [{"D": True}, {"z": True}, {"delta_bias": True}, {"softplus": True}]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize(
    "length, options",
    [(L, o) for L in (1, 7, 64, 513, 2048) for o in (NONE, ALL)] + [(L, o) for L in (7, 513) for o in EACH],
    ids=lambda v: "-".join(k for k in v) or "plain" if isinstance(v, dict) else f"L{v}",
)
def test_fast_backends_match_reference(length, options, dtype):
    dim = 3 if length >= 2048 else 6
    inputs = make_inputs(2, dim, 4, length, dtype)
    assert_backends_agree(inputs, options, CPU_BACKENDS, TOLERANCE[dtype])


def test_superblock_boundaries_carry_state_and_gradient(monkeypatch):
    """Force many tiny superblocks (and ragged chunks) so both carries cross block edges."""
    monkeypatch.setattr(scan_torch, "SCRATCH_FLOATS", 2 * 5 * 4 * 37)
    inputs = make_inputs(2, 5, 4, 300, torch.float64)
    assert_backends_agree(inputs, ALL, ["torch"], TOLERANCE[torch.float64])


def test_mamba_initialised_long_sequence_fp32():
    """S4D-real A = -(1..n) and dt log-uniform in [1e-3, 1e-1] as in a freshly built SSAMBA layer."""
    dim, state, length = 4, 16, 2048
    inputs = make_inputs(1, dim, state, length, torch.float32)
    with torch.no_grad():
        inputs["A"].copy_(-torch.arange(1, state + 1, dtype=torch.float32).expand(dim, state))
        dt = torch.exp(torch.empty(dim).uniform_(torch.log(torch.tensor(1e-3)).item(), torch.log(torch.tensor(1e-1)).item()))
        inputs["delta_bias"].copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        inputs["delta"].normal_(0.0, 0.5)
    assert_backends_agree(inputs, ALL, CPU_BACKENDS, TOLERANCE[torch.float32])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_are_right_when_the_incoming_gradient_is_not_contiguous(backend):
    """In SSAMBA the scan's output is transposed before out_proj, so autograd hands the backward a strided
    gradient; the C kernel once read a freed temporary copy of it (gradients off by 1e31 in training)."""
    torch.manual_seed(0)
    batch, dim, state, length = 2, 16, 4, 50
    inputs = [torch.randn(batch, dim, length), F.softplus(torch.randn(batch, dim, length)), -torch.rand(dim, state) - 0.1,
              torch.randn(batch, state, length), torch.randn(batch, state, length)]
    mixing = torch.randn(dim, dim)
    grads = {}
    for name in ("reference", backend):
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        y = selective_scan(*leaves, backend=name)
        (y.transpose(1, 2) @ mixing).square().sum().backward()  # grad of y arrives as a transposed view
        grads[name] = [t.grad for t in leaves]
    for got, want in zip(grads[backend], grads["reference"]):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def channel_last(t: torch.Tensor) -> torch.Tensor:
    """The same values as a (b, d, L) view of a (b, L, d) tensor, as a Linear layer's output is laid out."""
    return t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()


def state_slice(t: torch.Tensor, width: int = 3) -> torch.Tensor:
    """B or C as a (b, n, L) view into a wider (b, L, n + width) projection, as SSAMBA slices x_proj's output."""
    batch, n, length = t.shape
    wide = torch.zeros(batch, length, n + width, dtype=t.dtype)
    wide[..., width:] = t.detach().transpose(1, 2)
    return wide[..., width:].transpose(1, 2).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("length", [1, 70, 513])
def test_strided_inputs_and_reverse_scans_match_the_flipped_reference(length, reverse, dtype):
    """The C kernel reads channel-last views and sliced B/C through their strides, and scans backwards in
    place; every backend must equal the oracle on flipped inputs, in outputs and in every gradient."""
    inputs = make_inputs(2, 6, 4, length, dtype, seed=3)
    strided = {k: channel_last(v) if k in ("u", "delta", "z") else state_slice(v) if k in ("B", "C") else v
               for k, v in inputs.items()}
    if length > 1:
        assert not any(strided[name].is_contiguous() for name in ("u", "delta", "z", "B", "C"))
    expected = run_with_grads({k: v.flip(-1) if v.dim() == 3 else v for k, v in inputs.items()}, ALL, "reference") \
        if reverse else run_with_grads(inputs, ALL, "reference")
    if reverse:  # flip the oracle's time axis back
        expected = {k: v.flip(-1) if v.dim() == 3 else v for k, v in expected.items()}
    for backend in CPU_BACKENDS:
        actual = run_with_grads(strided, ALL, backend, reverse=reverse)
        for key in expected:
            err = relative_error(actual[key].to(expected[key].dtype), expected[key])
            assert err <= TOLERANCE[dtype], f"{key}: relative error {err:.2e} ({backend}, reverse={reverse})"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_output_keeps_a_channel_last_layout_so_the_next_linear_layer_needs_no_copy(backend):
    inputs = {k: channel_last(v) if k in ("u", "delta", "z") else v for k, v in make_inputs(1, 8, 4, 20, torch.float32).items()}
    y = selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], z=inputs["z"], backend=backend)
    assert y.shape == (1, 8, 20)
    if backend == "native":
        assert y.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("backend", ["reference", *CPU_BACKENDS])
def test_zero_delta_steps_leave_state_unchanged(backend):
    """Inserting steps with delta = 0 (padding) does not change the outputs at the real steps."""
    inputs = {k: v.detach() for k, v in make_inputs(2, 5, 4, 40, torch.float64).items()}
    real = selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], D=inputs["D"],
                          z=inputs["z"], backend=backend)
    keep = torch.ones(55, dtype=torch.bool)
    keep[[0, 3, 4, 20, 21, 22, 23, 24, 25, 26, 50, 51, 52, 53, 54]] = False

    def spread(t, fill):
        out = torch.randn(*t.shape[:-1], 55, dtype=t.dtype) if fill is None else torch.full((*t.shape[:-1], 55), fill, dtype=t.dtype)
        out[..., keep] = t
        return out

    padded = selective_scan(spread(inputs["u"], None), spread(inputs["delta"], 0.0), inputs["A"], spread(inputs["B"], None),
                            spread(inputs["C"], None), D=inputs["D"], z=spread(inputs["z"], None), backend=backend)
    assert relative_error(padded[..., keep], real) <= 1e-12


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_output_keeps_input_dtype_and_state_stays_fp32_under_autocast(backend):
    inputs = {k: v.detach() for k, v in make_inputs(2, 6, 4, 200, torch.float32).items()}
    exact = selective_scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C")), D=inputs["D"], z=inputs["z"],
                           delta_softplus=True, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = selective_scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C")), D=inputs["D"], z=inputs["z"],
                              delta_softplus=True, backend=backend)
        low = selective_scan(inputs["u"].bfloat16(), *(inputs[k] for k in ("delta", "A", "B", "C")), D=inputs["D"],
                             z=inputs["z"], delta_softplus=True, backend=backend)
    assert same.dtype == torch.float32 and torch.equal(same, exact)
    assert low.dtype == torch.bfloat16
    # only u is rounded to bf16 and the output rounded once: error stays at bf16 resolution, not log-L growth
    assert relative_error(low.float(), exact) <= 2e-2


def test_auto_prefers_the_c_kernel_on_cpu_and_falls_back_to_torch_for_huge_states():
    expected = "native" if scan_native.native_kernel_available() else "torch"
    assert resolve_backend("auto", torch.zeros(1, 1, 1), state_size=16) == expected
    assert resolve_backend("auto", torch.zeros(1, 1, 1), state_size=scan_native.MAX_STATE + 1) == "torch"


def test_kernel_that_cannot_be_built_warns_and_auto_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("BIOMARKER_CACHE", str(tmp_path))
    scan_native._library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="pure-PyTorch"):
            assert resolve_backend("auto", torch.zeros(1, 1, 1)) == "torch"
        with pytest.raises(ScanBackendUnavailableError, match="backend='torch'"):
            resolve_backend("native", torch.zeros(1, 1, 1))
    finally:
        scan_native._library.cache_clear()


def test_loading_the_native_kernel_leaves_denormal_floats_alone():
    """A -ffast-math shared library can switch on flush-to-zero for the whole process when it loads; the
    kernel is linked so that it does not, and a subnormal number still survives arithmetic afterwards."""
    code = ("import torch; import biomarker.nn.scan_native as k; assert k.native_kernel_available(torch.float32); "
            "assert k.native_kernel_available(torch.float64); print((torch.tensor([1e-39]) * 1).item())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "AssertionError" in done.stderr:
        pytest.skip("no C compiler for the native kernel")
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) > 0


@pytest.mark.skipif(not scan_native.native_kernel_available(), reason="no C compiler for the native kernel")
def test_native_kernel_rejects_state_larger_than_its_buffers():
    inputs = {k: v.detach() for k, v in make_inputs(1, 2, scan_native.MAX_STATE + 1, 3, torch.float32).items()}
    with pytest.raises(ScanBackendUnavailableError, match=f"<= {scan_native.MAX_STATE}"):
        selective_scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C")), backend="native")


def test_cuda_backend_on_cpu_names_the_gpu_extra():
    inputs = make_inputs(1, 2, 2, 3, torch.float32)
    with pytest.raises(ScanBackendUnavailableError, match=r"\[gpu\]"):
        selective_scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C")), backend="cuda")


def test_unknown_backend_is_named():
    with pytest.raises(ScanInputError, match="'fast'"):
        resolve_backend("fast", torch.zeros(1, 1, 1))


@pytest.mark.parametrize(
    "name, bad",
    [("delta", torch.zeros(2, 3, 6)), ("B", torch.zeros(2, 5, 7)), ("C", torch.zeros(1, 4, 7)), ("D", torch.zeros(4)),
     ("z", torch.zeros(2, 3, 8)), ("delta_bias", torch.zeros(3, 1))],
)
def test_shape_mismatch_names_the_argument_and_its_shape(name, bad):
    inputs = {k: v.detach() for k, v in make_inputs(2, 3, 4, 7, torch.float32).items()}
    inputs[name] = bad
    with pytest.raises(ScanInputError, match=rf"^{name} must have shape .* got \({', '.join(map(str, bad.shape))},?\)"):
        selective_scan(**{k: inputs[k] for k in NAMES}, backend="torch")


def test_empty_sequence_is_rejected():
    inputs = {k: v.detach() for k, v in make_inputs(1, 2, 2, 1, torch.float32).items()}
    empty = {k: v[..., :0] if v.dim() == 3 else v for k, v in inputs.items()}
    with pytest.raises(ScanInputError, match="L=0"):
        selective_scan(**{k: empty[k] for k in NAMES})


@pytest.mark.gpu
@pytest.mark.parametrize("length", [1, 64, 513, 2048])
def test_torch_backend_on_cuda_matches_reference(length):
    cpu = make_inputs(2, 8, 16, length, torch.float32)
    cuda = {k: v.detach().cuda().requires_grad_() for k, v in cpu.items()}
    assert_backends_agree(cuda, ALL, ["torch"], 1e-4, reference_inputs=cpu)


@pytest.mark.gpu
@pytest.mark.skipif(not mamba_kernel_available(), reason="mamba-ssm's kernel is not installed ([gpu] extra)")
@pytest.mark.parametrize("length", [1, 64, 513, 2048])
def test_mamba_kernel_matches_reference(length):
    cpu = make_inputs(2, 8, 16, length, torch.float32)
    cuda = {k: v.detach().cuda().requires_grad_() for k, v in cpu.items()}
    assert_backends_agree(cuda, ALL, ["cuda", "auto"], 1e-4, reference_inputs=cpu)


def test_bench_scan_writes_table_json_and_plot(tmp_path):
    """A tiny run of `biomarker bench scan` (timings are measured, never asserted)."""
    from biomarker.bench.scan import ScanBenchConfig, ScanShape, main, peak_memory_mb

    config = ScanBenchConfig(lengths=(8, 16), batch_points=(), memory_lengths=(), repeats=1, dim=4, state=4, device="cpu", threads=1)
    report = main(config, out=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"scan.md", "scan.json", "scan.png"}
    assert [(r["length"], r["pass"]) for r in report["timing"]] == [(8, "fwd"), (8, "fwd+bwd"), (16, "fwd"), (16, "fwd+bwd")]
    assert all(r[f"{b}_s"] > 0 for r in report["timing"] for b in ["reference", *CPU_BACKENDS])
    assert "| 16 | fwd+bwd |" in (tmp_path / "scan.md").read_text()
    # peak memory comes from a fresh process; ru_maxrss never falls, so the rise is a finite non-negative number
    assert peak_memory_mb(ScanShape(1, 4, 4, 8), "torch", True, torch.device("cpu"), 1) >= 0


def _native_scan_sum(queue) -> None:
    torch.set_num_threads(2)
    inputs = {k: v.detach() for k, v in make_inputs(1, 8, 4, 64, torch.float32).items()}
    queue.put(selective_scan(**{k: inputs[k] for k in NAMES}, backend="native").sum().item())


@pytest.mark.skipif(not scan_native.native_kernel_available(), reason="no C compiler for the native kernel")
def test_native_kernel_works_in_a_forked_child_after_the_parent_used_its_threads():
    """A DataLoader-style fork must not inherit a thread pool whose threads do not exist (a hang)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    torch.set_num_threads(2)
    _native_scan_sum(queue)
    expected = queue.get(timeout=60)
    child = context.Process(target=_native_scan_sum, args=(queue,))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        pytest.fail("the native scan hung in a forked child")
    assert queue.get(timeout=10) == expected
