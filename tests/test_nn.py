"""Building blocks: attention modes agree, factorized attention is what it claims, adapters, Mamba block."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from biomarker.nn.adapters import ConvPass, make_adapters
from biomarker.nn.attention import (
    attention_flops,
    factorized_attention,
    full_attention_plain,
    full_attention_sdpa,
)
from biomarker.nn.mamba import BiMambaMixer, DirectionalSSM
from biomarker.nn.scan_native import native_kernel_available
from biomarker.nn.tokens import LearnedGridPositions, PatchEmbed, TokenLayout
from biomarker.records import ModelConfigError, ModelInputError


def _layout(lengths: list[int], grid: tuple[int, int], prefix: int) -> TokenLayout:
    return TokenLayout.build(torch.tensor(lengths), grid, prefix)


def _qkv(batch: int, tokens: int, heads: int = 2, dim: int = 8) -> list[torch.Tensor]:
    return [torch.randn(batch, heads, tokens, dim, dtype=torch.float64) for _ in range(3)]


def test_sdpa_matches_plain_attention_with_padding():
    q, k, v = _qkv(3, 10)
    valid = torch.arange(10)[None, :] < torch.tensor([[10], [6], [3]])
    torch.testing.assert_close(full_attention_sdpa(q, k, v, valid), full_attention_plain(q, k, v, valid))


@pytest.mark.parametrize("prefix", [0, 1])
def test_factorized_attention_equals_full_attention_restricted_to_row_and_column(prefix):
    rows, columns = 3, 5
    layout = _layout([15, 9], (rows, columns), prefix)  # clip 1 has 3 real time columns
    q, k, v = (z.requires_grad_() for z in _qkv(2, prefix + rows * columns))
    # The definition, written the slow way: a full attention with a row-or-column (or prefix) mask.
    t = torch.arange(rows * columns) // rows
    f = torch.arange(rows * columns) % rows
    same = (t[:, None] == t[None, :]) | (f[:, None] == f[None, :])
    allowed = torch.ones(prefix + rows * columns, prefix + rows * columns, dtype=torch.bool)
    allowed[prefix:, prefix:] = same
    logits = torch.einsum("bhnd,bhmd->bhnm", q, k) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~(allowed[None, None] & layout.valid[:, None, None, :]), float("-inf"))
    expected = torch.einsum("bhnm,bhmd->bhnd", logits.softmax(-1), v)
    got = factorized_attention(q, k, v, layout)
    real = layout.valid[:, None, :, None].expand_as(got)
    torch.testing.assert_close(got[real], expected[real])
    # Gradients too (the factorized path works in place on its logits).
    weights = torch.randn_like(got) * real
    expected_grads = torch.autograd.grad((expected.masked_fill(~real, 0) * weights).sum(), (q, k, v))
    got_grads = torch.autograd.grad((got * weights).sum(), (q, k, v))
    for mine, reference in zip(got_grads, expected_grads):
        torch.testing.assert_close(mine, reference)


def test_factorized_attention_needs_at_least_five_times_fewer_flops_on_the_pretraining_grid():
    full = attention_flops((8, 64), 192, "sdpa", num_prefix=1)
    factorized = attention_flops((8, 64), 192, "factorized", num_prefix=1)
    assert full / factorized >= 5


def test_patch_embed_orders_tokens_time_major_and_returns_raw_patches_as_targets():
    embed = PatchEmbed(num_features=4, patch=(2, 2), stride=(2, 2), dim=3)
    x = torch.arange(6 * 4, dtype=torch.float32).reshape(1, 6, 4)  # [B, T, F]
    batch = embed(x, torch.tensor([6]))
    assert batch.grid == (2, 3)
    # token 1 = time column 0, frequency row 1: frames 0-1, features 2-3.
    assert batch.targets[0, 1].tolist() == [x[0, 0, 2].item(), x[0, 1, 2].item(), x[0, 0, 3].item(), x[0, 1, 3].item()]


def test_patch_embed_names_bad_inputs():
    embed = PatchEmbed(num_features=8, patch=(8, 4), stride=(8, 4), dim=3)
    with pytest.raises(ModelInputError, match="expects 8 features"):
        embed(torch.zeros(1, 10, 7), torch.tensor([10]))
    with pytest.raises(ModelInputError, match="clip 1 has 3 frames"):
        embed(torch.zeros(2, 10, 8), torch.tensor([10, 3]))
    with pytest.raises(ModelInputError, match="claims 12 frames"):
        embed(torch.zeros(1, 10, 8), torch.tensor([12]))


def test_learned_positions_of_a_long_clip_do_not_depend_on_its_batch():
    positions = LearnedGridPositions((2, 4), dim=3)
    long_alone = positions(torch.tensor([12]), (2, 6))
    in_batch = positions(torch.tensor([12, 4]), (2, 6))
    short_alone = positions(torch.tensor([4]), (2, 2))
    torch.testing.assert_close(in_batch[0], long_alone[0])
    torch.testing.assert_close(in_batch[1, :4], short_alone[0])


def test_adapters_start_as_identity_and_reject_unknown_kinds():
    layout = _layout([6], (2, 3), 1)
    normed, mixed = torch.randn(1, 7, 16), torch.randn(1, 7, 16)
    for kind in ("aat", "conv"):
        adapters = make_adapters(kind, 16)
        torch.testing.assert_close(adapters.around_mixer(normed, mixed, layout), mixed)
        assert adapters.beside_mlp(normed, layout).abs().max() == 0
    with pytest.raises(ModelConfigError, match="lora"):
        make_adapters("lora", 16)


def test_conv_adapter_never_reads_padding():
    conv = ConvPass(8, 4, dropout=0.0)
    torch.nn.init.normal_(conv.up.weight)  # leave the zero init so the output is not trivially zero
    x = torch.randn(1, 2 * 5, 8)
    layout_alone = _layout([6], (2, 3), 0)
    layout_padded = _layout([6], (2, 5), 0)
    alone = conv(x[:, :6], layout_alone)
    garbage = x.clone()
    garbage[:, 6:] = 1e3
    padded = conv(garbage, layout_padded)
    torch.testing.assert_close(padded[:, :6], alone)


def test_mamba_init_follows_s4d_real_and_log_uniform_dt():
    ssm = DirectionalSSM(d_inner=64, d_state=16, d_conv=4, dt_rank=4, dt_min=1e-3, dt_max=1e-1)
    torch.testing.assert_close(-torch.exp(ssm.A_log.detach()), -torch.arange(1.0, 17.0).expand(64, 16))
    dt = F.softplus(ssm.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001


def test_bidirectional_mixer_uses_the_backward_direction():
    """Token 0's output must depend on the last token (Vim's CPU path silently lost this direction)."""
    mixer = BiMambaMixer(dim=16, d_state=4)
    x = torch.randn(1, 12, 16, requires_grad=True)
    layout = _layout([12], (1, 12), 0)
    mixer(x, layout)[0, 0].sum().backward()
    assert x.grad[0, -1].abs().sum() > 0
    # And each direction alone is causal its own way: ahead, token 0 sees no later token; behind (the scan
    # from the end, done in place), the last token sees no earlier one.
    xs, z = mixer.in_proj(x).chunk(2, dim=-1)
    for ssm, probe, unseen in ((mixer.forward_ssm, 0, slice(1, None)), (mixer.backward_ssm, -1, slice(None, -1))):
        x.grad = None
        ssm(xs, z, layout.valid)[0, probe].sum().backward(retain_graph=True)
        assert x.grad[0, unseen].abs().sum() == 0
        assert x.grad[0, probe].abs().sum() > 0


def test_backward_direction_is_the_forward_math_on_the_flipped_sequence():
    """The in-place reverse (look-ahead conv, scan from the end) equals flipping, scanning, flipping back."""
    torch.manual_seed(0)
    mixer = BiMambaMixer(dim=16, d_state=4).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    valid = torch.ones(2, 11, dtype=torch.bool)
    xs, z = mixer.in_proj(x).chunk(2, dim=-1)
    mixer.forward_ssm.load_state_dict(mixer.backward_ssm.state_dict())
    behind = mixer.backward_ssm(xs, z, valid)
    flipped = mixer.forward_ssm(xs.flip(1), z.flip(1), valid).flip(1)
    torch.testing.assert_close(behind, flipped, atol=1e-12, rtol=1e-12)


def test_bidirectional_mixer_gives_each_clip_of_a_padded_batch_its_alone_output():
    mixer = BiMambaMixer(dim=16, d_state=4)
    x = torch.randn(2, 10, 16)
    x[1, 6:] = 50.0  # padding garbage must not leak in either direction
    padded = mixer(x, _layout([10, 6], (1, 10), 0))
    alone = mixer(x[1:, :6], _layout([6], (1, 6), 0))
    torch.testing.assert_close(padded[1, :6], alone[0], atol=1e-5, rtol=1e-5)


def test_bench_fits_the_time_exponent_of_a_power_law():
    from biomarker.bench.encoders import fitted_exponent

    points = [{"tokens": n, "seconds": 3e-6 * n**1.5} for n in (512, 2048, 8192)]
    assert abs(fitted_exponent(points) - 1.5) < 1e-9
    assert fitted_exponent(points[:1]) is None


def test_bench_times_the_encoders_of_one_token_count_taking_turns(monkeypatch):
    """On a VM whose speed drifts, the ratio is fair only when the encoders alternate in one process; an encoder
    whose warm-up is already slower than slow_s is run once, not repeated."""
    from biomarker.bench import encoders

    calls: list[str] = []

    def fake_build_run(encoder, mode, tokens, batch):
        def run():
            calls.append(encoder)
            if encoder == "slow":
                time.sleep(0.2)

        return run

    monkeypatch.setattr(encoders, "build_run", fake_build_run)
    points = [{"encoder": name, "mode": "forward", "tokens": 16, "batch": 1} for name in ("a", "b", "slow")]
    encoders.time_interleaved(points, repeats=3, slow_s=0.1, threads=1)
    assert calls == ["a", "b", "slow"] + ["a", "b"] * 3
    assert [p["runs"] for p in points] == [3, 3, 1]
    assert all(p["seconds"] >= 0 and p["cpu_seconds"] >= 0 for p in points)


@pytest.mark.skipif(not native_kernel_available(), reason="needs the C kernel (a C compiler)")
@pytest.mark.parametrize("reverse", [False, True], ids=["causal", "look-ahead"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_scoring_conv_kernel_equals_the_differentiable_path(reverse, dtype):
    """Without gradients the CPU runs silu(conv) in one C pass; it must equal the torch path training uses,
    including the clip edges, where the taps reach outside the clip."""
    torch.manual_seed(0)
    ssm = DirectionalSSM(24, 4, 4, 2, 1e-3, 1e-1, reverse=reverse).to(dtype)
    x = torch.randn(3, 17, 24, dtype=dtype)
    with torch.no_grad():
        fused = ssm.conv_silu(x)
    trained = F.silu(ssm.depthwise_conv(x))
    assert trained.requires_grad  # the torch path was really the one taken with gradients on
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fused, trained.detach(), atol=tolerance, rtol=tolerance)


@pytest.mark.skipif(not native_kernel_available(), reason="needs the C kernel (a C compiler)")
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("channels", [20, 37])
def test_scoring_direction_with_dt_proj_in_the_kernel_equals_the_differentiable_path(reverse, dtype, channels):
    """Scoring forms dt_proj's product inside the C scan (from the strided x_proj slice); training runs
    F.linear + the autograd scan. Both directions, both dtypes, a state size and rank that fill no full vector,
    and channel counts that end in a partial tile of 8 or 16 lanes (37: two full 16-lane tiles and 5 left)."""
    torch.manual_seed(1)
    ssm = DirectionalSSM(channels, 5, 4, 3, 1e-3, 1e-1, reverse=reverse).to(dtype)
    x, z = torch.randn(2, 70, channels, dtype=dtype), torch.randn(2, 70, channels, dtype=dtype)
    with torch.no_grad():
        fused = ssm(x, z, None)
    trained = ssm(x, z, None)
    assert trained.requires_grad
    tolerance = 2e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fused, trained.detach(), atol=tolerance, rtol=tolerance)


@pytest.mark.skipif(not native_kernel_available(), reason="needs the C kernel (a C compiler)")
def test_low_rank_native_scan_refuses_gradients_and_oversized_ranks():
    from biomarker.nn.scan import ScanInputError
    from biomarker.nn.scan_native import MAX_RANK, selective_scan_low_rank_native

    u, z = torch.randn(1, 8, 5), torch.randn(1, 8, 5)
    A, B, C = -torch.rand(8, 4), torch.randn(1, 4, 5), torch.randn(1, 4, 5)
    weight = torch.randn(8, 2, requires_grad=True)
    with pytest.raises(ScanInputError, match="no backward"):
        selective_scan_low_rank_native(u, torch.randn(1, 2, 5), weight, A, B, C, z=z)
    with pytest.raises(ScanInputError, match=f"rank <= {MAX_RANK}"):
        selective_scan_low_rank_native(u, torch.randn(1, MAX_RANK + 1, 5), torch.randn(8, MAX_RANK + 1), A, B, C)
