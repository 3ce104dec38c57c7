"""CLI commands: `biomarker cohort synth|noise|real|import` — build and import labelled cohorts.

Bodies import the library lazily so `biomarker --help` never loads torch or scipy.
"""

from __future__ import annotations

from pathlib import Path

import typer

cohort_app = typer.Typer(help="Build (synthetic, real-speech) and import (SPIRA) labelled cohorts.", no_args_is_help=True)


@cohort_app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Folder for clips, manifest.csv, DATASHEET.md."),
    n: int = typer.Option(400, "--n", help="Number of clips (2 per synthetic speaker)."),
    seed: int = typer.Option(0, "--seed"),
    pool: str = typer.Option("train", "--pool", help="'train' or 'heldout' voices and sentences (disjoint), or 'languages': the training voices reading 12 more languages (never the held-out French and German)."),
    noise_bank: Path = typer.Option(None, "--noise-bank", help="Existing noise bank folder (default: make one in OUT)."),
    noisy_copy: bool = typer.Option(True, "--noisy-copy/--no-noisy-copy", help="Also write a ward-noise copy of every clip."),
    card: Path = typer.Option(None, "--card", help="Also write the datasheet here (e.g. data_cards/synthetic-ri-train.md)."),
    variants: str = typer.Option(None, "--variants", help="Comma-separated espeak-ng voice variants instead of the pool's own, or 'extra' for the wider training set (never held-out voices)."),
    cohort: str = typer.Option(None, "--cohort", help="Cohort name in the manifest (default: synthetic-<pool>)."),
    randomise_markers: bool = typer.Option(False, "--randomise-markers", help="Domain randomisation: every clip realises each marker family its own way (in-breath spectrum, pause lengths, tremor kind, shimmer, decline shape ...)."),
) -> None:
    """Synthesize a SYNTHETIC respiratory-insufficiency cohort with espeak-ng (patients get RI markers)."""
    from biomarker.cohorts.datasheet import synthetic_datasheet, write_datasheet
    from biomarker.cohorts.synth import EXTRA_TRAIN_VARIANTS, SynthConfig, summarise, synthesize_cohort, _config_json
    import json

    chosen = () if not variants else EXTRA_TRAIN_VARIANTS if variants == "extra" else tuple(v.strip() for v in variants.split(",") if v.strip())
    config = SynthConfig(n=n, seed=seed, pool=pool, noisy_copy=noisy_copy, variants=chosen, cohort=cohort,
                         randomise_markers=randomise_markers)
    items = synthesize_cohort(out, config, noise_bank)
    summary = summarise(items)
    text = synthetic_datasheet(f"{cohort or 'synthetic-ri-' + pool} (seed {seed})", summary, json.loads(_config_json(config)))
    write_datasheet(text, out / "DATASHEET.md", *([card] if card else []))
    typer.echo(f"wrote {len(items)} SYNTHETIC clips of {summary['speakers']} speakers to {out / 'manifest.csv'}")


