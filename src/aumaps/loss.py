"""The training objective: L2 between predicted and target AU maps (the paper's heatmap regression)."""

from __future__ import annotations

import torch

__all__ = ["heatmap_loss"]


def heatmap_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    foreground_weight: float = 1.0,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Masked per-pixel MSE: mean over the coded (sample, AU) maps.

    Args:
        pred, target: ``(N, A, H, W)``.
        mask: ``(N, A)`` bool; False maps contribute nothing.
        count: the number of coded maps to divide by; default ``mask.sum()``. Data-parallel
            training passes the global count divided by the number of processes, so that the
            averaged gradients equal one process's over the whole batch.
        foreground_weight: weight of the pixels where the target is non-zero (the Gaussians)
            relative to the background. 1 is the paper's plain L2. Larger values stop a
            network from settling on all-zero maps early, when the Gaussians cover a small
            part of the map; the minimum is still at the target, so the peaks stay calibrated.
    """
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    err = (pred.to(dtype) - target.to(dtype)) ** 2
    if foreground_weight != 1.0:
        err = err * torch.where(target > 0, foreground_weight, 1.0)
    per_map = err.mean(dim=(2, 3))
    m = mask.float()
    if count is None:
        count = m.sum()
    return (per_map * m).sum() / torch.as_tensor(count, dtype=per_map.dtype).clamp_min(1.0)
