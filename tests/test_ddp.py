"""Two gloo processes train in lock-step through the one trainer, and an interrupted DDP run resumes exactly."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from biomarker.train import LOG_NAME, ResumableSampler, TrainConfig, init_distributed_from_env, train
from test_train import NoisyLinearData, Regression

WORLD = 2
STEPS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_once(out_dir: str, fail_on_call: int | None) -> dict:
    torch.manual_seed(0)  # same initial weights on both ranks, as `biomarker pretrain` does
    objective = Regression(fail_on_call=fail_on_call)
    data = NoisyLinearData()
    loader = DataLoader(data, batch_size=4, sampler=ResumableSampler(data, seed=3))
    config = TrainConfig(out_dir=out_dir, max_steps=STEPS, lr=1e-2, warmup_steps=2, log_every=2,
                         checkpoint_every=3, device="cpu", progress=False)
    try:
        step = train(objective, loader, config).step
    except KeyboardInterrupt:
        step = None
    return {"step": step, "params": torch.cat([p.detach().flatten() for p in objective.parameters()])}


def _worker(rank: int, port: int, base: str) -> None:
    """Three runs in one process group (spawning is the slow part): straight, interrupted, resumed."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    init_distributed_from_env(torch.device("cpu"))
    try:
        outcome = {
            "straight": _train_once(os.path.join(base, "straight"), None),
            "interrupted": _train_once(os.path.join(base, "resumed"), 5),  # after the step-3 checkpoint
            "checkpoint_step": torch.load(os.path.join(base, "resumed", "checkpoint.pt"), weights_only=False)["step"],
            "resumed": _train_once(os.path.join(base, "resumed"), None),
        }
        torch.save(outcome, os.path.join(base, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple:
    base = tmp_path_factory.mktemp("ddp")
    # spawn, not fork: an earlier test in the same process may have started autograd's threads, which fork cannot copy
    mp.start_processes(_worker, args=(_free_port(), str(base)), nprocs=WORLD, join=True, start_method="spawn")
    return base, [torch.load(base / f"rank{r}.pt") for r in range(WORLD)]


def test_both_ranks_end_with_identical_parameters(ranks):
    base, (rank0, rank1) = ranks
    assert rank0["straight"]["step"] == rank1["straight"]["step"] == STEPS
    torch.testing.assert_close(rank0["straight"]["params"], rank1["straight"]["params"], rtol=0, atol=0)
    torch.manual_seed(0)
    initial = torch.cat([p.detach().flatten() for p in Regression().parameters()])
    assert not torch.equal(initial, rank0["straight"]["params"]), "the run did not train"
    assert sorted(p.name for p in (base / "straight").iterdir()) == sorted(
        ["checkpoint.pt", LOG_NAME, "loss_curves.png"]), "only rank 0 writes, and only these files"


def test_an_interrupted_ddp_run_resumes_from_its_checkpoint(ranks):
    _, outcomes = ranks
    for outcome in outcomes:
        assert outcome["interrupted"]["step"] is None and outcome["checkpoint_step"] == 3
        assert outcome["resumed"]["step"] == STEPS
        torch.testing.assert_close(outcome["resumed"]["params"], outcome["straight"]["params"], rtol=0, atol=0)