@cohort_app.command("noise")
def noise(
    out: Path = typer.Argument(..., help="Folder for the noise bank."),
    per_kind: int = typer.Option(4, "--per-kind"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate the ward-noise bank (beeps, ventilation, hum/fans, clatter, distant voices) + noise_data.csv."""
    from biomarker.cohorts.noise import generate_noise_bank

    paths = generate_noise_bank(out, per_kind=per_kind, seed=seed)
    typer.echo(f"wrote {len(paths)} noise clips to {out}")


@cohort_app.command("real")
def real(
    root: Path = typer.Argument(..., help="Root where the Debian speech packages were extracted (or /)."),
    out: Path = typer.Argument(...),
    voices: str = typer.Option("train", "--voices", help="'train', 'extra-train', 'validation' or 'heldout' real voices (disjoint sets)."),
    clips_per_voice: int = typer.Option(30, "--clips-per-voice"),
    marked_fraction: float = typer.Option(0.5, "--marked-fraction", help="Share of clips given synthetic RI markers."),
    raw_controls: bool = typer.Option(False, "--raw-controls", help="Leave healthy clips unprocessed (held-out check)."),
    noise_bank: Path = typer.Option(None, "--noise-bank", help="Add ward noise to half the clips of both classes."),
    split: str = typer.Option(None, "--split", help="Split written for every row (e.g. 'train' or 'test')."),
    seed: int = typer.Option(0, "--seed"),
    randomise_markers: bool = typer.Option(False, "--randomise-markers", help="Domain randomisation: every clip realises each marker family its own way."),
    cohort: str = typer.Option(None, "--cohort", help="Cohort name in the manifest (default: real-<voices>)."),
) -> None:
    """Clips of REAL voices, healthy or with SYNTHETIC RI markers applied (each clip is its own subject)."""
    from biomarker.cohorts.noise import load_noise_bank
    from biomarker.cohorts.real import VOICE_SETS, RealCohortConfig, build_real_cohort, find_voices

    if voices not in VOICE_SETS:
        raise typer.BadParameter(f"--voices must be one of {', '.join(map(repr, VOICE_SETS))}, got {voices!r}")
    config = RealCohortConfig(clips_per_voice=clips_per_voice, marked_fraction=marked_fraction, processed_controls=not raw_controls,
                              seed=seed, randomise_markers=randomise_markers)
    bank = load_noise_bank(noise_bank) if noise_bank else ()
    items = build_real_cohort(find_voices(root, VOICE_SETS[voices]), out, cohort or f"real-{voices}", config, split=split, noise_bank=bank)
    typer.echo(f"wrote {len(items)} real-speech clips ({sum(i.label for i in items)} with synthetic markers) to {out / 'manifest.csv'}")


@cohort_app.command("import")
def import_spira(
    csv_path: Path = typer.Argument(..., help="A SPIRA CSV (file_path,class | file_path,insuficiencia_respiratoria | arquivo,oxigenacao)."),
    out: Path = typer.Argument(..., help="Manifest CSV to write."),
    cohort: str = typer.Option("spira", "--cohort"),
    seed: int = typer.Option(0, "--seed", help="Seed of the speaker-disjoint stratified split."),
    speaker_column: str = typer.Option(None, "--speaker-column", help="CSV column naming each recording's speaker "
                                       "(default: the first of speaker_id, speaker, participant, participante, paciente, id_paciente present)."),
    speaker_pattern: str = typer.Option(None, "--speaker-pattern", help="Regular expression on the file path whose "
                                        "'speaker' (or first) group is the speaker, e.g. '(?P<speaker>p\\d+)_'."),
) -> None:
    """Import a SPIRA CSV into a validated manifest with a stratified train/val/test split by speaker: speaker-
    disjoint when the CSV names speakers (a column or a file-name pattern); otherwise each file is its own speaker
    and the command warns that the split cannot be speaker-disjoint."""
    from biomarker.cohorts.manifest import write_manifest
    from biomarker.cohorts.spira import read_spira_csv
    from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
    from biomarker.records import CohortError

    try:
        imported = read_spira_csv(csv_path, cohort=cohort, speaker_column=speaker_column, speaker_pattern=speaker_pattern)
    except CohortError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1)
    items = speaker_disjoint_split(imported.items, SplitConfig(seed=seed))
    write_manifest(items, out)
    speakers = len({item.speaker_id for item in items})
    typer.echo(f"wrote {len(items)} rows ({sum(i.label for i in items)} RI) of {speakers} speakers to {out}; "
               f"speakers from the {imported.speakers_from}")
    if not imported.speaker_disjoint:
        typer.echo(f"WARNING: {csv_path} has no speaker column, so every file counts as its own speaker. If a person "
                   "recorded several files, they can land in both train and test and the split is NOT speaker-disjoint "
                   "(test metrics then overstate). Name the speaker with --speaker-column COLUMN or "
                   "--speaker-pattern REGEX.", err=True)


@cohort_app.command("rooms")
def rooms(
    out: Path = typer.Argument(..., help="Folder for the room impulse responses (room_NNN.wav, rooms.json)."),
    count: int = typer.Option(48, "--rooms", help="How many shoebox rooms."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Synthesise a bank of ward-sized room impulse responses (pyroomacoustics) for `cohort domain`."""
    from biomarker.cohorts.domain import RoomBankConfig, make_room_bank

    paths = make_room_bank(out, RoomBankConfig(rooms=count, seed=seed))
    typer.echo(f"wrote {len(paths)} room impulse responses to {out}")


@cohort_app.command("domain")
def domain(
    manifest: Path = typer.Argument(..., help="Training manifest whose rows get randomised-domain copies."),
    out: Path = typer.Argument(..., help="Folder for clips/, manifest.csv (sources + copies) and domain_config.json."),
    rooms: Path = typer.Option(None, "--rooms", help="Room impulse-response bank (`cohort rooms`); without it no reverberation."),
    copies: int = typer.Option(1, "--copies", help="Randomised copies per source row."),
    seed: int = typer.Option(0, "--seed"),
    keep_originals: bool = typer.Option(True, "--keep-originals/--copies-only", help="Keep the source rows beside their copies."),
    workers: int = typer.Option(1, "--workers", help="Encoding processes (the result does not depend on it)."),
) -> None:
    """Domain randomisation: copies of every row through random rooms, microphones, gains, band-limits and codecs
    (8 kHz telephone GSM / mu-law, Opus voice notes, MP3); label, speaker and split kept. SYNTHETIC data stays so."""
    from biomarker.cohorts.domain import DomainConfig, randomise_manifest

    config = DomainConfig(copies=copies, seed=seed, keep_originals=keep_originals, room_probability=0.5 if rooms else 0.0)
    items = randomise_manifest(manifest, out, rooms, config, workers=workers)
    typer.echo(f"wrote {len(items)} rows ({sum(i.extras.get('domain') != 'source' for i in items)} randomised copies) to {out / 'manifest.csv'}")


@cohort_app.command("merge")
def merge(
    out: Path = typer.Argument(..., help="Manifest CSV to write."),
    manifests: list[Path] = typer.Argument(..., help="Manifests to merge (rows keep their cohort and split)."),
) -> None:
    """Merge validated manifests into one (paths rewritten relative to OUT)."""
    from biomarker.cohorts.manifest import check_speaker_labels, read_manifest, write_manifest

    items = [item for manifest in manifests for item in read_manifest(manifest)]
    check_speaker_labels(items, out)
    write_manifest(items, out)
    typer.echo(f"wrote {len(items)} rows from {len(manifests)} manifests to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(cohort_app, name="cohort")
