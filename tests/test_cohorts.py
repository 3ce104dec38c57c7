"""Cohorts: manifest validation, SPIRA readers, speaker-disjoint splits, ward noise, RI markers, synthesis."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from biomarker.cohorts.manifest import CohortItem, read_manifest, write_manifest
from biomarker.cohorts.markers import MILD_SEVERITY, SAMPLE_RATE_HZ, MarkerProfile, draw_profile, mark_real_speech, split_at_gaps, stretch
from biomarker.cohorts.noise import NoiseConfig, add_ward_noise, generate_noise_bank, load_noise_bank
from biomarker.cohorts.spira import read_spira_csv
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.records import CohortError


def _wav(path, seconds=0.5):
    soundfile.write(path, np.zeros(int(seconds * SAMPLE_RATE_HZ), dtype=np.float32), SAMPLE_RATE_HZ)
    return path


def test_manifest_round_trip_keeps_fields_and_relative_paths(tmp_path):
    _wav(tmp_path / "a.wav")
    items = [CohortItem(tmp_path / "a.wav", 1, "spk1", "c", sex="F", age=40, spo2=88.0, split="test", extras={"severity": "0.5"})]
    manifest = write_manifest(items, tmp_path / "m.csv")
    assert "a.wav," in manifest.read_text()
    (read,) = read_manifest(manifest)
    assert read == items[0]


def test_manifest_names_every_bad_row(tmp_path):
    _wav(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(
        "path,label,speaker_id,cohort\n" "a.wav,1,s1,c\n" "a.wav,2,s2,c\n" "missing.wav,0,s3,c\n" "a.wav,0,,c\n"
    )
    with pytest.raises(CohortError) as error:
        read_manifest(tmp_path / "m.csv")
    message = str(error.value)
    assert "3 invalid row(s)" in message
    assert "line 3: label must be 0 or 1, got '2'" in message
    assert "line 4: audio file not found" in message and "missing.wav" in message
    assert "line 5: speaker_id is empty" in message


def test_manifest_rejects_missing_columns_and_mixed_speaker_labels(tmp_path):
    _wav(tmp_path / "a.wav")
    (tmp_path / "bad.csv").write_text("path,label\na.wav,1\n")
    with pytest.raises(CohortError, match="missing column"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "mixed.csv").write_text("path,label,speaker_id,cohort\na.wav,1,s1,c\na.wav,0,s1,c\n")
    with pytest.raises(CohortError, match="speaker 's1' in cohort 'c' has both labels"):
        read_manifest(tmp_path / "mixed.csv")


@pytest.mark.parametrize(
    "header, rows, labels",
    [
        ("file_path,class,sexo,idade", ["a.wav,1,F,50", "b.wav,0,M,30"], [1, 0]),
        ("file_path,insuficiencia_respiratoria", ["a_0.wav,1", "b_3.wav,0"], [1, 0]),
        ("arquivo,oxigenacao", ["a.wav,89", "b.wav,97"], [1, 0]),
    ],
)
def test_spira_layouts(tmp_path, header, rows, labels):
    for row in rows:
        _wav(tmp_path / row.split(",")[0])
    (tmp_path / "meta.csv").write_text("\n".join([header, *rows]) + "\n")
    items = read_spira_csv(tmp_path / "meta.csv").items
    assert [i.label for i in items] == labels
    assert [i.speaker_id for i in items] == ["a", "b"]  # window suffix removed


def test_spira_bad_spo2_names_the_line(tmp_path):
    _wav(tmp_path / "a.wav")
    (tmp_path / "meta.csv").write_text("arquivo,oxigenacao\na.wav,alto\n")
    with pytest.raises(CohortError, match="line 2: oxigenacao must be a number, got 'alto'"):
        read_spira_csv(tmp_path / "meta.csv")


def test_split_is_speaker_disjoint_and_stratified(tmp_path):
    items = [
        CohortItem(tmp_path / f"{s}-{k}.wav", label=int(s % 2), speaker_id=f"s{s}", cohort="c")
        for s in range(40)
        for k in range(3)
    ]
    split = speaker_disjoint_split(items, SplitConfig(0.5, 0.25, 0.25, seed=3))
    speakers_per_split: dict[str, set] = {}
    for item in split:
        speakers_per_split.setdefault(item.split, set()).add(item.speaker_id)
    assert sum(len(s) for s in speakers_per_split.values()) == 40  # disjoint
    for name, expected in {"train": 20, "val": 10, "test": 10}.items():
        labels = [i.label for i in split if i.split == name]
        assert len(speakers_per_split[name]) == expected
        assert sum(labels) * 2 == len(labels)  # stratified: half patients in every split


def test_split_fractions_must_sum_to_one():
    with pytest.raises(CohortError, match="sum to 1"):
        speaker_disjoint_split([], SplitConfig(0.5, 0.5, 0.5))


def test_ward_noise_is_added_within_the_spira_peak_range():
    rng = np.random.default_rng(0)
    bank = [np.sin(np.linspace(0, 100, 8000)).astype(np.float32)]
    silent = np.zeros(20000, dtype=np.float32)
    one = add_ward_noise(silent, bank, rng, NoiseConfig(clips_per_recording=1))
    assert 0.0335 <= np.max(np.abs(one)) <= 0.1923 + 1e-6
    with pytest.raises(CohortError, match="non-empty noise bank"):
        add_ward_noise(silent, [], rng)


def test_noise_bank_round_trip(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    paths = generate_noise_bank(tmp_path, per_kind=1, duration_s=1.0)
    clips = load_noise_bank(tmp_path)
    assert len(clips) == len(paths) == 5
    assert all(np.max(np.abs(c)) > 0.5 for c in clips)


def _speechlike(rng, words=6):
    """Tone bursts separated by silences: enough structure for the gap finder."""
    pieces = []
    for _ in range(words):
        t = np.arange(int(0.3 * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
        pieces += [0.5 * np.sin(2 * np.pi * 150 * t) * np.hanning(len(t)), np.zeros(int(0.1 * SAMPLE_RATE_HZ))]
    return np.concatenate(pieces).astype(np.float32)


def test_gaps_are_found_between_words():
    cut = split_at_gaps(_speechlike(np.random.default_rng(0), words=5))
    assert len(cut.segments) == 5 and len(cut.gaps_s) == 4


def test_markers_lengthen_speech_more_with_severity():
    speech = _speechlike(np.random.default_rng(0))
    lengths = {s: np.mean([len(mark_real_speech(speech, s, np.random.default_rng(k))) for k in range(5)]) for s in (0.0, 0.3, 1.0)}
    assert lengths[0.0] < lengths[0.3] < lengths[1.0]


def _profiles(severity: float, count: int = 2000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    drawn = [draw_profile(severity, rng) for _ in range(count)]
    return {field: np.array([getattr(p, field) for p in drawn]) for field in MarkerProfile.__dataclass_fields__}


def test_mild_patients_overlap_controls_on_every_marker_and_severe_ones_do_not():
    """The point of the generator: no single marker separates mild patients from controls (else every model,
    and a logistic regression on MFCC statistics, sits at AUROC 1.0), while severe cases are clear."""
    controls, mild, severe = _profiles(0.0), _profiles(MILD_SEVERITY), _profiles(1.0)
    for field in controls:
        low, high = np.percentile(controls[field], [5, 95])
        inside = lambda values: float(np.mean((values >= low) & (values <= high)))  # noqa: E731
        assert inside(mild[field]) >= 0.4, field
        assert inside(severe[field]) <= 0.15, field
        towards_ri = np.sign(np.mean(severe[field]) - np.mean(controls[field]))
        assert towards_ri * (np.mean(mild[field]) - np.mean(controls[field])) > 0, field  # mild lies on the RI side


def test_stretch_slows_by_the_factor():
    speech = _speechlike(np.random.default_rng(0))
    assert abs(len(stretch(speech, 1.5)) / len(speech) - 1.5) < 0.05


def test_a_cohort_of_chosen_training_voices_uses_only_them_under_its_own_name(tmp_path):
    from biomarker.cohorts.datasheet import synthetic_datasheet
    from biomarker.cohorts.synth import EXTRA_TRAIN_VARIANTS, VARIANTS, SynthConfig, _config_json, summarise, synthesize_cohort

    assert not set(EXTRA_TRAIN_VARIANTS) & {v for own in VARIANTS.values() for v in own}
    generate_noise_bank(tmp_path / "bank", per_kind=1, seed=0)
    config = SynthConfig(n=8, seed=2, pool="train", noisy_copy=False, variants=("Alicia", "m8"), cohort="synthetic-voices",
                         split=SplitConfig(0.5, 0.25, 0.25, seed=0))
    items = synthesize_cohort(tmp_path / "cohort", config, tmp_path / "bank")
    assert len(items) == 8 and {item.cohort for item in items} == {"synthetic-voices"}
    assert {item.extras["voice"].split("+")[1] for item in items} <= {"Alicia", "m8"}
    assert all(item.speaker_id.startswith("train-s2-") for item in items)
    sheet = synthetic_datasheet("synthetic-voices (seed 2)", summarise(items), json.loads(_config_json(config)))
    assert "--variants Alicia,m8 --cohort synthetic-voices" in sheet and "2 espeak-ng variants" in sheet


def test_held_out_voices_cannot_be_drawn_into_the_training_pool():
    from biomarker.cohorts.synth import SynthConfig

    with pytest.raises(CohortError, match=r"\['m6'\].*unheard"):
        SynthConfig(pool="train", variants=("Alicia", "m6")).validate()


def test_the_languages_pool_widens_training_without_the_held_out_languages(tmp_path):
    from biomarker.cohorts.datasheet import synthetic_datasheet
    from biomarker.cohorts.synth import SENTENCES, VARIANTS, SynthConfig, _config_json, summarise, synthesize_cohort

    assert not set(SENTENCES["languages"]) & set(SENTENCES["heldout"])  # French and German stay unheard
    generate_noise_bank(tmp_path / "bank", per_kind=1, seed=0)
    config = SynthConfig(n=8, seed=3, pool="languages", noisy_copy=False, split=SplitConfig(0.5, 0.25, 0.25, seed=0))
    items = synthesize_cohort(tmp_path / "cohort", config, tmp_path / "bank")
    assert {item.extras["language"] for item in items} <= set(SENTENCES["languages"])
    assert {item.extras["voice"].split("+")[1] for item in items} <= set(VARIANTS["train"])
    sheet = synthetic_datasheet("languages", summarise(items), json.loads(_config_json(config)))
    assert "shared equally by ca, cs, da" in sheet and "pt-BR" not in sheet.split("## Measured")[0].split("Voices:")[1]


def test_training_voices_cannot_be_drawn_into_the_held_out_pool():
    from biomarker.cohorts.synth import SynthConfig

    for voice in ("m1", "Alicia"):
        with pytest.raises(CohortError, match="unheard"):
            SynthConfig(pool="heldout", variants=(voice,)).validate()
    SynthConfig(pool="languages", variants=("Alicia", "m1")).validate()


def test_real_voice_sets_share_no_file_and_the_cli_names_them(tmp_path):
    """Every voice of every set gets one file under a tree holding every folder and pattern; each file must be
    found by exactly one voice (fillets' Czech and Dutch voices share one folder, told apart by the glob), so no
    validation or held-out speaker can reach a training manifest."""
    from typer.testing import CliRunner

    from biomarker.cli import app
    from biomarker.cohorts.real import VOICE_SETS, find_voices

    voices = {name: spec for table in VOICE_SETS.values() for name, spec in table.items()}
    assert len(voices) == sum(len(table) for table in VOICE_SETS.values())  # no voice name in two sets
    relative = {name: spec for name, spec in voices.items() if not spec[0].startswith("/")}
    samples = {"asterisk-en-allison": "greeting/hello.wav", "fillets-cs-m": "level/cs/a-m-1.ogg",
               "fillets-cs-v": "level/cs/a-v-1.ogg", "fillets-nl-m": "level/nl/a-m-1.ogg",
               "fillets-nl-v": "level/nl/a-v-1.ogg", "asterisk-es-co": "a.gsm", "asterisk-fr-armelle": "b.gsm"}
    for name, (folder, pattern) in relative.items():
        path = tmp_path / folder / samples.get(name, "x/prompt" + pattern.rsplit("*", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    found = find_voices(tmp_path, relative)
    owners = [p for files in found.values() for p in files]
    assert len(owners) == len(set(owners)) == len(relative)
    result = CliRunner().invoke(app, ["cohort", "real", str(tmp_path), str(tmp_path / "out"), "--voices", "spare"])
    assert result.exit_code == 2 and "'extra-train'" in result.output and "'validation'" in result.output


def test_spira_without_speaker_column_says_so_and_the_cli_warns(tmp_path):
    from typer.testing import CliRunner

    from biomarker.cli import app
    from biomarker.cohorts.spira import FROM_FILE_NAME

    rows = [f"p{k // 2}_{k % 2}x.wav,{(k // 2) % 2}" for k in range(12)]
    for row in rows:
        _wav(tmp_path / row.split(",")[0])
    (tmp_path / "meta.csv").write_text("\n".join(["file_path,class", *rows]) + "\n")
    assert read_spira_csv(tmp_path / "meta.csv").speakers_from == FROM_FILE_NAME
    result = CliRunner().invoke(app, ["cohort", "import", str(tmp_path / "meta.csv"), str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output
    assert "of 12 speakers" in result.output and "NOT speaker-disjoint" in result.output
    by_pattern = read_spira_csv(tmp_path / "meta.csv", speaker_pattern=r"^(p\d+)_")
    assert by_pattern.speaker_disjoint and sorted({i.speaker_id for i in by_pattern.items}) == [f"p{k}" for k in range(6)]
    result = CliRunner().invoke(app, ["cohort", "import", str(tmp_path / "meta.csv"), str(tmp_path / "m.csv"),
                                      "--speaker-pattern", r"^(p\d+)_"])
    assert "of 6 speakers" in result.output and "NOT speaker-disjoint" not in result.output


def test_spira_speaker_column_is_used_and_checked(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        _wav(tmp_path / name)
    (tmp_path / "meta.csv").write_text("file_path,class,speaker\na.wav,1,s1\nb.wav,1,s1\nc.wav,0,\n")
    with pytest.raises(CohortError, match="line 4: speaker \\(the speaker\\) is empty"):
        read_spira_csv(tmp_path / "meta.csv")
    (tmp_path / "meta.csv").write_text("file_path,class,speaker\na.wav,1,s1\nb.wav,1,s1\nc.wav,0,s2\n")
    imported = read_spira_csv(tmp_path / "meta.csv")
    assert imported.speakers_from == "column 'speaker'" and [i.speaker_id for i in imported.items] == ["s1", "s1", "s2"]
    with pytest.raises(CohortError, match="needs a group"):
        read_spira_csv(tmp_path / "meta.csv", speaker_pattern="p")
