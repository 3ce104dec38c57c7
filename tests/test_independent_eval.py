"""The independent evaluation sets (issue 22): no training or model-selection path imports them, they share no
code or material with the training generator, and every marker family does what its literature says.

Marker tests use signals made here (a harmonic "voice" with syllable-rate dips), so each can fail for a reason
one can name; none needs espeak-ng except the small end-to-end build, which skips cleanly without it.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import hilbert

from biomarker.independent.ambient import add_ambience
from biomarker.independent.analysis import SAMPLE_RATE_HZ, active_rms, pitch_track, syllables
from biomarker.independent.apply import apply_markers
from biomarker.independent.breathiness import aspiration, steeper_tilt
from biomarker.independent.inhalation import inhalation
from biomarker.independent.intensity import intensity
from biomarker.independent.pauses import PausePlan, insert_pauses
from biomarker.independent.perturbation import perturb_cycles
from biomarker.independent.strengths import KNOBS, MarkerStrengths, draw_strengths
from biomarker.independent.tempo import slow_down
from biomarker.independent.tremor import tremor

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "biomarker.independent"
FS = SAMPLE_RATE_HZ


# ------------------------------------------------------------------------------------------ the import graph
def _module_files() -> dict[str, Path]:
    files = {}
    for path in (ROOT / "biomarker").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every biomarker module `name` imports anywhere in its body (lazy imports inside functions included)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                targets = [node.args[0].value]
        for target in targets:
            parts = target.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                if ".".join(parts[:end]) in known:
                    found.add(".".join(parts[:end]))
    return found


def _reachable(roots: set[str], files: dict[str, Path]) -> dict[str, str]:
    """Module -> the module that first imported it, walking imports from `roots`."""
    known = set(files)
    parent = {root: "" for root in roots}
    queue = list(roots)
    while queue:
        current = queue.pop()
        for imported in _imports(current, files[current], known):
            if imported not in parent:
                parent[imported] = current
                queue.append(imported)
    return parent


def _chain(parent: dict[str, str], module: str) -> str:
    chain = [module]
    while parent.get(chain[-1]):
        chain.append(parent[chain[-1]])
    return " <- ".join(chain)


def test_no_training_or_model_selection_path_imports_the_independent_package():
    files = _module_files()
    own = {m for m in files if m == PACKAGE or m.startswith(PACKAGE + ".")} | {"biomarker.cli.independent"}
    # every module of the library but the package, its own CLI command and the CLI registry (which names it by
    # string to offer the command): training, fine-tuning, pretraining, cohorts, corpus, calibration, evaluation,
    # model catalog, screener, app-facing store and every other command
    roots = set(files) - own - {"biomarker.cli"}
    assert {"biomarker.train", "biomarker.finetune.run", "biomarker.pretrain.run", "biomarker.cohorts.synth",
            "biomarker.pretrain.corpus", "biomarker.evaluate.report", "biomarker.evaluate.baselines"} <= roots
    parent = _reachable(roots, files)
    leaks = sorted(m for m in parent if m in own)
    assert not leaks, "training/model-selection code reaches the independent package: " + "; ".join(_chain(parent, m) for m in leaks)


def test_the_probe_would_see_a_leak():
    """The walk must find a lazy import inside a function body, or the test above proves nothing."""
    files = _module_files()
    source = "def f():\n    from biomarker.independent.apply import apply_markers\n"
    path = ROOT / "tests" / "_probe_module.py"
    try:
        path.write_text(source)
        found = _imports("biomarker.probe", path, set(files))
    finally:
        path.unlink()
    assert "biomarker.independent.apply" in found


def test_the_independent_package_shares_no_code_with_the_training_generator():
    files = _module_files()
    roots = {m for m in files if m == PACKAGE or m.startswith(PACKAGE + ".")}  # the CLI face shares `cohort_app` only
    parent = _reachable(roots, files)
    forbidden = {"biomarker.cohorts.markers", "biomarker.cohorts.synth", "biomarker.cohorts.real", "biomarker.cohorts.noise"}
    reached = sorted(forbidden & set(parent))
    assert not reached, "independent code reaches the training generator: " + "; ".join(_chain(parent, m) for m in reached)


def test_no_training_script_builds_or_reads_the_independent_sets():
    for script in (ROOT / "scripts").glob("*.sh"):
        text = script.read_text()
        assert "cohort independent" not in text and "biomarker.independent" not in text and "runs/independent" not in text, script


def test_importing_training_code_and_the_cli_loads_nothing_of_the_package():
    code = ("import sys, biomarker.cli, biomarker.cohorts.synth, biomarker.cohorts.real, biomarker.pretrain.corpus, "
            "biomarker.evaluate.report, biomarker.cohorts.manifest\n"
            "bad = [m for m in sys.modules if m.startswith('biomarker.independent')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ held-out material
def test_real_sources_are_used_by_no_training_manifest_or_pretraining_corpus():
    from biomarker.cohorts.real import VOICE_SETS
    from biomarker.pretrain.corpus import REAL_SOURCES
    from biomarker.independent.sources import HELD_OUT_SOURCES

    trained_packages = {s.package for s in REAL_SOURCES if not s.held_out}
    trained_folders = {folder.rstrip("/") for name in ("train", "extra-train", "validation")
                       for folder, _ in VOICE_SETS[name].values()}
    for source in HELD_OUT_SOURCES:
        assert source.package not in trained_packages, source
        assert source.folder.rstrip("/") not in trained_folders, source


def test_espeak_voices_languages_and_sentences_are_held_out():
    from biomarker.cohorts.synth import EXTRA_TRAIN_VARIANTS, SENTENCES as TRAIN_SENTENCES, VARIANTS
    from biomarker.pretrain.corpus import HELD_OUT_SYNTH_VARIANTS, TEXT_SOURCES, TRAIN_SYNTH_VARIANTS
    from biomarker.independent.voices import HELD_OUT_VARIANTS, LANGUAGE_SHARES, SENTENCES

    used = {v.lower() for pool in VARIANTS.values() for v in pool} | {v.lower() for v in EXTRA_TRAIN_VARIANTS}
    used |= {v.lower() for v in TRAIN_SYNTH_VARIANTS + HELD_OUT_SYNTH_VARIANTS}
    assert not {v.lower() for v in HELD_OUT_VARIANTS} & used
    languages = {lang for pool in TRAIN_SENTENCES.values() for lang in pool} | {t.language for t in TEXT_SOURCES}
    assert set(LANGUAGE_SHARES) & languages == {"pt-br"}  # the target language, with new sentences only
    trained = {s for pool in TRAIN_SENTENCES.values() for texts in pool.values() for s in texts}
    assert not {s for texts in SENTENCES.values() for s in texts} & trained
    assert abs(sum(LANGUAGE_SHARES.values()) - 1) < 1e-9 and set(LANGUAGE_SHARES) == set(SENTENCES)


# ------------------------------------------------------------------------------------------ marker behaviour
def voice(seconds: float = 3.0, f0: float = 140.0, top_hz: float = 1200.0, syllable_hz: float = 4.5) -> np.ndarray:
    """A harmonic voice (harmonics up to `top_hz`) whose loudness dips to -20 dB between syllables."""
    t = np.arange(int(seconds * FS)) / FS
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, int(top_hz // f0) + 1))
    syllable = 0.1 + 0.9 * np.sin(np.pi * syllable_hz * t) ** 2
    return (0.2 * harmonics * syllable / np.max(np.abs(harmonics))).astype(np.float32)


def band_power(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / FS)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def envelope_modulation(x: np.ndarray) -> tuple[float, float]:
    """Peak frequency (Hz, 1-20) and relative depth of the amplitude envelope's modulation."""
    env = np.abs(hilbert(x))[FS // 4 : -FS // 4]
    env = np.convolve(env, np.ones(160) / 160, mode="same")[200:-200]
    spectrum = np.abs(np.fft.rfft(env - env.mean()))
    freqs = np.fft.rfftfreq(len(env), 1 / FS)
    band = (freqs >= 1) & (freqs <= 20)
    peak = float(freqs[band][np.argmax(spectrum[band])])
    return peak, float(np.std(env) / np.mean(env))


def test_severity_zero_without_natural_variation_is_the_identity():
    x = voice()
    rng = np.random.default_rng(0)
    assert draw_strengths(0.0, rng, natural=False) == MarkerStrengths()
    assert np.array_equal(apply_markers(x, MarkerStrengths(), rng).samples, x)
    assert np.array_equal(slow_down(x, 1.0), x)
    assert np.array_equal(perturb_cycles(x, 0.0, 0.0, rng), x)
    assert np.array_equal(tremor(x, 0.0, 0.0, 6.0, rng), x)
    assert np.array_equal(aspiration(x, 0.0, rng), x) and np.array_equal(steeper_tilt(x, 0.0), x)
    assert np.array_equal(intensity(x, 0.0, 0.0, 0.0, [], rng), x)
    assert np.array_equal(insert_pauses(x, PausePlan(), rng).samples, x)


def test_strengths_grow_with_severity_and_overlap_at_the_mild_end():
    """Every knob moves with severity, and at severity 0.2 at least a fifth of draws still fall inside the
    controls' 5-95 % range: a mild patient can sound like a control on every cue (no cue separates alone)."""
    draws = {s: [draw_strengths(s, np.random.default_rng([k, int(s * 10)])) for k in range(300)] for s in (0.0, 0.2, 1.0)}
    for knob in KNOBS:
        if knob.effect == (0.0, 0.0):
            continue
        values = {s: np.array([getattr(d, knob.name) for d in ds]) for s, ds in draws.items()}
        sign = np.sign(knob.effect[0])
        assert sign * values[0.0].mean() < sign * values[0.2].mean() < sign * values[1.0].mean(), knob.name
        low, high = np.percentile(values[0.0], [5, 95])
        inside = np.mean((values[0.2] >= low) & (values[0.2] <= high))
        assert inside >= 0.2, f"only {inside:.0%} of mild {knob.name} values fall inside the controls' range"
    assert all(d.min_breaths == 1 for d in draws[0.2]) and all(d.min_breaths == 0 for d in draws[0.0])
    assert {k.name for k in KNOBS} <= set(MarkerStrengths().as_dict())
    with pytest.raises(ValueError, match="severity"):
        draw_strengths(1.5, np.random.default_rng(0))


def test_pauses_fall_at_syllable_valleys_lengthen_the_clip_and_add_quiet_frames():
    x = voice(4.0)
    valleys = syllables(x).valleys
    assert len(valleys) >= 10  # 4.5 Hz syllables over 4 s
    plan = PausePlan(syllables_per_breath=4, min_breaths=1, breath_median_s=0.5, hesitations=1.0, spread=0.2)
    out = insert_pauses(x, plan, np.random.default_rng(1))
    assert len(out.samples) > len(x) + 0.3 * FS
    assert sum(k.startswith("breath") for _, _, k in out.pauses) >= 2 and len(out.groups) >= 3
    frame = FS // 50

    def quiet_frames(y: np.ndarray) -> int:
        power = np.mean(y[: len(y) // frame * frame].reshape(-1, frame) ** 2, axis=1)
        return int(np.sum(power < power.max() * 1e-4))

    assert quiet_frames(out.samples) >= quiet_frames(x) + 10
    # the cut was made where the voice was quietest: no pause starts inside a syllable's loud part
    env = np.abs(hilbert(x))
    assert all(env[v] < 0.5 * env.max() for v in valleys)


def test_breath_pauses_hold_a_coloured_inhalation_with_a_late_crest():
    rng = np.random.default_rng(2)
    breath = inhalation(rng, int(0.6 * FS), rms=0.01)
    assert abs(np.sqrt(np.mean(breath**2)) - 0.01) < 1e-3
    assert band_power(breath, 200, 2000) > 3 * band_power(breath, 4000, 8000)  # pink/brown, not white
    halves = np.array_split(breath**2, 2)
    assert halves[1].sum() > halves[0].sum()  # the crest comes late in the breath
    x = voice(3.0)
    out = insert_pauses(x, PausePlan(syllables_per_breath=5, min_breaths=1, inhale_probability=1.0, inhale_level_db=-20), rng)
    inhaled = [(a, b) for a, b, k in out.pauses if k == "breath+inhale"]
    assert inhaled
    a, b = inhaled[0]
    assert np.sqrt(np.mean(out.samples[a:b] ** 2)) > 0.02 * active_rms(x)


def test_breathiness_adds_high_frequency_noise_in_voiced_speech_and_tilts_the_spectrum():
    x = voice(2.0, top_hz=1200)
    rng = np.random.default_rng(3)
    breathy = aspiration(x, 0.3, rng)
    assert band_power(breathy, 2500, 7500) > 100 * band_power(x, 2500, 7500) + 1e-9
    assert band_power(breathy, 0, 1300) == pytest.approx(band_power(x, 0, 1300), rel=0.05)
    wide = voice(2.0, top_hz=4000)
    tilted = steeper_tilt(wide, 0.5)
    ratio = lambda y: band_power(y, 2000, 4000) / band_power(y, 0, 1000)  # noqa: E731
    assert ratio(tilted) < 0.6 * ratio(wide)


def _periods(x: np.ndarray) -> np.ndarray:
    """Periods between rising zero crossings, located to a fraction of a sample by linear interpolation."""
    rising = np.flatnonzero((x[:-1] <= 0) & (x[1:] > 0))
    exact = rising + x[rising] / (x[rising] - x[rising + 1])
    return np.diff(exact) / FS


def test_jitter_perturbs_periods_and_shimmer_perturbs_cycle_amplitudes():
    t = np.arange(2 * FS) / FS
    tone = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    rng = np.random.default_rng(4)
    jittered = perturb_cycles(tone, 0.02, 0.0, rng)
    before, after = _periods(tone[FS // 4 : -FS // 4]), _periods(jittered[FS // 4 : -FS // 4])
    assert np.std(before) / np.mean(before) < 0.003
    assert 0.008 < np.std(after) / np.mean(after) < 0.05
    shimmered = perturb_cycles(tone, 0.0, 0.1, rng)
    peaks = np.array([c.max() for c in np.array_split(shimmered[FS // 4 : -FS // 4], 225)])
    assert np.std(peaks) / np.mean(peaks) > 0.04
    assert len(shimmered) == len(tone)  # shimmer alone keeps the timing


def test_tremor_adds_four_to_eight_hertz_modulation_of_loudness_and_pitch():
    t = np.arange(3 * FS) / FS
    tone = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    shaken = tremor(tone, 0.2, 0.0, 6.0, np.random.default_rng(5))
    peak, depth = envelope_modulation(shaken)
    assert 4.0 <= peak <= 8.0 and depth > 0.1
    assert envelope_modulation(tone)[1] < 0.01
    wobbling = tremor(tone, 0.0, 0.02, 5.0, np.random.default_rng(6))
    periods = _periods(wobbling[FS // 4 : -FS // 4])
    assert np.std(periods) / np.mean(periods) > 0.008  # pitch swings (steady tone: ~0)
    with pytest.raises(ValueError, match="tremor rate"):
        tremor(tone, 0.1, 0.0, 2.0, np.random.default_rng(0))


def test_slower_rate_keeps_pitch():
    x = voice(2.0)
    slowed = slow_down(x, 0.8)
    assert len(slowed) == pytest.approx(len(x) / 0.8, rel=0.03)
    f0_before, f0_after = (np.median(p.f0_hz[p.f0_hz > 0]) for p in (pitch_track(x), pitch_track(slowed)))
    assert f0_after == pytest.approx(f0_before, rel=0.03)


def test_intensity_is_weaker_falls_within_breath_groups_and_wobbles():
    x = (0.1 * np.random.default_rng(7).standard_normal(2 * FS)).astype(np.float32)
    rng = np.random.default_rng(8)
    weaker = intensity(x, 6.0, 0.0, 0.0, [], rng)
    assert 20 * np.log10(np.std(weaker) / np.std(x)) == pytest.approx(-6.0, abs=0.1)
    declining = intensity(x, 0.0, 6.0, 0.0, [(0, FS), (FS, 2 * FS)], rng)
    gain = lambda a, b: 20 * np.log10(np.std(declining[a:b]) / np.std(x[a:b]))  # noqa: E731
    assert gain(0, FS // 8) > -1.0 and gain(FS - FS // 8, FS) < -4.5 and gain(FS, FS + FS // 8) > -1.0
    unsteady = intensity(x, 0.0, 0.0, 2.0, [], rng)
    frames = 20 * np.log10(np.std(unsteady.reshape(-1, FS // 20), axis=1) / 0.1)
    assert np.std(frames) > 1.0


def test_ambience_reaches_its_snr_in_both_classes():
    x = voice(3.0)
    noisy, snr = add_ambience(x, np.random.default_rng(9))
    measured = 20 * np.log10(active_rms(x) / np.sqrt(np.mean((noisy - x) ** 2)))
    assert measured == pytest.approx(snr, abs=0.5) and 8 <= snr <= 22


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_telephone_channel_is_8_khz_band_limited_and_repeatable():
    from biomarker.independent.channel import telephone

    noise = (0.1 * np.random.default_rng(10).standard_normal(FS)).astype(np.float32)
    first, second = telephone(noise), telephone(noise)
    assert np.array_equal(first, second) and len(first) == pytest.approx(FS / 2, abs=200)
    spectrum = np.abs(np.fft.rfft(first)) ** 2
    freqs = np.fft.rfftfreq(len(first), 1 / 8000)
    assert spectrum[freqs > 3700].sum() < 0.02 * spectrum[(freqs > 300) & (freqs < 3400)].sum()


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="espeak-ng or sox missing")
def test_a_small_espeak_set_is_balanced_banded_and_readable(tmp_path):
    from biomarker.cohorts.manifest import read_manifest
    from biomarker.independent.build import IndependentSetConfig, build_independent_set

    build_independent_set(tmp_path, IndependentSetConfig(source="espeak", n=8, seed=3))
    items = read_manifest(tmp_path / "manifest.csv")
    assert {i.cohort for i in items} == {"independent-espeak", "independent-espeak-telephone"}
    wideband = [i for i in items if i.cohort == "independent-espeak"]
    assert sum(i.label for i in wideband) == 4 and all(i.split == "test" for i in items)
    severities = [float(i.extras["severity"]) for i in wideband if i.label]
    assert all(0.15 <= s <= 1.0 for s in severities) and any(s < 0.4 for s in severities)
    assert all(float(i.extras["severity"]) == 0 for i in wideband if not i.label)
    assert sum(i.extras["ambient"] == "yes" for i in wideband if i.label) == 2
