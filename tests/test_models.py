"""Registry, encoders, checkpoints and the screening bundle, all with tiny configs built here."""

from __future__ import annotations

import pytest
import torch

from biomarker.models import ScreeningModel, create_model, from_pretrained, list_models
from biomarker.records import CohortError, ModelConfigError, ModelInputError, ModelNotFoundError

TINY = dict(depth=2, embed_dim=32)
# Published encoder sizes (see docs/models.md): patch models on 128 mel bins, SSAMBA at depth 24.
TARGET_PARAMS = {
    "ssast-tiny-patch": 5.5e6,
    "ssast-small-patch": 21.6e6,
    "ssast-base-patch": 85.7e6,
    "ssamba-tiny": 6.9e6,
    "ssamba-small": 25.4e6,
    "ssamba-base": 96.7e6,
}


def tiny(name: str, **overrides) -> torch.nn.Module:
    extra = {} if name.startswith("ssamba") else {"num_heads": 2}
    return create_model(name, **{**TINY, **extra, **overrides})


def batch(frames: int = 80, features: int = 128, lengths: tuple[int, ...] = (80, 45, 20)):
    return torch.randn(len(lengths), frames, features), torch.tensor(lengths)


def test_registry_names():
    names = set(list_models())
    expected = {f"ssast-{s}-{t}" for s in ("tiny", "small", "base") for t in ("patch", "frame")}
    expected |= {f"ssamba-{s}" for s in ("tiny", "small", "base")} | {"mfccgram-transformer"}
    assert names == expected


@pytest.mark.parametrize("name", sorted(TARGET_PARAMS))
def test_parameter_counts_match_the_published_encoders(name):
    with torch.device("meta"):
        model = create_model(name)
    assert abs(model.backbone_parameter_count() / TARGET_PARAMS[name] - 1) <= 0.05


def test_mfccgram_transformer_has_the_paper_shape():
    config = create_model("mfccgram-transformer").config
    assert (config.depth, config.embed_dim, config.num_heads, config.embed_dim * config.mlp_ratio) == (3, 512, 8, 2048)
    assert config.positions == "sinusoidal" and config.patch == (128, 1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_backward_and_reloads_identically(name, tmp_path):
    model = tiny(name)
    x, lengths = batch()
    tokens, token_lengths = model.forward_features(x, lengths)
    assert tokens.shape[0] == 3 and tokens.shape[2] == 32
    assert token_lengths[0] > token_lengths[1] > token_lengths[2]
    pooled = model.pool(tokens, token_lengths)
    pooled.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.blocks.parameters())

    model.eval()
    model.save_pretrained(tmp_path / "fp32", dtype=torch.float32)
    with torch.no_grad():
        expected = model(x, lengths)
        assert torch.equal(from_pretrained(tmp_path / "fp32")(x, lengths), expected)
        # Default fp16 on disk: the reloaded fp32 model equals this one with its weights rounded to fp16.
        model.save_pretrained(tmp_path / "fp16")
        assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < (tmp_path / "fp32" / "model.safetensors").stat().st_size
        reloaded = from_pretrained(tmp_path / "fp16")
        assert all(p.dtype == torch.float32 for p in reloaded.parameters())
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
        assert torch.equal(reloaded(x, lengths), model(x, lengths))
    assert reloaded.feature_config == model.feature_config and reloaded.config == model.config


