"""Data-parallel training with torchrun on CPU (gloo): same trajectory as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from aumaps.model import AUHourglass
from aumaps.train import load_config, train

ARCH = {"num_stacks": 2, "depth": 2, "width": 16}


def _cfg(cache, out_dir, epochs=2):
    return load_config(
        overrides={
            "data": {"cache": str(cache), "max_train": 8},
            "model": ARCH,
            # SGD: RMSprop's and Adam's first steps are sign-like and blow float rounding of
            # near-zero gradients up to lr-sized differences, which says nothing about equivalence
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            # float64: float32 rounding (BatchNorm sums of gradients that nearly cancel, kernels that
            # differ with the batch per process and the CPU's instruction set) differs by a few per
            # cent of the movement between equivalent computations; float64 shows the algorithm
            "train": {
                "epochs": epochs,
                "batch_size": 4,
                "amp": "fp32",
                "seed": 3,
                "out_dir": str(out_dir),
                "dtype": "float64",
            },
        }
    )


def _torchrun(nproc, config, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "aumaps",
        "train",
        "--config",
        str(config),
        "--quiet",
    ]
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def _params(run):
    state = torch.load(run / "train_state.pt", weights_only=True)
    return state["epoch"], {k: v for k, v in state["model"].items() if v.is_floating_point() and "running" not in k}


def test_two_processes_match_one_and_resume_in_one(tiny_cache, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train(_cfg(tiny_cache, single), progress=False, max_epochs=1)  # epoch 1: 2 steps of 4 samples
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(_cfg(tiny_cache, ddp, epochs=1)))
    _torchrun(2, config, cwd=tmp_path)  # the same 2 steps, 2 samples in each process

    torch.manual_seed(3)
    init = AUHourglass(num_aus=5, **ARCH).state_dict()
    (ea, a), (eb, b) = _params(ddp), _params(single)
    assert ea == eb == 1
    # the two runs differ by float64 rounding only: a millionth of how far training moved the weights
    diff = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in b))
    moved = torch.sqrt(sum(((b[k] - init[k].double()) ** 2).sum() for k in b))
    assert moved > 0.05 and diff / moved < 1e-6, (diff / moved).item()
    log_ddp, log_single = pd.read_csv(ddp / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert len(log_ddp) == 1  # rank 0 alone writes the log
    assert log_ddp["train_loss"].iloc[0] == pytest.approx(log_single["train_loss"].iloc[0], rel=1e-9)

    # one process resumes the 2-process checkpoint and continues the same trajectory
    train(_cfg(tiny_cache, ddp, epochs=2), resume=True, progress=False)
    train(_cfg(tiny_cache, single, epochs=2), resume=True, progress=False)
    (ea, a), (eb, b) = _params(ddp), _params(single)
    assert ea == eb == 2
    log_ddp, log_single = pd.read_csv(ddp / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert list(log_ddp["epoch"]) == [1, 2]
    assert log_ddp["train_loss"].iloc[1] == pytest.approx(log_single["train_loss"].iloc[1], rel=1e-9)
