"""The scan's errors, in a leaf so every backend module (scan_native, scan_torch, ...) can raise them without
importing back from `scan.py`, which imports the backends. `biomarker.nn.scan` re-exports both."""

from __future__ import annotations

from biomarker.records import BiomarkerError


class ScanInputError(BiomarkerError, ValueError):
    """An argument of `selective_scan` has the wrong shape, dtype or device; the message names it."""


class ScanBackendUnavailableError(BiomarkerError, RuntimeError):
    """The requested backend cannot run here (e.g. `cuda` without mamba-ssm or without CUDA tensors)."""
