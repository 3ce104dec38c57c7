"""Feature front-end: agreement with python_speech_features and torchaudio's kaldi fbank, the registry and its
configs, lengths through padded batches, normalisation statistics and the commands that use them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import python_speech_features as psf
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.features import MfccConfig, extractor_from_config, get_extractor, list_extractors, mfcc
from biomarker.features.normalization import compute_stats, load_stats
from biomarker.records import FeatureError

REAL_SPEECH = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    samples, rate = sf.read(REAL_SPEECH, dtype="float64")
    assert rate == 16000
    return samples


def synthetic_signals(rate: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(rate) / rate
    impulses = np.zeros(rate // 2)
    impulses[::1000] = 0.9  # mostly exact zeros: exercises psf's log(eps) floor
    return {
        "chirp": 0.5 * np.sin(2 * np.pi * (100 + 1500 * t) * t),
        "noise": rng.normal(0, 0.1, rate),
        "impulses-and-silence": impulses,
        "shorter-than-a-window": rng.normal(0, 0.1, 300),
        "one-sample-past-a-window": rng.normal(0, 0.1, int(0.025 * rate) + 1),
    }


# psf keyword sets, each passed to psf (window as the numpy function) and to ours (window by name)
PSF_SETTINGS = {
    "defaults": {},
    "mfccgram-like": dict(numcep=128, nfilt=128, nfft=1024, winstep=0.0125, preemph=0.0, ceplifter=0,
                          appendEnergy=False, winfunc="hanning"),
    "hamming-band-limited": dict(numcep=20, nfilt=40, nfft=1024, winlen=0.05, winstep=0.02, lowfreq=100,
                                 highfreq=6000, ceplifter=10, winfunc="hamming"),
    "blackman-no-preemph": dict(numcep=13, nfilt=30, preemph=0.0, winfunc="blackman", appendEnergy=False),
}


def psf_reference(signal: np.ndarray, rate: int, settings: dict) -> np.ndarray:
    kwargs = dict(settings)
    if "winfunc" in kwargs:
        kwargs["winfunc"] = getattr(np, kwargs["winfunc"])
    return psf.mfcc(signal, rate, **kwargs)


def assert_agrees(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-3 * np.abs(reference).max()


@pytest.mark.parametrize("setting", sorted(PSF_SETTINGS))
@pytest.mark.parametrize("compute_dtype", ["float64", "float32"])
def test_mfcc_matches_python_speech_features_on_real_speech(setting, compute_dtype, speech):
    ours = mfcc(torch.from_numpy(speech), 16000, compute_dtype=compute_dtype, **PSF_SETTINGS[setting])
    assert_agrees(ours.numpy(), psf_reference(speech, 16000, PSF_SETTINGS[setting]))


@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.parametrize("setting", ["defaults", "hamming-band-limited"])
def test_mfcc_matches_python_speech_features_on_synthetic_signals(rate, setting):
    settings = dict(PSF_SETTINGS[setting])
    if rate == 8000 and "highfreq" in settings:
        settings["highfreq"] = 3800
    for name, signal in synthetic_signals(rate).items():
        ours = mfcc(torch.from_numpy(signal), rate, **settings).numpy()
        reference = psf_reference(signal, rate, settings)
        assert ours.shape == reference.shape, name
        assert np.abs(ours - reference).max() <= 1e-3 * np.abs(reference).max(), name


def test_mfcc_keeps_leading_dimensions_and_dtype(speech):
    clips = torch.from_numpy(speech[:48000]).reshape(2, 3, 8000)  # [2, 3, samples]
    features = mfcc(clips, 16000)
    assert features.shape == (2, 3, 49, 13) and features.dtype == torch.float64
    torch.testing.assert_close(features[1, 2], mfcc(clips[1, 2], 16000))
    assert mfcc(clips.float(), 16000).dtype == torch.float32


def test_mfcc_rejects_unknown_or_inconsistent_settings():
    wave = torch.zeros(16000)
    with pytest.raises(FeatureError, match="unknown setting.*numceps"):
        mfcc(wave, 16000, numceps=13)
    with pytest.raises(FeatureError, match="numcep"):
        mfcc(wave, 16000, numcep=30, nfilt=26)
    with pytest.raises(FeatureError, match="winfunc.*'kaiser'"):
        mfcc(wave, 16000, winfunc="kaiser")
    with pytest.raises(FeatureError, match="highfreq"):
        mfcc(wave, 8000, highfreq=6000)
    with pytest.raises(FeatureError, match="nfft=256"):
        mfcc(wave, 16000, nfft=256)


def test_fbank_matches_kaldi_fbank_as_ssast_calls_it(speech):
    extractor = get_extractor("fbank", norm_mean=None, norm_std=None)
    for signal in (speech.astype(np.float32), np.random.default_rng(0).normal(0, 0.1, 20000).astype(np.float32)):
        wave = torch.from_numpy(signal)
        reference = kaldi.fbank((wave - wave.mean())[None], htk_compat=True, sample_frequency=16000, use_energy=False,
                                window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
        ours, frames = extractor(wave[None])
        assert int(frames[0]) == reference.shape[0]
        assert ours[0].shape == reference.shape
        assert (ours[0] - reference).abs().max() <= 1e-3 * reference.abs().max()


def test_fbank_preset_normalises_as_ssast(speech):
    wave = torch.from_numpy(speech.astype(np.float32))[None]
    raw, _ = get_extractor("fbank", norm_mean=None, norm_std=None)(wave)
    normalised, _ = get_extractor("fbank", norm_mean=-3.0, norm_std=2.5)(wave)
    torch.testing.assert_close(normalised, (raw + 3.0) / 5.0)
    preset = get_extractor("fbank")
    assert preset.config.norm_mean is not None and preset.config.norm_std > 0


# ------------------------------------------------------------------------------------------------- registry
def test_registry_names_and_presets():
    assert {"mfcc", "mfccgram", "fbank"} <= set(list_extractors())
    mfccgram = get_extractor("mfccgram")
    assert mfccgram.num_features == 128 and mfccgram.config.numcep == 128
    assert mfccgram.config.frame_len == 400  # 25 ms at 16 kHz
    assert mfccgram.frames_per_second == 80.0 and mfccgram.sample_rate_hz == 16000
    fbank = get_extractor("fbank")
    assert fbank.num_features == 128 and fbank.frames_per_second == 100.0
    assert get_extractor("mfcc").num_features == 13
    assert get_extractor("mfcc", numcep=20).num_features == 20


def test_registry_refuses_unknown_names_and_settings():
    with pytest.raises(FeatureError, match="'spectrogram'.*fbank"):
        get_extractor("spectrogram")
    with pytest.raises(FeatureError, match="num_mel_bin\\b"):
        get_extractor("fbank", num_mel_bin=64)
    with pytest.raises(FeatureError, match="norm_std"):
        get_extractor("fbank", norm_mean=1.0, norm_std=None)
    with pytest.raises(FeatureError, match="'cqt'.*fbank, mfcc"):
        extractor_from_config({**get_extractor("fbank").config.to_dict(), "kind": "cqt"})
    with pytest.raises(FeatureError, match="kind 'fbank' cannot build a 'mfcc'"):
        MfccConfig.from_dict(get_extractor("fbank").config.to_dict())


@pytest.mark.parametrize("name", list_extractors())
def test_config_round_trips_through_json_and_rebuilds_the_same_front_end(name, speech):
    extractor = get_extractor(name)
    stored = json.loads(json.dumps(extractor.config.to_dict()))
    rebuilt = extractor_from_config(stored)
    assert rebuilt.config == extractor.config and type(rebuilt) is type(extractor)
    wave = torch.from_numpy(speech[:16000].astype(np.float32))[None]
    torch.testing.assert_close(rebuilt(wave)[0], extractor(wave)[0], rtol=0, atol=0)
    assert extractor.state_dict() == {}  # nothing to save: the config rebuilds every buffer


@pytest.mark.parametrize("name", list_extractors())
def test_padded_clips_give_the_frames_of_unpadded_ones(name, speech):
    extractor = get_extractor(name)
    lengths = torch.tensor([len(speech), 30000, 4001, 200])  # enough frames to go through in CPU chunks
    batch = torch.full((4, 60000), 0.7)  # padding is deliberately not zero: it must not leak into frames
    clips = [torch.from_numpy(speech[i * 5000 : i * 5000 + n].astype(np.float32)) for i, n in enumerate(lengths.tolist())]
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    features, frames = extractor(batch, lengths)
    assert features.shape == (4, int(frames.max()), extractor.num_features)
    for row, clip in enumerate(clips):
        alone, alone_frames = extractor(clip[None])
        assert int(frames[row]) == int(alone_frames[0]) == alone.shape[1]
        torch.testing.assert_close(features[row, : frames[row]], alone[0], rtol=1e-5, atol=1e-4)
        assert not features[row, frames[row] :].any()


def test_chunked_cpu_path_is_the_same_with_one_or_two_threads_and_carries_gradients(speech):
    extractor = get_extractor("mfcc")
    batch = torch.from_numpy(np.stack([speech, speech[::-1].copy()]).astype(np.float32))  # 2 x 329 frames
    batch = torch.cat([batch] * 2)  # 1316 frames: more than one chunk
    torch.set_num_threads(1)
    single, _ = extractor(batch)
    torch.set_num_threads(2)
    with torch.inference_mode():
        threaded, _ = extractor(batch)
    torch.testing.assert_close(threaded, single, rtol=0, atol=0)
    waveform = batch.clone().requires_grad_(True)
    features, _ = extractor(waveform)
    features.square().mean().backward()
    assert waveform.grad is not None and torch.isfinite(waveform.grad).all() and waveform.grad.abs().sum() > 0


def test_extractor_refuses_badly_shaped_batches():
    extractor = get_extractor("mfcc")
    with pytest.raises(FeatureError, match=r"\[batch, samples\].*\(16000,\)"):
        extractor(torch.zeros(16000))
    with pytest.raises(FeatureError, match=r"lengths_samples\[1\] = 9000"):
        extractor(torch.zeros(2, 8000), torch.tensor([8000, 9000]))
    with pytest.raises(FeatureError, match="shape"):
        extractor(torch.zeros(2, 8000), torch.tensor([8000]))


@pytest.mark.gpu
@pytest.mark.parametrize("name", list_extractors())
def test_gpu_features_match_cpu(name):
    """The GPU is as accurate as the CPU in float32: both are compared with a float64 reference, because some
    inputs (a chirp into nearly empty mel bands) are ill-conditioned for float32 on any device (measured on an
    H100: |gpu - cpu| up to 0.7 on MFCC-gram values up to 265, as large as |cpu32 - cpu64|).
    Synthetic input: the GPU machine has no Debian speech packages."""
    extractor = get_extractor(name)
    wave = torch.from_numpy(np.concatenate(list(synthetic_signals(16000).values())).astype(np.float32))[None]
    on_cpu, _ = extractor(wave)
    reference, _ = copy.deepcopy(extractor).double()(wave.double())
    on_gpu, _ = extractor.to("cuda")(wave.cuda())
    cpu_error = (on_cpu.double() - reference).abs().max().item()
    gpu_error = (on_gpu.cpu().double() - reference).abs().max().item()
    assert gpu_error <= 2 * cpu_error + 1e-3 * reference.abs().max().item()


# ------------------------------------------------------------------------------------------- normalisation
@pytest.fixture()
def corpus(tmp_path, speech) -> Path:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a.wav", speech[:24000], 16000)
    sf.write(folder / "sub" / "b.flac", speech[20000:], 16000)
    (folder / "notes.txt").write_text("not audio, and not picked up")
    return folder


def test_stats_are_the_mean_and_std_of_all_raw_frames(corpus):
    files = [corpus / "a.wav", corpus / "sub" / "b.flac"]
    stats = compute_stats(files, "fbank")
    raw = get_extractor("fbank", norm_mean=None, norm_std=None)
    values = torch.cat([raw(torch.from_numpy(sf.read(f, dtype="float32")[0])[None])[0][0] for f in files]).double()
    assert stats.num_clips == 2 and stats.num_frames == values.shape[0]
    assert stats.norm_mean == pytest.approx(float(values.mean()), rel=1e-6)
    assert stats.norm_std == pytest.approx(float(values.std(unbiased=False)), rel=1e-6)
    normalised = get_extractor("fbank", **stats.overrides())
    out = torch.cat([normalised(torch.from_numpy(sf.read(f, dtype="float32")[0])[None])[0][0] for f in files])
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-4) and float(out.std()) == pytest.approx(0.5, abs=1e-3)


def test_stats_refuse_a_bad_file_rather_than_skip_it(corpus):
    with pytest.raises(ValueError, match="notes.txt"):
        compute_stats([corpus / "a.wav", corpus / "notes.txt"])


def test_features_stats_command_writes_json_the_registry_accepts(corpus, tmp_path):
    out = tmp_path / "stats" / "fbank.json"
    result = CliRunner().invoke(app, ["features", "stats", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["extractor"] == "fbank" and written["num_clips"] == 2
    expected = compute_stats([corpus / "a.wav", corpus / "sub" / "b.flac"])
    assert load_stats(out) == pytest.approx(expected.overrides())
    assert get_extractor("fbank", **load_stats(out)).config.norm_std == pytest.approx(expected.norm_std)


def test_features_stats_command_reads_a_manifest(corpus, tmp_path):
    manifest = corpus / "manifest.csv"
    manifest.write_text("path,label,speaker_id,cohort\na.wav,0,s1,demo\nsub/b.flac,1,s2,demo\n")
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["features", "stats", "--manifest", str(manifest), "--extractor", "mfcc", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["extractor"] == "mfcc"
    assert load_stats(out) == pytest.approx(compute_stats([corpus / "a.wav", corpus / "sub" / "b.flac"], "mfcc").overrides())


def test_load_stats_names_a_file_that_is_not_stats(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"mean": 1}')
    with pytest.raises(FeatureError, match="other.json"):
        load_stats(path)


def test_bench_features_reports_both_timings_and_agreement():
    result = CliRunner().invoke(app, ["bench", "features", "--clips", "2", "--seconds", "0.5", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["machine"]["cpu"] and report["clips"] == 2
    for row in report["results"].values():
        assert row["reference_s"] > 0 and all(s > 0 for s in row["ours_s"].values())
    assert report["mfcc_max_rel_diff_vs_psf"] <= 1e-3
