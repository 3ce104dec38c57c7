"""Running a model in a hospital: acceptance-gated promotion (`acceptance`), drift monitoring against the model's
validation reference (`reference`, `drift`) and machine-readable model cards (`cards`).

Imports run downward: `cards`, `drift` and `reference`'s reading side need no torch (the app uses them);
`acceptance` and `reference.build_reference` score audio through `biomarker.screener`, lazily.
"""