@pytest.mark.parametrize("name", ["ssast-tiny-patch", "ssamba-tiny"])
def test_a_pretrained_encoder_can_keep_only_its_first_blocks(name, tmp_path):
    model = tiny(name, depth=3).eval()
    model.save_pretrained(tmp_path / "enc", dtype=torch.float32)
    shallow = from_pretrained(tmp_path / "enc", overrides={"depth": 2})
    assert len(shallow.blocks) == 2 and shallow.config.depth == 2
    model.blocks = model.blocks[:2]  # the same network by hand: the first two blocks, the same final norm
    x, lengths = batch()
    with torch.no_grad():
        assert torch.equal(shallow(x, lengths), model(x, lengths))
    with pytest.raises(ModelConfigError, match="1 to 3"):
        from_pretrained(tmp_path / "enc", overrides={"depth": 4})
    bundle = ScreeningModel(tiny(name, depth=3), name="b", version="1")
    bundle.add_cohort("default")
    bundle.save_pretrained(tmp_path / "bundle")
    with pytest.raises(ModelConfigError, match="bare pretrained encoder"):
        from_pretrained(tmp_path / "bundle", overrides={"depth": 2})


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("ssast-tiny-patch", {}),
        ("ssast-tiny-patch", {"attention": "factorized"}),
        ("ssast-tiny-frame", {"attention": "plain"}),
        ("ssamba-tiny", {}),
        ("ssamba-tiny", {"max_columns": 2}),  # positions stretched beyond the table
        ("mfccgram-transformer", {}),
        ("ssamba-tiny", {"pooling": "layer-stats"}),  # every layer's mean and std: padding counts in neither
        ("ssast-tiny-patch", {"pooling": "layer-stats"}),
    ],
)
def test_a_clip_alone_and_inside_a_padded_batch_get_the_same_embedding(name, overrides):
    model = tiny(name, **overrides).eval()
    x, lengths = batch(frames=96, lengths=(96, 61, 33))
    x[1, 61:] = 1e4  # padding content must not matter
    with torch.no_grad():
        together = model(x, lengths)
        alone = torch.cat([model(x[i : i + 1, :n]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["ssamba-tiny", "ssast-tiny-patch"])
def test_layer_statistics_pool_every_block_output_and_end_with_the_mean_pooling(name):
    torch.manual_seed(0)
    mean_model = tiny(name, depth=3).eval()
    stats_model = tiny(name, depth=3, pooling="layer-stats").eval()
    stats_model.load_state_dict(mean_model.state_dict())  # pooling adds no weight
    x, lengths = batch()
    outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for block in stats_model.blocks]
    with torch.no_grad():
        pooled = stats_model(x, lengths)
        expected_mean = mean_model(x, lengths)
    for hook in hooks:
        hook.remove()
    dim = 32
    assert pooled.shape == (3, stats_model.pooled_dim) == (3, (3 + 1) * 2 * dim)
    layers = pooled.reshape(3, 4, 2, dim)  # [clip, layer (3 blocks, then the final norm), mean|std, D]
    assert torch.equal(layers[:, -1, 0], expected_mean)
    clip, tokens = 2, int(stats_model.tokenize(x[2:3, : lengths[2]]).lengths)
    for layer, output in enumerate(outputs):  # block outputs keep the cls token first; only grid tokens are pooled
        real = output[clip, stats_model.num_prefix : stats_model.num_prefix + tokens]
        torch.testing.assert_close(layers[clip, layer, 0], real.mean(0), atol=1e-5, rtol=0)
        torch.testing.assert_close(layers[clip, layer, 1], real.std(0, unbiased=False), atol=1e-5, rtol=0)


def test_pooling_changes_on_a_bare_encoder_only(tmp_path):
    tiny("ssamba-tiny").save_pretrained(tmp_path / "enc", dtype=torch.float32)
    assert from_pretrained(tmp_path / "enc", overrides={"pooling": "layer-stats"}).pooled_dim == 3 * 2 * 32
    bundle = ScreeningModel(tiny("ssamba-tiny"), name="b", version="1")
    bundle.add_cohort("default")
    bundle.save_pretrained(tmp_path / "bundle")
    with pytest.raises(ModelConfigError, match="bundle's heads"):
        from_pretrained(tmp_path / "bundle", overrides={"pooling": "layer-stats"})
    with pytest.raises(ModelConfigError, match="pooling='max'"):
        tiny("ssamba-tiny", pooling="max")


def test_forward_features_is_encode_of_tokenize_and_targets_hold_raw_patches():
    model = tiny("ssast-tiny-patch").eval()
    x, lengths = batch()
    tokens = model.tokenize(x, lengths)
    assert tokens.embeddings.shape[:2] == tokens.targets.shape[:2]
    assert tokens.targets.shape[2] == 16 * 16 and tokens.grid == (8, 5)
    assert model.mask_embedding.shape == (32,)
    with torch.no_grad():
        features, _ = model.forward_features(x, lengths)
        torch.testing.assert_close(features, model.encode(tokens.embeddings, tokens.lengths))
        masked = tokens.embeddings.clone()
        masked[:, 0] = model.mask_embedding
        assert not torch.allclose(model.encode(masked, tokens.lengths), features)


def test_registry_and_inputs_fail_with_named_errors():
    with pytest.raises(ModelNotFoundError, match="ssast-huge"):
        create_model("ssast-huge")
    with pytest.raises(ModelConfigError, match="embed_dimm"):
        create_model("ssast-tiny-patch", embed_dimm=8)
    with pytest.raises(ModelConfigError, match="attention"):
        create_model("ssast-tiny-patch", attention="linear")
    model = tiny("ssast-tiny-patch")
    with pytest.raises(ModelInputError, match="expects 128 features"):
        model(torch.zeros(1, 40, 80))
    with pytest.raises(ModelNotFoundError):
        from_pretrained("/nonexistent/model")


@pytest.mark.parametrize("kind", ["aat", "conv"])
def test_adapter_sets_are_switches_on_one_frozen_model(kind):
    model = tiny("ssast-tiny-patch").eval()
    x, lengths = batch()
    with torch.no_grad():
        plain = model(x, lengths)
    model.add_adapter_set("clinic", kind)
    model.use_adapter_set("clinic")
    for parameter in model.adapter_parameters("clinic"):  # make the set do something
        torch.nn.init.normal_(parameter, std=0.1)
    trainable = model.freeze_backbone("clinic")
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    model(x, lengths).sum().backward()
    assert all(p.grad is None for p in model.patch_embed.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapter_parameters("clinic"))
    with torch.no_grad():
        assert not torch.allclose(model(x, lengths), plain)
        model.use_adapter_set(None)
        assert torch.equal(model(x, lengths), plain)
    with pytest.raises(ModelConfigError, match="already exists"):
        model.add_adapter_set("clinic", kind)
    with pytest.raises(ModelConfigError, match="no adapter set"):
        model.use_adapter_set("other")


def test_aat_adapters_train_about_seven_percent_of_ssast_base():
    with torch.device("meta"):
        model = create_model("ssast-base-patch")
        model.add_adapter_set("cohort", "aat")
    share = model.freeze_backbone("cohort") / sum(p.numel() for p in model.parameters())
    assert 0.06 <= share <= 0.08


def _bundle() -> ScreeningModel:
    bundle = ScreeningModel(tiny("ssamba-tiny").eval(), name="ri-test", version="1", parent="ssamba-tiny@test")
    bundle.add_cohort("clinic-a", "aat")
    return bundle.eval()


def _perturb(bundle: ScreeningModel, cohort: str) -> None:
    """Stand-in for training one cohort: change only its trainable parameters."""
    bundle.train_only(cohort)
    with torch.no_grad():
        for parameter in bundle.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)


