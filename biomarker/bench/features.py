"""`biomarker bench features`: our batched front-end against the per-clip reference it must agree with.

One run, same clips for both: python_speech_features.mfcc (numpy, clip by clip) vs `get_extractor("mfcc")`
on the whole batch, and torchaudio's kaldi fbank (clip by clip) vs `get_extractor("fbank")`. Each timing is
the best of `repeats` after one warm-up, because the machine may be shared. Ours is timed with one torch
thread (like the numpy reference) and with the default thread count. The clips are synthetic
(seeded noise): MFCC cost does not depend on content. The report names the CPU, thread count and device.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import python_speech_features
import torch
import torchaudio.compliance.kaldi as kaldi

from biomarker.bench.timing import measure_one
from biomarker.device import describe, pick_device
from biomarker.features import get_extractor


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() is empty on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(clips: int = 64, seconds: float = 10.0, repeats: int = 3, device: str = "cpu", as_json: bool = False) -> dict:
    """Time both front-ends on `clips` x `seconds` of 16 kHz audio; print a table (or JSON); return the dict."""
    target = pick_device(device)
    rate = 16000
    batch = np.random.default_rng(0).normal(0, 0.1, (clips, int(seconds * rate))).astype(np.float32)
    waveform = torch.from_numpy(batch)  # [B, S]
    on_device = waveform.to(target)

    mfcc = get_extractor("mfcc").to(target).eval()
    fbank = get_extractor("fbank", norm_mean=None, norm_std=None).to(target).eval()
    psf_kwargs = {"samplerate": rate}

    def kaldi_per_clip() -> list[torch.Tensor]:
        return [
            kaldi.fbank((clip - clip.mean())[None], htk_compat=True, sample_frequency=rate, use_energy=False,
                        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
            for clip in waveform
        ]

    references = {
        "mfcc": ("python_speech_features.mfcc, per clip (numpy float64, 1 thread)",
                 lambda: [python_speech_features.mfcc(c, **psf_kwargs) for c in batch]),
        "fbank": ("torchaudio.compliance.kaldi.fbank, per clip (float32, CPU)", kaldi_per_clip),
    }
    ours = {"mfcc": lambda: mfcc(on_device), "fbank": lambda: fbank(on_device)}
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads}) if target.type == "cpu" else [default_threads]
    rows = {}
    with torch.inference_mode():
        for name, (label, reference) in references.items():
            row = {"reference": label, "reference_s": measure_one(reference, repeats, device=target, reduce=min).wall_s, "ours_s": {}}
            for threads in thread_counts:
                torch.set_num_threads(threads)
                row["ours_s"][threads] = measure_one(ours[name], repeats, device=target, reduce=min).wall_s
            torch.set_num_threads(default_threads)
            row["speedup"] = {threads: row["reference_s"] / s for threads, s in row["ours_s"].items()}
            rows[name] = row
        reference_mfcc = np.stack([python_speech_features.mfcc(c, **psf_kwargs) for c in batch[:4]])
        ours_mfcc = mfcc(on_device[:4])[0].double().cpu().numpy()
    result = {
        "clips": clips,
        "seconds_per_clip": seconds,
        "audio": "synthetic (seeded Gaussian noise); cost does not depend on content",
        "repeats": repeats,
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": thread_counts,
                    "device": describe(target)},
        "mfcc_max_rel_diff_vs_psf": float(np.abs(ours_mfcc - reference_mfcc).max() / np.abs(reference_mfcc).max()),
        "results": rows,
    }
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{clips} clips x {seconds:g} s at 16 kHz ({result['audio']}); best of {repeats}")
        print(f"machine: {result['machine']['cpu']} ({os.cpu_count()} CPUs), ours on {result['machine']['device']}")
        for name, row in rows.items():
            print(f"{name}: reference {row['reference_s']:.3f} s  [{row['reference']}]")
            for threads, seconds_taken in row["ours_s"].items():
                print(f"  ours, {threads} torch thread(s): {seconds_taken:.3f} s  -> {row['speedup'][threads]:.1f}x")
        print(f"mfcc agreement: max|ours - psf| / max|psf| = {result['mfcc_max_rel_diff_vs_psf']:.2e}")
    return result
