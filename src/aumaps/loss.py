"""The training objective: L2 between predicted and target AU maps (the paper's heatmap
regression), optionally with a term on each map's peak, the value the intensity is read from."""

from __future__ import annotations

import torch

__all__ = ["heatmap_loss"]


def heatmap_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    foreground_weight: float = 1.0,
    count: torch.Tensor | float | None = None,
    peak_weight: float = 0.0,
    peak_split: int = 1,
    au_weight: torch.Tensor | None = None,
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
        peak_weight: weight of the squared difference between the predicted and the target
            map's maximum (the intensity the codec reads from each), added to each map's pixel
            mean. 0, the paper's loss, leaves it out. Pixel L2 under uncertainty about where a
            Gaussian lies spreads it and lowers its peak, so the readout reads low; this term
            asks for the peak's height itself.
        peak_split: the peak term's maxima are taken in this many vertical strips of the map
            (1: the whole map; 2: the face's left and right halves, so that both peaks of a
            bilateral AU are asked for, not only the taller one), averaged over the strips.
        au_weight: ``(A,)`` weight of each AU's maps (``None``: 1 for every AU), e.g. to ask
            more of the AUs a model reads worst; the count divided by stays the number of
            coded maps, so weights above 1 add to the loss rather than take from other AUs.
    """
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    pred, target = pred.to(dtype), target.to(dtype)
    err = (pred - target) ** 2
    if foreground_weight != 1.0:
        err = err * torch.where(target > 0, foreground_weight, 1.0)
    per_map = err.mean(dim=(2, 3))
    if peak_weight:
        if peak_split < 1 or peak_split > pred.shape[3]:
            raise ValueError(f"loss.peak_split must be 1 to the map's width {pred.shape[3]}, got {peak_split}")
        strips = zip(pred.tensor_split(peak_split, dim=3), target.tensor_split(peak_split, dim=3))
        peak = torch.stack([(p.amax(dim=(2, 3)) - t.amax(dim=(2, 3))) ** 2 for p, t in strips]).mean(dim=0)
        per_map = per_map + peak_weight * peak
    if au_weight is not None:
        if au_weight.shape != (pred.shape[1],):
            raise ValueError(
                f"au_weight must hold one weight per AU map ({pred.shape[1]}), got {tuple(au_weight.shape)}"
            )
        per_map = per_map * au_weight.to(device=per_map.device, dtype=per_map.dtype)
    m = mask.float()
    if count is None:
        count = m.sum()
    return (per_map * m).sum() / torch.as_tensor(count, dtype=per_map.dtype).clamp_min(1.0)
