"""The two figures shown with every score: the waveform and the MFCC-gram the clinician can eyeball for
pauses and breath noise. Matplotlib only (no torch): the arrays come from the screener."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # the server has no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def waveform_figure(samples: np.ndarray, sample_rate_hz: int, title: str) -> Figure:
    figure, axis = plt.subplots(figsize=(8, 2))
    axis.plot(np.arange(len(samples)) / sample_rate_hz, samples, linewidth=0.4)
    axis.set(xlabel="time (s)", ylabel="amplitude", title=title, ylim=(-1, 1))
    figure.tight_layout()
    return figure


def mfccgram_figure(features: np.ndarray, frames_per_second: float, title: str) -> Figure:
    """`features` is [frames, coefficients]; coefficients go up the y axis, time along x. Each coefficient is
    standardised over time for display, otherwise the energy-like first coefficient swamps the colour scale."""
    standardised = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    figure, axis = plt.subplots(figsize=(8, 2.5))
    image = axis.imshow(
        standardised.T, origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3,
        extent=(0, features.shape[0] / frames_per_second, 0, features.shape[1]),
    )
    axis.set(xlabel="time (s)", ylabel="MFCC index", title=title)
    figure.colorbar(image, ax=axis, pad=0.01, label="z per coefficient")
    figure.tight_layout()
    return figure