def test_adding_a_cohort_leaves_every_earlier_cohort_bit_identical(tmp_path):
    bundle = _bundle()
    _perturb(bundle, "clinic-a")
    x, lengths = batch()
    with torch.no_grad():
        before = bundle.logits(x, lengths, cohort="clinic-a")
        bundle.add_cohort("clinic-b", "conv")
        bundle.add_cohort("phone", None)
        _perturb(bundle, "clinic-b")
        _perturb(bundle, "phone")
        assert torch.equal(bundle.logits(x, lengths, cohort="clinic-a"), before)
        assert torch.equal(bundle.logits(x, lengths), before)  # the first cohort stays the default
        assert not torch.equal(bundle.logits(x, lengths, cohort="clinic-b"), before)


def test_a_window_mean_cohort_scores_a_recording_by_the_mean_probability_of_its_windows(tmp_path):
    """The app must score a recording the way its calibration was fitted: with `window-mean` the probability
    is sigmoid(logit(mean window probability) / T), each window scored on its own."""
    bundle = _bundle()
    _perturb(bundle, "clinic-a")
    bundle.set_calibration("clinic-a", temperature=1.5, scoring="window-mean", window_frames=40, hop_frames=20)
    x, lengths = batch()
    with torch.no_grad():
        probabilities = bundle.probability(x, lengths)
        for clip, n, probability in zip(x, lengths.tolist(), probabilities):
            starts = sorted({*range(0, n - 40 + 1, 20), n - 40}) if n > 40 else [0]
            windows = [clip[s : s + 40] if n > 40 else clip[:n] for s in starts]
            mean = torch.stack([bundle.logits(w[None]).sigmoid() for w in windows]).mean()
            assert torch.allclose(probability, torch.sigmoid(torch.logit(mean) / 1.5), atol=1e-5)
        whole = torch.sigmoid(bundle.logits(x, lengths) / 1.5)
        assert not torch.allclose(probabilities, whole, atol=1e-4)
        bundle.save_pretrained(tmp_path / "bundle")
        reloaded = from_pretrained(tmp_path / "bundle")
        assert reloaded.cohort_spec("clinic-a").scoring == "window-mean"
        assert torch.allclose(reloaded.probability(x, lengths), probabilities, atol=1e-2)  # fp16 weights on disk
    with pytest.raises(ModelConfigError, match="scoring"):
        bundle.set_calibration("clinic-a", scoring="median")


def test_bundle_saves_and_loads_as_one_directory(tmp_path):
    bundle = _bundle()
    bundle.add_cohort("phone", "conv", hidden=8, threshold=0.3)
    _perturb(bundle, "phone")
    bundle.set_calibration("phone", temperature=2.0)
    bundle.save_pretrained(tmp_path / "bundle", dtype=torch.float32)
    loaded = from_pretrained(tmp_path / "bundle")
    assert isinstance(loaded, ScreeningModel)
    assert (loaded.name, loaded.version, loaded.parent, loaded.default_cohort) == ("ri-test", "1", "ssamba-tiny@test", "clinic-a")
    assert loaded.cohorts == bundle.cohorts and loaded.trained_on_synthetic
    x, lengths = batch()
    with torch.no_grad():
        for cohort in ("clinic-a", "phone"):
            assert torch.equal(loaded.logits(x, lengths, cohort), bundle.logits(x, lengths, cohort))
        probability = loaded.probability(x, lengths, "phone")
        torch.testing.assert_close(probability, torch.sigmoid(loaded.logits(x, lengths, "phone") / 2.0))


def test_bundle_reports_trainable_share_and_rejects_unknown_cohorts():
    bundle = _bundle()
    trainable, on_path = bundle.train_only("clinic-a")
    assert trainable == sum(p.numel() for p in bundle.parameters() if p.requires_grad)
    assert 0 < trainable < on_path
    full, _ = bundle.train_only("clinic-a", encoder=True)
    assert full > trainable
    with pytest.raises(CohortError, match="no cohort 'icu'"):
        bundle.logits(*batch(), cohort="icu")
    with pytest.raises(CohortError, match="already"):
        bundle.add_cohort("clinic-a")
    with pytest.raises(ModelConfigError, match="threshold"):
        bundle.set_calibration("clinic-a", threshold=1.5)
