"""The pretraining corpus's datasheet (data_cards/pretraining-corpus.md), written from a build's measured summary."""

from __future__ import annotations

from biomarker.pretrain.corpus_sources import HELD_OUT_SYNTH_VARIANTS, PT_BR_SHARE, TRAIN_SYNTH_VARIANTS


def render_card(summary: dict[str, object]) -> str:
    """The datasheet (data_cards/pretraining-corpus.md), written from the measured summary."""
    per_source: dict[str, dict[str, object]] = summary["per_source"]  # type: ignore[assignment]
    lines = [
        "# Data card: pretraining corpus (unlabeled speech)",
        "",
        "Built by `biomarker corpus build OUT` (biomarker/pretrain/corpus.py) from Debian packages and espeak-ng; the "
        "audio is never committed, the command rebuilds it. Numbers below were measured on the build that "
        "produced the shipped encoders.",
        "",
        "## Composition",
        "",
        f"- Total: **{summary['hours_total']} h** in {summary['segments']} segments "
        f"({summary['utterances']} utterances packed per speaker into ~{summary['config']['segment_s']} s "
        f"segments), {summary['speakers_or_voices']} speakers/voices, all resampled to 16 kHz mono.",
        f"- Real speech: **{summary['hours_real']} h**; synthetic (espeak-ng): **{summary['hours_synthetic']} h** "
        f"(real share {100 * summary['hours_real'] / max(summary['hours_total'], 1e-9):.0f} %).",
        f"- Synthetic pt-BR: {summary['hours_pt_br_synthetic']} h (the only real pt-BR is the 1.7 min in "
        "klettres pt_BR).",
        f"- Train: {summary['hours_train']} h; held out: {summary['hours_held_out']} h.",
        "",
        "| source | kind | language | hours | segments | utterances | speakers/voices | original rate (Hz) | "
        "license | split |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in per_source.items():
        rates = s["original_rates_hz"]
        rate_text = f"{rates[0]}" if len(rates) == 1 else f"{rates[0]}–{rates[-1]}"
        lines.append(f"| {name} | {s['kind']} | {s['language']} | {s['hours']} | {s['segments']} | "
                     f"{s['utterances']} | {s['speakers_or_voices']} | {rate_text} | {s['license']} | {s['split']} |")
    lines += [
        "",
        "## Held out (never seen in pretraining)",
        "",
        "- Real: `asterisk-prompt-es-co` (Colombian Spanish, GSM codec), `asterisk-prompt-fr-armelle` "
        "(French, GSM codec) and the asterisk voice `it_IT_f_Menardi`: new speakers, and two of them a new codec.",
        f"- Synthetic: espeak-ng pt-BR with the variants {', '.join(HELD_OUT_SYNTH_VARIANTS)} (training uses "
        f"{', '.join(TRAIN_SYNTH_VARIANTS)}).",
        "",
        "## How it was made",
        "",
        "- Real audio: decoded with `biomarker.audio.load` (libsndfile, sox for raw GSM), mixed to mono, "
        f"resampled to 16 kHz; asterisk `silence/` files excluded; {len(summary.get('skipped_files', []))} "
        "empty files or clicks under 0.1 s skipped (listed in `summary.json`).",
        "- Synthetic audio: espeak-ng 1.51, sentences from Debian fortune packages (fortunes-br, -es, -it, -de, "
        "-ru, -cs, -min; the packages' offensive sections excluded), random rate 120–190 wpm and pitch 25–75; "
        f"{int(100 * PT_BR_SHARE)} % of synthetic time is pt-BR.",
        "- Packing: a speaker's consecutive utterances are joined with 0.2 s of silence into segments of about "
        "6 s, so random 4-s crops hold speech rather than padding. Segments never mix speakers.",
        "",
        "## What it is and is not",
        "",
        "- It is a few hours of mostly read IVR prompts, acted game dialogue, isolated letters/syllables/words "
        "and robotic formant-synthesis speech. About a third of the real audio is 8 kHz telephone band "
        "(nothing above 4 kHz).",
        "- It is **not** clinical speech, **not** conversational, and contains **no real Brazilian-Portuguese "
        "sentences**. The synthetic speech has no natural jitter, shimmer or breathiness. Encoders pretrained "
        "on it learn generic spectro-temporal structure of speech, nothing about respiratory insufficiency.",
        "- Do not use it to make claims about any speaker population; speaker counts are small (a few dozen "
        "real voices).",
        "",
        "## Licenses",
        "",
        "Asterisk core sounds: CC-BY-SA-3.0 (en, es, fr, it-Menardi) and CC-BY-3.0 (ru, it-Carlo); asterisk "
        "es-co and fr-armelle prompts: GPL; fillets-ng data: GPL-2; klettres and ktuberling data: GPL-2+; "
        "gcin-voice: GPL-3/LGPL-3 and CC-BY-3.0; fortune texts: GPL/BSD as listed. espeak-ng output is not bound "
        "by espeak-ng's GPL. Credit the Debian packages when redistributing derived audio.",
        "",
    ]
    return "\n".join(lines)
