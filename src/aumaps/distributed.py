"""Distributed data-parallel training on PyTorch's own engine, launched by ``torchrun``.

``torchrun --nproc_per_node N -m aumaps train --config X.yaml`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on GPUs,
Gloo on CPUs). Nothing here starts processes: multi-node runs use torchrun's standard
``--nnodes``/``--rdzv_*`` options.

PyTorch's ``SyncBatchNorm`` runs on GPUs only; :class:`CPUSyncBatchNorm` is its CPU
counterpart, so that N processes with a per-process batch of B/N compute exactly what one
process computes with a batch of B (the batch statistics are reduced across processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Context", "setup", "cleanup", "CPUSyncBatchNorm", "convert_sync_batchnorm", "all_mean", "gather"]


@dataclass
class Context:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that writes checkpoints and logs (rank 0)."""
        return self.rank == 0


def setup(device: str | torch.device = "cpu") -> Context:
    """Join the process group when launched by torchrun; a single-process context otherwise.

    With several processes, ``device="cuda"`` becomes ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(device)
    if world <= 1:
        return Context(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank=rank, world=world, local_rank=local_rank, device=device)


def cleanup(ctx: Context) -> None:
    """Leave the process group."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: float, ctx: Context) -> float:
    """The mean of a per-process number over all processes."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world


def gather(obj, ctx: Context) -> list:
    """Every process's ``obj``, in rank order (a one-item list without distribution)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-time batch statistics cover every process's batch.

    Same parameters and buffers as :class:`torch.nn.BatchNorm2d` (checkpoints are
    interchangeable); in eval mode, or without a process group, it is a plain BatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import warnings

        from torch.distributed.nn.functional import all_gather

        # each process's mean and sum of squared deviations, combined exactly (Chan et al.),
        # which keeps float32 precision where E[x^2] - E[x]^2 would cancel
        dims = (0, 2, 3)
        c = x.shape[1]
        local_mean = x.mean(dims)
        local_m2 = ((x - local_mean.view(1, c, 1, 1)) ** 2).sum(dims)
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        with warnings.catch_warnings():  # its successor is private API; this one still works
            warnings.simplefilter("ignore", FutureWarning)
            parts = torch.stack(all_gather(torch.cat([local_mean, local_m2, count])))  # differentiable
        counts, means, m2s = parts[:, -1:], parts[:, :c], parts[:, c : 2 * c]
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (m2s + counts * (means - mean) ** 2).sum(0) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d synchronised across processes: PyTorch's on GPUs, ours on CPUs."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = CPUSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
