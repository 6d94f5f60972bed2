"""Training: the paper's heatmap regression, reproducible and resumable.

``aumaps train --config configs/X.yaml`` runs :func:`train`. The setup is the paper's: one
hourglass, an L2 (per-pixel MSE) loss between predicted and target AU heatmaps (targets from
the codec; uncoded AUs masked out of the loss), RMSprop at 2.5e-4 with step decay. Every
epoch validates (loss, ICC, MAE, localisation error), appends to ``metrics.csv`` and writes,
atomically, ``train_state.pt`` (everything needed to resume), ``model.pt`` (the latest model
as an aumaps checkpoint with its model card) and ``best.pt`` (best validation ICC).

``--resume`` restarts from ``train_state.pt`` and produces bit-for-bit the weights of an
uninterrupted run: initialisation, shuffling and each sample's augmentation depend only on
the seed, the epoch and the sample. To extend a run, raise ``train.epochs`` (and move
``schedule.milestones``) in its config and ``--resume``: the resumed run follows the new schedule.
"""

from __future__ import annotations

import bisect
import copy
import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from .atomic import atomic_path, atomic_write
from .codec import AUHeatmapCodec
from .data.augment import AugmentConfig
from .data.cache import CropCache
from .data.dataset import AUHeatmapDataset
from .evaluate import predict_loader
from .hardware import resolve_precision
from .loss import heatmap_loss
from .model import AUHourglass
from .weights import save_checkpoint

__all__ = ["DEFAULTS", "load_config", "train"]

log = logging.getLogger(__name__)

