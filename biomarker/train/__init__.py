"""The one training loop, shared by self-supervised pretraining and supervised fine-tuning.

Why one loop: resume, precision, clipping, logging and distributed training are where training code quietly
diverges between copies (SSAST's and SSAMBA's trainers are copies with different bugs). Here each of those
is written once and both `biomarker pretrain` and `biomarker finetune` go through it.

The contract is small. The caller passes
- an *objective*: an `nn.Module` whose forward takes one batch (a mapping is passed as keyword arguments,
  a tuple/list as positional arguments, anything else as the single argument) and returns a dict of scalar
  tensors that contains ``"loss"``; every other entry is logged as a metric;
- a `DataLoader` of training batches (tensors anywhere inside dicts/lists/tuples are moved to the device);
- optionally an `evaluate(objective) -> dict[str, float]` hook, run every `eval_every` steps on rank 0's
  schedule (all ranks call it, so it may use collectives), e.g. `batch_evaluator(held_out_loader)`.

What it guarantees:
- AdamW over the parameters that require grad (freezing is the caller's switch), linear warmup then
  cosine decay to `min_lr_ratio`, gradient-norm clipping, bf16 autocast on CUDA (fp32 on CPU).
- Exact resume: model, optimizer, scheduler, step, position inside the epoch and every RNG state (per rank)
  are checkpointed; a run stopped at step k and resumed reaches the same parameters as an uninterrupted run
  (the test checks it). Data order is reproducible because the sampler is reseeded per epoch
  (`ResumableSampler`) and datasets with a `set_epoch` method are told the epoch before each pass.
- A non-finite loss, or a non-finite gradient norm under a finite loss (a broken backward kernel), stops
  training with `NonFiniteLossError` naming the step, before the bad gradient touches the weights
  (SpeechBrain's `check_loss_isfinite`).
- Distributed: when `torch.distributed` is initialised (e.g. under `torchrun`) the objective is wrapped in
  DistributedDataParallel, metrics are averaged over ranks, and only rank 0 writes files or shows progress.
- `touch out_dir/STOP` ends a run cleanly at the next step (final evaluation, checkpoint), e.g. on a shared
  machine when the budget changes; delete the file before resuming.
- Files under `out_dir`: `checkpoint.pt` (latest, for resume), `best.pt` (weights at the best monitored
  value), `log.csv` (long format: step, split, metric, value), `loss_curves.png`.

The rooms: `config` (TrainConfig, TrainResult, the errors), `state` (TrainState: what a checkpoint holds, written
and read once), `loop` (Trainer: the flat loop and its hooks `compute_forward`, `fit_batch`, `check_finite`,
`evaluate_stage`, `on_evaluation_end`; and `train()`), `distributed` (ranks, the process group, ResumableSampler,
the collectives), `run_files` (file names, the CSV log and plot, atomic saves, `load_checkpoint`, `restore_best`).
Every name callers use is importable from `biomarker.train` itself.
"""

from biomarker.train.config import NonFiniteLossError, TrainConfig, TrainConfigError, TrainResult
from biomarker.train.distributed import (ResumableSampler, init_distributed_from_env, is_distributed, local_device,
                                         rank, world_size)
from biomarker.train.loop import Trainer, batch_evaluator, call_objective, move_to_device, train, warmup_cosine
from biomarker.train.run_files import (BEST_NAME, CHECKPOINT_NAME, LOG_NAME, PLOT_NAME, STOP_NAME, load_checkpoint,
                                       plot_log, restore_best)
from biomarker.train.state import TrainState, rng_state, set_rng_state

_rng_state = rng_state  # the name tests/test_train.py imports

__all__ = [
    "BEST_NAME", "CHECKPOINT_NAME", "LOG_NAME", "PLOT_NAME", "STOP_NAME", "NonFiniteLossError", "ResumableSampler",
    "TrainConfig", "TrainConfigError", "TrainResult", "TrainState", "Trainer", "batch_evaluator", "call_objective",
    "init_distributed_from_env", "is_distributed", "load_checkpoint", "local_device", "move_to_device", "plot_log",
    "rank", "restore_best", "rng_state", "set_rng_state", "train", "warmup_cosine", "world_size",
]
