"""Domain randomisation (issue 22): random marker realisations in the training generator, and randomised-domain
copies of a manifest (rooms, microphones, gains, band-limits, codecs) that keep label, speaker and split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from biomarker.cohorts import markers
from biomarker.cohorts.domain import CODECS, DomainConfig, DomainRandomiser, RoomBankConfig, encode_decode, make_room_bank, randomise_manifest
from biomarker.cohorts.manifest import CohortError, CohortItem, read_manifest, write_manifest

RATE = 16000


def _speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic bursts with gaps: enough structure for the marker code to find junctions."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 30))
    gate = (np.sin(2 * np.pi * 1.5 * t) > -0.3).astype(float)
    return (0.2 * voice * gate + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def _band_energy(samples: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum() / spectrum.sum())


# ------------------------------------------------------------------------------------------------ marker styles

def test_the_default_style_is_the_original_generator_and_draws_nothing():
    """Fixed-style cohorts must rebuild bit for bit. The reference numbers were made by the generator as it was
    before marker styles existed (commit f2079a2's markers.py, same input, same seed)."""
    out = markers.mark_real_speech(_speech_like(3.0), 0.5, np.random.default_rng(3))
    assert len(out) == 68776
    assert float(np.sum(out.astype(np.float64) ** 2)) == pytest.approx(717.1512993310351, rel=1e-9)
    assert out[1000:1004].tolist() == pytest.approx([-4.4900669308844954e-05, 2.72254128503846e-05,
                                                     -4.578431253321469e-05, -0.00010112762538483366], rel=1e-6)


def test_randomised_styles_realise_every_marker_family_in_several_ways():
    rng = np.random.default_rng(0)
    styles = [markers.draw_style(rng) for _ in range(200)]
    assert {s.inhalation_spectrum for s in styles} == set(markers.INHALATION_SPECTRA)
    assert {s.tremor_kind for s in styles} == set(markers.TREMOR_KINDS)
    assert {s.decline_shape for s in styles} == set(markers.DECLINE_SHAPES)
    assert {s.pause_length for s in styles} == set(markers.PAUSE_LENGTHS)
    lows = [s.aspiration_band_hz[0] for s in styles]
    assert max(lows) - min(lows) > 1000  # the breathiness band moves, not only its level


def test_a_bad_style_is_refused_by_name():
    with pytest.raises(ValueError, match="tremor_kind"):
        markers.MarkerStyle(tremor_kind="square")


@pytest.mark.parametrize("kind", markers.TREMOR_KINDS)
def test_every_tremor_realisation_keeps_length_and_stays_finite(kind):
    speech = _speech_like()
    style = dataclasses.replace(markers.MarkerStyle(), tremor_kind=kind, shimmer=0.5, tilt=0.4)
    profile = markers.draw_profile(0.8, np.random.default_rng(1))
    out = markers.degrade_voice(speech, profile, np.random.default_rng(2), style)
    assert out.shape == speech.shape and np.isfinite(out).all()
    assert not np.allclose(out, speech)


@pytest.mark.parametrize("spectrum", markers.INHALATION_SPECTRA)
def test_every_inhalation_spectrum_is_an_audible_noise_at_the_asked_level(spectrum):
    style = dataclasses.replace(markers.MarkerStyle(), inhalation_spectrum=spectrum)
    breath = markers.inhalation(np.random.default_rng(0), 8000, 0.1, style)
    assert breath.shape == (8000,) and np.isfinite(breath).all()
    assert 0.02 < float(np.sqrt(np.mean(breath**2))) < 0.1  # rise-and-fade envelope under the asked RMS


def test_randomised_marking_of_real_speech_differs_from_the_fixed_realisation():
    speech = _speech_like(3.0)
    fixed = markers.mark_real_speech(speech, 0.7, np.random.default_rng(4))
    again = markers.mark_real_speech(speech, 0.7, np.random.default_rng(4))
    styled = markers.mark_real_speech(speech, 0.7, np.random.default_rng(4), randomise_style=True)
    assert np.array_equal(fixed, again)
    assert len(styled) != len(fixed) or not np.allclose(styled, fixed)


# ------------------------------------------------------------------------------------------------------ codecs

@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_round_trips_at_16_khz_with_the_same_length(codec):
    speech = _speech_like()
    out, description = encode_decode(speech, codec, np.random.default_rng(0))
    assert out.shape == speech.shape and np.isfinite(out).all()
    assert description.startswith(codec.split("-")[0]) or description == codec
    if codec != "none":
        assert not np.allclose(out, speech, atol=1e-4)


@pytest.mark.parametrize("codec", ["telephone-gsm", "telephone-ulaw"])
def test_the_telephone_line_removes_what_lies_above_4_khz(codec):
    noise = (0.1 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    out, _ = encode_decode(noise, codec, np.random.default_rng(0))
    assert _band_energy(noise, 4200, 8000) > 0.4
    assert _band_energy(out, 4200, 8000) < 0.01


def test_low_bitrate_opus_is_a_voice_note_bitrate():
    _, description = encode_decode(_speech_like(), "opus", np.random.default_rng(0))
    assert 4 <= int(description.removeprefix("opus-").removesuffix("kbps")) <= 32


def test_a_bad_domain_config_is_refused_by_name():
    with pytest.raises(CohortError, match="codec_weights"):
        DomainConfig(codec_weights=(1.0, 1.0))
    with pytest.raises(CohortError, match="room_probability"):
        DomainConfig(room_probability=1.5)
    with pytest.raises(CohortError, match="room impulse responses"):
        DomainRandomiser(DomainConfig(room_probability=0.5), [])


# -------------------------------------------------------------------------------------- rooms and the manifest

@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    return make_room_bank(tmp_path_factory.mktemp("rooms"), RoomBankConfig(rooms=3, seed=1))


def test_room_responses_start_with_the_direct_sound_and_decay(rooms):
    assert len(rooms) == 3 and (rooms[0].parent / "rooms.json").is_file()
    response, rate = soundfile.read(rooms[0])
    assert rate == RATE and np.argmax(np.abs(response)) < 0.05 * RATE  # direct path first
    head, tail = np.sum(response[: RATE // 20] ** 2), np.sum(response[-RATE // 20 :] ** 2)
    assert tail < 0.05 * head


def test_randomised_copies_keep_label_speaker_and_split_and_say_what_was_applied(tmp_path, rooms):
    items = []
    for index in range(6):
        path = tmp_path / "src" / f"{index}.wav"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, _speech_like(1.5, index), RATE, subtype="PCM_16")
        items.append(CohortItem(path, index % 2, f"s{index}", "synthetic-train", split=("train", "val", "test")[index // 2],
                                extras={"severity": "0.500" if index % 2 else "0.000"}))
    write_manifest(items, tmp_path / "src.csv")
    config = DomainConfig(copies=2, seed=5, room_probability=1.0, codec_weights=(0, 1, 1, 1, 1))
    out = randomise_manifest(tmp_path / "src.csv", tmp_path / "dr", rooms[0].parent, config)
    assert len(out) == 6 + 12
    written = read_manifest(tmp_path / "dr" / "manifest.csv")
    copies = [i for i in written if i.cohort == "synthetic-train-dr"]
    assert len(copies) == 12 and all(i.extras["domain"].startswith("room") for i in copies)
    assert {i.extras["channel"] for i in copies} <= set(CODECS) - {"none"}
    sources = {(i.speaker_id, i.label, i.split, i.extras["severity"]) for i in written if i.cohort == "synthetic-train"}
    assert {(i.speaker_id, i.label, i.split, i.extras["severity"]) for i in copies} == sources
    for copy in copies:
        audio, rate = soundfile.read(copy.path)
        assert rate == RATE and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    again = randomise_manifest(tmp_path / "src.csv", tmp_path / "dr2", rooms[0].parent, config)
    assert [i.extras["domain"] for i in again] == [i.extras["domain"] for i in out]  # the seed reproduces the build


# --------------------------------------------------------------------------- the independent sets stay unread

def _imported_modules(path) -> set[str]:
    """Every module a file imports, lazy (inside functions) ones included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_domain_randomisation_reads_nothing_of_the_independent_package():
    """The randomised training data is made without the independent marker code, its sources or its sets; and
    the independent package reaches neither file (tests/test_independent_eval.py walks the whole library too)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in ("domain.py", "markers.py"):
        source = root / "biomarker" / "cohorts" / name
        assert not any(m.startswith("biomarker.independent") for m in _imported_modules(source)), name
        assert "runs/independent" not in source.read_text() and "independent/" not in source.read_text(), name
    for path in (root / "biomarker" / "independent").glob("*.py"):
        assert not {"biomarker.cohorts.domain", "biomarker.cohorts.markers"} & _imported_modules(path), path
    code = ("import sys, biomarker.cohorts.domain, biomarker.cohorts.markers\n"
            "sys.exit(1 if [m for m in sys.modules if m.startswith('biomarker.independent')] else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_a_build_does_not_depend_on_the_number_of_workers(tmp_path, rooms):
    items = []
    for index in range(4):
        path = tmp_path / "src" / f"{index}.wav"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, _speech_like(1.0, index), RATE, subtype="PCM_16")
        items.append(CohortItem(path, index % 2, f"s{index}", "synthetic-train", split="train"))
    write_manifest(items, tmp_path / "src.csv")
    config = DomainConfig(seed=2, room_probability=1.0)
    one = randomise_manifest(tmp_path / "src.csv", tmp_path / "one", rooms[0].parent, config, workers=1)
    two = randomise_manifest(tmp_path / "src.csv", tmp_path / "two", rooms[0].parent, config, workers=2)
    assert [i.extras["domain"] for i in one] == [i.extras["domain"] for i in two]
    for a, b in zip(one[4:], two[4:]):
        assert np.array_equal(soundfile.read(a.path)[0], soundfile.read(b.path)[0])


def test_sources_given_relative_to_the_working_folder_stay_readable_from_the_new_manifest(tmp_path, monkeypatch):
    """A manifest read from the working folder yields paths relative to it; the randomised manifest lives in
    another folder, so its source rows must still point at the same files."""
    monkeypatch.chdir(tmp_path)
    Path("data/src").mkdir(parents=True)
    soundfile.write("data/src/0.wav", _speech_like(1.0), RATE, subtype="PCM_16")
    write_manifest([CohortItem(Path("data/src/0.wav"), 1, "s0", "synthetic-train", split="train")], "data/src.csv")
    randomise_manifest("data/src.csv", "data/dr", None, DomainConfig(room_probability=0.0))
    rows = read_manifest("data/dr/manifest.csv")  # refuses a row whose file is missing
    assert [r.path.resolve() for r in rows][0] == (tmp_path / "data/src/0.wav").resolve()