#: Every configuration value and its default; a YAML file overrides any subset.
DEFAULTS: dict[str, Any] = {
    "name": "aumaps",
    "data": {
        "cache": None,
        "manifest": None,
        "train_split": "train",
        "val_split": "val",
        "max_train": None,
        "max_val": None,
    },
    "aus": "bp4d",
    "codec": {"crop_size": 256, "map_size": 64, "sigma": 1.0, "sigma_growth": 0.25, "window": 6.0},
    "loss": {"foreground_weight": 1.0, "peak_weight": 0.0, "peak_split": 1, "au_weights": {}},
    "model": {"num_stacks": 1, "depth": 4, "width": 256},
    "optim": {"name": "rmsprop", "lr": 2.5e-4, "weight_decay": 0.0, "momentum": 0.0},
    "schedule": {"name": "step", "milestones": [], "gamma": 0.1, "warmup": 0},
    "train": {
        "epochs": 40,
        "batch_size": 16,
        "workers": 0,
        "amp": "auto",
        "seed": 0,
        "out_dir": "runs/aumaps",
        "threads": None,
        "compile": False,
        "init": None,
        "channels_last": True,
        "ema": 0.0,
        "dtype": "float32",
    },
    "augment": AugmentConfig().to_dict(),
    "card": {},
}


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key not in base:
            raise ValueError(f"unknown configuration key '{where}{key}'; known: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict) and base[key]:  # {} = free-form
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """:data:`DEFAULTS` updated by a YAML file and then by ``overrides``; unknown keys are errors.

    Relative data and output paths in the file are taken relative to the current directory.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        with open(path) as fh:
            cfg = _merge(cfg, yaml.safe_load(fh) or {})
    return _merge(cfg, overrides or {})


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def _optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    name = cfg["name"].lower()
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], momentum=cfg["momentum"])
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], momentum=cfg["momentum"])
    raise ValueError(f"optim.name must be rmsprop, adam or sgd, not {cfg['name']!r}")


def _summary(val: dict, codec: AUHeatmapCodec):
    from .metrics import au_metrics

    mask = np.isfinite(val["true"])
    return au_metrics(
        val["pred"],
        val["true"],
        mask=mask,
        aus=codec.aus,
        pred_peaks=val["pred_peaks"],
        true_centres=val["true_centres"],
        iod=val["iod"],
    )


def _au_weights(weights: dict | None, aus: tuple[int, ...]) -> torch.Tensor | None:
    """``loss.au_weights`` ({AU number: weight}, the rest 1) as one weight per map, or None."""
    if not weights:
        return None
    if not isinstance(weights, dict):
        raise ValueError(f"loss.au_weights must map AU numbers to weights, e.g. {{20: 2.0}}, got {weights!r}")
    out = torch.ones(len(aus))
    for au, weight in weights.items():
        if not isinstance(au, int) or isinstance(au, bool) or au not in aus:
            raise ValueError(f"loss.au_weights: {au!r} is not one of the trained AUs {list(aus)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"loss.au_weights: the weight of AU {au} must be a number >= 0, got {weight!r}")
        out[aus.index(au)] = float(weight)
    return out


def _loader(dataset, batch_size: int, workers: int, order: np.ndarray | None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=None if order is None else order.tolist(),
        shuffle=False,
        num_workers=workers,
        drop_last=False,
        persistent_workers=False,
    )


def train(
    cfg: dict,
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
    max_epochs: int | None = None,
) -> Path:
    """Train as configured; returns the run folder.

    Launched by ``torchrun`` with several processes, it trains data-parallel
    (:mod:`aumaps.distributed`): ``train.batch_size`` stays the *global* batch, split evenly
    over the processes, BatchNorm statistics are synchronised, so N processes follow the
    same trajectory as one; only rank 0 writes checkpoints and logs.

    Args:
        cfg: a configuration from :func:`load_config`.
        resume: continue from ``<out_dir>/train_state.pt`` (an error if there is none); the
            number of processes may differ from the run that wrote it.
        progress: show progress bars (rank 0 only).
        device: torch device (``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun).
        max_epochs: stop after this many epochs *of this call* (tests, time-boxed runs);
            the schedule still follows ``train.epochs``.
    """
    from . import distributed

    ctx = distributed.setup(device)
    try:
        return _train(cfg, resume, progress and ctx.main, ctx, max_epochs)
    finally:
        distributed.cleanup(ctx)


def _train(cfg: dict, resume: bool, progress: bool, ctx, max_epochs: int | None) -> Path:
    from tqdm.auto import tqdm

    from .distributed import all_mean, convert_sync_batchnorm, gather

    tcfg = cfg["train"]
    out_dir = Path(tcfg["out_dir"])
    device = ctx.device
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    seed = int(tcfg["seed"])
    batch = int(tcfg["batch_size"])
    if batch % ctx.world:
        raise ValueError(f"train.batch_size {batch} (the global batch) must be divisible by the {ctx.world} processes")
    precision = resolve_precision(tcfg["amp"], device)
    if ctx.main:
        log.info("precision: %s (train.amp: %s)", precision, tcfg["amp"])

    if ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cache = _open_cache(cfg)
    _ = gather(None, ctx)  # the others wait for rank 0 to build the cache
    if not ctx.main:
        cache = _open_cache(cfg)
    codec = AUHeatmapCodec(cfg["aus"], **cfg["codec"])
    au_weight = _au_weights(cfg["loss"]["au_weights"], codec.aus)
    if codec.map_size * 4 != codec.crop_size:
        raise ValueError(
            f"codec.map_size must be a quarter of codec.crop_size (the hourglass's output stride): "
            f"{codec.crop_size} gives {codec.crop_size // 4}, not {codec.map_size}"
        )
    train_idx = _limit(cache.indices(cfg["data"]["train_split"]), cfg["data"]["max_train"], seed)
    val_idx = _limit(cache.indices(cfg["data"]["val_split"]), cfg["data"]["max_val"], seed)
    if len(train_idx) == 0:
        raise ValueError(f"the cache at {cache.path} has no valid rows in split {cfg['data']['train_split']!r}")
    train_set = AUHeatmapDataset(cache, train_idx, codec, AugmentConfig.from_dict(cfg["augment"]), seed=seed)
    val_set = AUHeatmapDataset(cache, val_idx[ctx.rank :: ctx.world], codec, None, seed=seed)

    torch.manual_seed(seed)
    raw = AUHourglass(num_aus=len(codec.aus), **cfg["model"])
    if tcfg.get("init") and not resume:
        _initialise(raw, tcfg["init"], codec.aus)
    if ctx.distributed:  # before the optimizer: the synchronised layers are new parameters
        raw = convert_sync_batchnorm(raw, device)
    optimizer = _optimizer(raw.parameters(), cfg["optim"])
    schedule = _schedule(cfg["schedule"], int(tcfg["epochs"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state_path = out_dir / "train_state.pt"
    start_epoch, best_icc, history = 0, -np.inf, []
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"cannot resume: {state_path} does not exist (start without --resume)")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["config"] != _plain(cfg) and ctx.main:
            log.warning("resuming %s with a configuration that differs from the one it was started with", out_dir)
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _resume_schedule(optimizer, scheduler, state["scheduler"], schedule)
        start_epoch, best_icc, history = int(state["epoch"]), float(state["best_icc"]), list(state["history"])
        if ctx.main:
            log.info("resuming %s after epoch %d", out_dir, start_epoch)
    elif state_path.exists():
        raise FileExistsError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose another train.out_dir"
        )
    elif ctx.main:
        with open(out_dir / "config.yaml", "w") as fh:
            yaml.safe_dump(_plain(cfg), fh, sort_keys=False)

    # channels-last: oneDNN's convolutions run about twice as fast in float32 on CPUs (its
    # BatchNorm sums in another order, so float rounding differs slightly from NCHW's)
    layout = torch.channels_last if tcfg["channels_last"] else torch.contiguous_format
    dtype = _dtype(tcfg["dtype"], precision)
    raw.to(device, dtype=dtype, memory_format=layout)
    _optimizer_to(optimizer, device)
    ema = _ema(raw, float(tcfg["ema"]))
    if ema is not None and resume and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    model: torch.nn.Module = raw
    if ctx.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None
        )
    if tcfg.get("compile"):
        model = torch.compile(model)
    scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
    fg, peak = float(cfg["loss"]["foreground_weight"]), float(cfg["loss"]["peak_weight"])
    split = int(cfg["loss"]["peak_split"])

    writer = _tensorboard(out_dir) if ctx.main else None
    epochs = int(tcfg["epochs"])
    last = epochs if max_epochs is None else min(epochs, start_epoch + max_epochs)
    for epoch in range(start_epoch, last):
        model.train()
        train_set.set_epoch(epoch)
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 100003 + epoch)).numpy()
        # rank r takes every world-th sample: its batches are the r-th slices of the global batches
        order = order[: len(order) - len(order) % ctx.world][ctx.rank :: ctx.world]
        loader = _loader(train_set, batch // ctx.world, tcfg["workers"], order)
        running, seen, t0 = 0.0, 0, time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress, leave=False)
        for item in bar:
            x = item["image"].to(device, dtype=dtype, memory_format=layout)
            with precision.autocast():
                outputs = model(x)
            target, mask = item["heatmaps"].to(device, dtype=dtype), item["mask"].to(device)
            count = _global_count(mask, ctx)
            # intermediate supervision: every stack's maps are compared with the targets
            loss = sum(heatmap_loss(o, target, mask, fg, count, peak, split, au_weight) for o in outputs)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if ema is not None:
                ema.update_parameters(raw)
            running += loss.item() * len(x)
            seen += len(x)
            bar.set_postfix(loss=f"{running / seen:.4g}")
        elapsed = time.perf_counter() - t0
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
        scheduler.step()

        trained = raw if ema is None else ema.module  # what is validated and saved
        val = (
            predict_loader(trained, _loader(val_set, batch, tcfg["workers"], None), codec, precision, device, layout)
            if len(val_idx)
            else None
        )
        row = {
            "epoch": epoch + 1,
            "train_loss": all_mean(running / max(seen, 1), ctx),
            "lr": lr,
            "samples_per_s": all_mean(seen / max(elapsed, 1e-9), ctx) * ctx.world,
            "epoch_s": elapsed,
        }
        if val is not None:
            parts = gather(val, ctx)
            val = {
                k: np.concatenate([p[k] for p in parts]) for k in ("pred", "true", "pred_peaks", "true_centres", "iod")
            }
            val["loss"] = float(np.average([p["loss"] for p in parts], weights=[len(p["pred"]) for p in parts]))
            table = _summary(val, codec)
            row.update(
                val_loss=val["loss"],
                val_icc=table.loc["mean", "icc"],
                val_mae=table.loc["mean", "mae"],
                val_loc_px=table.loc["mean", "loc_px"],
            )
        row = {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
        row["precision"] = precision.name
        history.append(row)
        icc = row.get("val_icc", np.nan)
        improved = bool(np.isfinite(icc) and icc > best_icc)
        if improved:
            best_icc = float(icc)
        if ctx.main:
            _log_epoch(row, writer)
            _save_epoch(out_dir, cfg, raw, trained, ema, optimizer, scheduler, codec, history, best_icc, improved, icc)
        _ = gather(None, ctx)  # nobody runs ahead of the checkpoint
    if writer is not None:
        writer.close()
    return out_dir


def _global_count(mask: torch.Tensor, ctx) -> torch.Tensor:
    """Coded maps in the whole (global) batch, divided by the number of processes."""
    count = mask.float().sum()
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(count)
        count = count / ctx.world
    return count.clamp_min(1.0)


def _initialise(model: AUHourglass, weights: str | list[str], aus: tuple[int, ...]) -> None:
    """Start from a checkpoint's weights (``train.init``: fine-tuning, or a run in stages), or
    from the mean of several checkpoints' (a list: :func:`aumaps.weights.average_weights`).

    The checkpoint must have this configuration's architecture (``model:``), or the same one
    with fewer stacks. Its AUs may differ: the per-AU channels of the output layers (``l{i}``,
    and ``al{i}`` between stacks) are copied for the AUs both have, and AUs it lacks keep
    their fresh initialisation, so a BP4D model can start a DISFA run with AUs 6, 12 and 17
    already learnt.

    A model with more stacks than the checkpoint grows it: every extra hourglass starts as a
    copy of the checkpoint's last one, and the links that feed a stack's output into the next
    (``bl{i}``, ``al{i}``) start at zero, so the deeper model first computes exactly what the
    checkpoint did (every stack's output is the checkpoint's) and training refines from there.
    A wider model (``model.width``) grows it too (:func:`_widened`): the checkpoint's channels
    keep their weights, the new ones start fresh and feed nothing yet, so the wider model also
    first computes what the checkpoint did.
    """
    from .weights import WeightsError, average_weights, load_checkpoint

    ckpt = average_weights(weights) if isinstance(weights, list) else load_checkpoint(weights)
    source, target = _grown(ckpt.model, model.num_stacks, model.config["width"]), model.state_dict()
    shared = [(aus.index(a), tuple(ckpt.aus).index(a)) for a in aus if a in ckpt.aus]
    if not shared:
        raise WeightsError(f"train.init '{weights}' predicts AUs {list(ckpt.aus)}, none of the configured {list(aus)}")
    mine, theirs = (list(index) for index in zip(*shared))
    per_au = {f"l{i}.weight": 0 for i in range(model.num_stacks)} | {f"l{i}.bias": 0 for i in range(model.num_stacks)}
    per_au |= {f"al{i}.weight": 1 for i in range(model.num_stacks - 1)}
    if set(source) != set(target):
        raise WeightsError(
            f"train.init '{weights}' does not fit the configured model (model: section): "
            f"its layers differ ({len(source)} tensors, the model has {len(target)})"
        )
    for key, value in target.items():
        axis = per_au.get(key)
        expected = value.shape if axis is None else value.shape[:axis] + (len(ckpt.aus),) + value.shape[axis + 1 :]
        if source[key].shape != expected:
            raise WeightsError(
                f"train.init '{weights}' does not fit the configured model (model: section): "
                f"{key} is {tuple(source[key].shape)}, expected {tuple(expected)}"
            )
        if axis is None:
            value.copy_(source[key])
        else:
            value.index_copy_(axis, torch.tensor(mine), source[key].index_select(axis, torch.tensor(theirs)))
    model.load_state_dict(target)
    fresh = [a for a in aus if a not in ckpt.aus]
    grown = [
        f"{what} {ckpt.model.config[key]} -> {model.config[key]}"
        for what, key in (("stacks", "num_stacks"), ("width", "width"))
        if model.config[key] > ckpt.model.config[key]
    ]
    log.info(
        "initialised from %s%s%s",
        weights,
        f" (grown: {', '.join(grown)})" if grown else "",
        f" (AUs {fresh} start fresh)" if fresh else "",
    )


def _grown(source: AUHourglass, num_stacks: int, width: int) -> dict[str, torch.Tensor]:
    """``source``'s state dict widened to ``width`` channels (:func:`_widened`) and grown to
    ``num_stacks`` stacks (:func:`_initialise`): unchanged where it has as many or more (the
    layer check then names the difference); else each missing stack is a copy of its last and
    the links into the new stacks are zero. The layers to add are those of the deeper model
    that ``source`` lacks."""
    state, config = dict(source.state_dict()), dict(source.config)
    if width > config["width"]:
        state, config = _widened(state, config, width), {**config, "width": width}
    if num_stacks <= config["num_stacks"]:
        return state
    last = config["num_stacks"] - 1
    deeper = AUHourglass(**{**config, "num_stacks": num_stacks}).state_dict()
    for key in deeper.keys() - state.keys():
        head, _, rest = key.partition(".")
        layer = head.rstrip("0123456789")  # m, top_m_, conv_last, bn_end, l; bl, al link stacks
        links = layer in ("bl", "al")
        state[key] = torch.zeros_like(deeper[key]) if links else state[f"{layer}{last}.{rest}"].clone()
    return state


def _widened(state: dict[str, torch.Tensor], config: dict, width: int) -> dict[str, torch.Tensor]:
    """A state dict of ``config``'s model at ``width`` channels that computes what ``state`` does.

    Every tensor of the wider model holds ``state``'s values in its leading slice. A
    convolution's new output channels (and their biases and BatchNorms) keep a fresh
    initialisation; the weights from new input channels into old output channels are zero, so
    no new channel reaches an old one (sums, poolings and BatchNorm act per channel) and the
    outputs are the narrow model's, while the new channels learn from the first step on. The
    layers of a narrow model that a wider one lacks or shapes otherwise (a stem block that has
    a ``downsample`` at one width and not at the other) come back unchanged for the layer
    check to name.
    """
    wide = AUHourglass(**{**config, "width": width}).state_dict()
    if wide.keys() != state.keys():
        return state
    out = {}
    for key, fresh in wide.items():
        old = state[key]
        if fresh.dim() != old.dim() or any(n < o for n, o in zip(fresh.shape, old.shape)):
            return state
        if fresh.shape == old.shape:
            out[key] = old.clone()
            continue
        value = fresh.clone()
        if value.dim() == 4:  # convolution, out x in x k x k: new inputs feed no old output
            value[: old.shape[0], old.shape[1] :] = 0
        value[tuple(slice(0, n) for n in old.shape)] = old
        out[key] = value
    return out


def _schedule(cfg: dict, epochs: int):
    """The learning-rate factor of each epoch (``schedule:`` in the config).

    ``name: step`` multiplies the rate by ``gamma`` at each of ``milestones`` (epochs);
    ``name: cosine`` anneals it from the base rate to 0 along a half cosine over
    ``train.epochs``. Either starts with ``warmup`` epochs rising linearly to the base rate.
    """
    name = cfg.get("name", "step")
    milestones = sorted(int(m) for m in cfg.get("milestones", []))
    gamma = float(cfg.get("gamma", 0.1))
    warmup = int(cfg.get("warmup", 0))
    if name not in ("step", "cosine"):
        raise ValueError(f"schedule.name must be step or cosine, not {name!r}")

    def factor(epoch: int) -> float:
        ramp = (epoch + 1) / (warmup + 1) if epoch < warmup else 1.0
        if name == "cosine":
            span = max(epochs - warmup, 1)
            return ramp * 0.5 * (1 + math.cos(math.pi * min(max(epoch - warmup, 0), span) / span))
        return ramp * gamma ** bisect.bisect_right(milestones, epoch)

    return factor


def _resume_schedule(optimizer, scheduler, saved: dict, factor) -> None:
    """Continue a run's schedule from its saved state, following the configured schedule.

    Only the epoch count and base rates are taken from the saved scheduler; the rate of the
    next epoch is recomputed from the configuration. With an unchanged config this is what an
    uninterrupted run does, so resuming stays bit-identical; with more epochs and a later decay,
    the result equals a run started with the new config, as long as what changed lies after
    the epoch being resumed.
    """
    scheduler.last_epoch = int(saved["last_epoch"])
    scheduler._step_count = int(saved.get("_step_count", scheduler.last_epoch + 1))
    scheduler.base_lrs = list(saved["base_lrs"])
    lrs = [base * factor(scheduler.last_epoch) for base in scheduler.base_lrs]
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move a (resumed) optimizer's state tensors onto ``device``."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and value.ndim > 0:
                state[key] = value.to(device)


def _log_epoch(row: dict, writer) -> None:
    if writer is not None:
        for key, value in row.items():
            if isinstance(value, float):
                writer.add_scalar(key, value, row["epoch"])
    log.info(
        "epoch %d: %s",
        row["epoch"],
        ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"),
    )


def _save_epoch(
    out_dir: Path,
    cfg: dict,
    raw: torch.nn.Module,
    trained: torch.nn.Module,
    ema,
    optimizer,
    scheduler,
    codec: AUHeatmapCodec,
    history: list[dict],
    best_icc: float,
    improved: bool,
    icc: float,
) -> None:
    """Write model.pt, best.pt (when improved) — the ``trained`` weights (the moving average
    with ``train.ema``) — train_state.pt (everything a resume needs) and metrics.csv, each
    atomically."""
    epoch = history[-1]["epoch"]
    card = {
        **cfg.get("card", {}),
        "config": cfg["name"],
        "epochs_trained": epoch,
        "precision": history[-1]["precision"],
    }
    model_cpu = copy.deepcopy(trained).cpu()
    save_checkpoint(out_dir / "model.pt", model_cpu, aus=codec.aus, codec=codec.to_dict(), card=card)
    if improved or not np.isfinite(icc):
        save_checkpoint(
            out_dir / "best.pt",
            model_cpu,
            aus=codec.aus,
            codec=codec.to_dict(),
            card={**card, "val_icc": None if not np.isfinite(icc) else float(icc)},
        )
    _atomic_save(
        {
            "model": {k: v.cpu() for k, v in raw.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "best_icc": best_icc,
            "ema": None if ema is None else {k: v.cpu() for k, v in ema.state_dict().items()},
            "history": history,
            "config": _plain(cfg),
        },
        out_dir / "train_state.pt",
    )
    _write_history(out_dir / "metrics.csv", history)


def _dtype(name: str, precision) -> torch.dtype:
    """``train.dtype``: the weights' type, ``float32``; or ``float64``, ten times slower, for
    numerical checks where float32 rounding would hide what is compared (such as N processes
    against one), with ``amp: fp32`` only."""
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise ValueError(f"train.dtype must be float32 or float64, not {name!r}")
    if name == "float64" and precision.name != "fp32":
        raise ValueError("train.dtype float64 needs train.amp: fp32 (mixed precision is float32 with float16 parts)")
    return dtypes[name]


def _ema(model: torch.nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights and BatchNorm statistics
    (``train.ema``: the decay per step, e.g. 0.99; 0 for none): validated and saved instead
    of the raw weights, it is steadier from epoch to epoch and usually generalises better."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise ValueError(f"train.ema must lie in (0, 1) (or be 0: none), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _limit(indices: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or len(indices) <= limit:
        return indices
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=int(limit), replace=False))


def _open_cache(cfg: dict) -> CropCache:
    """The configured cache, built (or its interrupted build resumed) from data.manifest if needed."""
    import json

    data = cfg["data"]
    if not data.get("cache"):
        raise ValueError("data.cache is not set: give the preprocessed cache folder (and data.manifest to build it)")
    cache_dir = Path(data["cache"])
    info = cache_dir / "info.json"
    if not info.exists() or not json.loads(info.read_text()).get("complete", False):
        if not data.get("manifest"):
            raise FileNotFoundError(f"no complete cache at {cache_dir} and no data.manifest to build it from")
        from .data.prepare import prepare_manifests

        prepare_manifests(data["manifest"], cache_dir)
    return CropCache(cache_dir)


def _plain(cfg: dict) -> dict:
    """The configuration as plain YAML/JSON types (tuples → lists)."""
    return yaml.safe_load(yaml.safe_dump(cfg))


def _write_history(path: Path, history: list[dict]) -> None:
    """Rewrite the metrics log from the run's history (so a resumed run never duplicates rows)."""
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]
    with atomic_write(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: the CSV log is enough
        return None
    return SummaryWriter(str(out_dir / "tb"))
