"""The figures shown with every score (the waveform and the MFCC-gram the clinician can eyeball for pauses and
breath noise) and the patient's trend. Matplotlib only (no torch): the arrays come from the screener. Titles and
axis labels come translated from the page."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # the server has no display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def waveform_figure(samples: np.ndarray, sample_rate_hz: int, title: str, xlabel: str, ylabel: str) -> Figure:
    figure, axis = plt.subplots(figsize=(8, 2))
    axis.plot(np.arange(len(samples)) / sample_rate_hz, samples, linewidth=0.4)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(-1, 1))
    figure.tight_layout()
    return figure


def mfccgram_figure(features: np.ndarray, frames_per_second: float, title: str, xlabel: str, ylabel: str) -> Figure:
    """`features` is [frames, coefficients]; coefficients go up the y axis, time along x. Each coefficient is
    standardised over time for display, otherwise the energy-like first coefficient swamps the colour scale."""
    standardised = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    figure, axis = plt.subplots(figsize=(8, 2.5))
    image = axis.imshow(
        standardised.T, origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3,
        extent=(0, features.shape[0] / frames_per_second, 0, features.shape[1]),
    )
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    figure.colorbar(image, ax=axis, pad=0.01, label="z")
    figure.tight_layout()
    return figure


def trend_figure(times: Sequence[datetime], probabilities: Sequence[float], thresholds: Sequence[float], title: str,
                 xlabel: str, ylabel: str, threshold_label: str) -> Figure:
    """Probability per result over time (`times` in the viewer's local time), each against the threshold it was
    decided at (a model update can move the threshold); points at or above it are drawn as referrals."""
    order = np.argsort(np.array(times, dtype="datetime64[us]"))
    times = [times[i] for i in order]
    probabilities = np.array(probabilities)[order]
    thresholds = np.array(thresholds)[order]
    refer = probabilities >= thresholds
    figure, axis = plt.subplots(figsize=(8, 2.6))
    axis.plot(times, probabilities, color="0.4", linewidth=1)
    axis.scatter([x for x, r in zip(times, refer) if r], probabilities[refer], color="#c0392b", zorder=3)
    axis.scatter([x for x, r in zip(times, refer) if not r], probabilities[~refer], color="#2471a3", zorder=3)
    axis.step(times, thresholds, where="post", color="#c0392b", linestyle="--", linewidth=1, label=threshold_label)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0, 1))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # "Dec 6", "14:30": no clutter
    axis.legend(loc="upper left", frameon=False)
    figure.tight_layout()
    return figure
