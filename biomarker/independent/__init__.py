"""Independent evaluation sets: a second RI-marker implementation, written from the literature, and the held-out
real and espeak-ng material it is applied to.

WHY a second implementation: a screener trained on one marker generator can learn that generator (its noise
colour, its pause rule, its stretch artefacts) and still look perfect on the generator's own held-out cohort. The
data that decides must be made by different code, with different parameters and noise sources, from voices,
sentences and languages no training or model-selection path has touched (shared/DESIGN.md, "Clinical honesty").

The contract, held by tests/test_independent_eval.py:
- nothing in training or model selection (`biomarker.train`, `finetune`, `pretrain`, `cohorts`, `corpus`,
  `evaluate`, `models`, `screener`, the CLI commands that drive them) imports this package;
- this package imports nothing from `biomarker.cohorts.markers`, `synth`, `real` or `noise`.

One job per module: `analysis` (envelope, syllable valleys, F0), `soxio` (sox as a filter), the marker families
(`pauses`, `inhalation`, `breathiness`, `perturbation`, `tremor`, `tempo`, `intensity`), `strengths` (severity to
parameters), `apply` (their order), `ambient` (ward ambience), `channel` (telephone GSM), `sources` and `voices`
(held-out material), `build` (a set on disk), `card` (its datasheet), `breakdown` (sensitivity per band/subgroup).
"""
