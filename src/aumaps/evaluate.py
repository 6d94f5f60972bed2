"""Evaluation reports: metric tables, JSON, Markdown and plots from predictions and labels.

Nothing here knows how the predictions were made: :func:`evaluate_predictions` takes arrays
of predicted and labelled intensities (and, optionally, predicted peaks and labelled AU
centres) and writes

* ``metrics.json``: per-AU and mean metrics, the pair counts and the MAE per true-intensity
  level, as plain numbers (NaN written as ``null``);
* ``metrics.md``: the metrics laid out like the paper's tables (rows = metrics, columns = AUs
  then Avg), followed by the published figures of ``method.md`` §6 beside ours when the AU
  set is one the papers report on (BP4D, DISFA);
* ``scatter.png``: predicted against labelled intensity, one panel per AU;
* ``error_by_intensity.png``: MAE per true-intensity level, one line per AU.

:func:`robustness_table` summarises the misalignment study (metrics against the landmark
noise added before registration). Figures are drawn on matplotlib's Agg canvas, without
pyplot, so reports can be written from any thread or headless machine.

Shapes: N samples, A AUs, C centres per AU (NaN padded), coordinates (x, y) in crop pixels.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .aus import AU_SETS, MAX_INTENSITY, get_au, resolve_aus
from .calibrate import MapCalibration, fit_map_calibration
from .codec import AUHeatmapCodec
from .geometry import interocular_distance
from .hardware import Precision, resolve_precision
from .loss import heatmap_loss
from .metrics import au_metrics, mae_by_intensity
from .visualise import au_colour

__all__ = [
    "calibrate_checkpoint",
    "PublishedResult",
    "PUBLISHED",
    "evaluate_predictions",
    "robustness_table",
    "predict_cache",
    "predict_loader",
    "evaluate_checkpoint",
    "robustness_study",
]

log = logging.getLogger(__name__)

#: Rows of the Markdown table: (label, column of :func:`aumaps.metrics.au_metrics`, format).
_MD_ROWS: tuple[tuple[str, str, str], ...] = (
    ("ICC(3,1)", "icc", ".2f"),
    ("Pearson r", "pearson", ".2f"),
    ("MAE", "mae", ".2f"),
    ("RMSE", "rmse", ".2f"),
    ("F1 (I ≥ 1)", "f1", ".2f"),
    ("Loc. error (map px)", "loc_px", ".2f"),
    ("Loc. error (% IOD)", "loc_iod_pct", ".1f"),
    ("N", "n", ".0f"),
)

#: Integer intensity levels of the FACS scale, the bins of ``error_by_intensity.png``.
_LEVELS = tuple(range(int(MAX_INTENSITY) + 1))

#: Most points drawn per scatter panel; beyond it a fixed-seed random subset is drawn.
_SCATTER_MAX_POINTS = 20000


@dataclass(frozen=True)
class PublishedResult:
    """One published line of ICC(3,1) figures (``method.md`` §6).

    Attributes:
        source: the paper, as shown in the table.
        per_au: ICC per AU number (AUs the paper's line does not give are absent).
        mean: the published mean over the data set's AUs, or None.
        per_au_verified: False where the per-AU values are recalled, not checked against the
            paper; they are then marked in the table.
    """

    source: str
    per_au: Mapping[int, float]
    mean: float | None
    per_au_verified: bool = True


#: Published ICC(3,1) figures by AU set name (``method.md`` §6).
PUBLISHED: dict[str, tuple[PublishedResult, ...]] = {
    "bp4d": (
        PublishedResult(
            "BMVC 2018 (1 hourglass)",
            {6: 0.79, 10: 0.80, 12: 0.86, 14: 0.54, 17: 0.43},
            0.68,
            per_au_verified=False,
        ),
        PublishedResult("TAFFC 2021", {6: 0.82}, None),
    ),
    "disfa": (PublishedResult("TAFFC 2021", {}, 0.57),),
}


#: The evaluation protocol behind each set's published figures (``method.md`` §5).
_PROTOCOLS: dict[str, str] = {
    "bp4d": "BP4D, FERA 2015 training subjects for training, its development subjects for testing",
    "disfa": "DISFA, subject-independent folds, usually 3",
}


def _plain(x: float) -> float | None:
    """A JSON-able float: NaN and ±inf become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "–"


def _rgb(au: int) -> tuple[float, float, float]:
    """The AU's colour of :func:`aumaps.visualise.au_colour` as matplotlib's 0–1 RGB."""
    r, g, b = au_colour(au)
    return r / 255, g / 255, b / 255


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _set_name(aus: Sequence[int]) -> str | None:
    """The name of the published AU set ``aus`` equals (any order), if any."""
    for name in PUBLISHED:
        if set(aus) == set(AU_SETS[name]):
            return name
    return None


def _metrics_markdown(table: pd.DataFrame, aus: Sequence[int], title: str, n_samples: int, loc_min: float) -> str:
    labels = [get_au(a).label for a in aus]
    header = ["Metric", *labels, "Avg"]
    rows = [
        [name, *(_fmt(table.loc[lab, col], spec) for lab in labels), _fmt(table.loc["mean", col], spec)]
        for name, col, spec in _MD_ROWS
    ]
    lines = [f"# {title or 'AU intensity evaluation'}", "", f"{n_samples} samples.", ""]
    lines += _md_table(header, rows)
    lines += [
        "",
        "ICC(3,1): consistency, two-way mixed, single rater (FERA 2015). F1: occurrence at "
        "intensity ≥ 1. Localisation: distance from each labelled AU centre to the nearest "
        f"predicted peak, where the AU is labelled at intensity ≥ {loc_min:g}. "
        "Avg: mean over AUs, undefined (–) entries left out.",
    ]
    set_name = _set_name(aus)
    if set_name is not None:
        comp_rows = [
            ["ours", *(_fmt(table.loc[lab, "icc"], ".2f") for lab in labels), _fmt(table.loc["mean", "icc"], ".2f")]
        ]
        for pub in PUBLISHED[set_name]:
            mark = "" if pub.per_au_verified else "†"
            cells = [f"{pub.per_au[a]:.2f}{mark}" if a in pub.per_au else "–" for a in aus]
            comp_rows.append([pub.source, *cells, "–" if pub.mean is None else f"{pub.mean:.2f}"])
        lines += ["", f"## ICC(3,1) beside published results ({set_name.upper()})", ""]
        lines += _md_table(["Method", *labels, "Avg"], comp_rows)
        lines += [""]
        if any(not pub.per_au_verified for pub in PUBLISHED[set_name]):
            lines += ["† per-AU value recalled from the paper, unverified; means are as published.", ""]
        lines += [
            f"The published figures come from the papers' own protocol ({_PROTOCOLS[set_name]}); "
            "they compare with ours only when the same protocol was used.",
        ]
    return "\n".join(lines) + "\n"


def _new_figure(n_panels: int, panel_size: float = 3.0) -> tuple[Figure, np.ndarray]:
    cols = min(n_panels, 4)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(panel_size * cols, panel_size * rows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _plot_scatter(
    pred: np.ndarray, true: np.ndarray, aus: Sequence[int], table: pd.DataFrame, title: str, path: Path
) -> None:
    """``pred``/``true`` ``(N, A)``, uncoded labels NaN; jitter where the labels are integers."""
    rng = np.random.default_rng(0)
    fig, axes = _new_figure(len(aus))
    lim = (-0.5, MAX_INTENSITY + 0.5)
    for j, (au, ax) in enumerate(zip(aus, axes)):
        keep = ~(np.isnan(pred[:, j]) | np.isnan(true[:, j]))
        x, y = true[keep, j], pred[keep, j]
        if x.size > _SCATTER_MAX_POINTS:
            pick = rng.choice(x.size, _SCATTER_MAX_POINTS, replace=False)
            x, y = x[pick], y[pick]
        if x.size and np.all(x == np.round(x)):
            x = x + rng.uniform(-0.2, 0.2, x.size)
        label = get_au(au).label
        ax.scatter(x, y, s=6, alpha=0.6, color=_rgb(au), edgecolors="none", rasterized=True)
        ax.plot(lim, lim, color="black", lw=0.8, ls="--")
        ax.set(xlim=lim, ylim=lim, aspect="equal", xlabel="labelled intensity", ylabel="predicted intensity")
        icc, err = _fmt(table.loc[label, "icc"], ".2f"), _fmt(table.loc[label, "mae"], ".2f")
        ax.set_title(f"{label}  ICC {icc}  MAE {err}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _plot_error_by_intensity(by_level: Mapping[int, np.ndarray], title: str, path: Path) -> None:
    """``by_level``: AU number → ``(L,)`` MAE per level of :data:`_LEVELS`."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for au, values in by_level.items():
        ax.plot(_LEVELS, values, marker="o", label=get_au(au).label, color=_rgb(au))
    ax.set(xlabel="labelled intensity", ylabel="MAE", xticks=_LEVELS, title=title or "MAE by labelled intensity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    fig.savefig(path, dpi=100)


def evaluate_predictions(
    pred: np.ndarray,
    true: np.ndarray,
    aus: str | Sequence[int],
    mask: np.ndarray | None = None,
    pred_peaks: np.ndarray | None = None,
    true_centres: np.ndarray | None = None,
    iod: np.ndarray | None = None,
    out_dir: str | Path | None = None,
    title: str = "",
    true_intensity_for_loc_min: float = 1.0,
) -> dict:
    """Score predictions against labels and, with ``out_dir``, write the report files.

    Args:
        pred: ``(N, A)`` predicted intensities (NaN = no prediction).
        true: ``(N, A)`` labelled intensities (NaN = not coded).
        aus: the A AU numbers in column order, or a set name (``"bp4d"``).
        mask: ``(N, A)`` bool, True where the label is coded (None: every non-NaN label).
        pred_peaks: ``(N, A, Cp, 2)`` predicted peaks in crop pixels, NaN padded.
        true_centres: ``(N, A, Ct, 2)`` labelled AU centres in crop pixels, NaN padded.
        iod: ``(N,)`` inter-ocular distance in crop pixels.
        out_dir: folder for ``metrics.json``, ``metrics.md``, ``scatter.png`` and
            ``error_by_intensity.png`` (created if needed); None writes nothing.
        title: heading of the Markdown report and the plots.
        true_intensity_for_loc_min: localisation is scored where the label is at least this.

    Returns:
        The content of ``metrics.json`` — ``title``, ``aus``, ``n_samples``, ``counts``
        (label → pairs used), ``per_au`` (label → metric → value), ``mean`` (metric → value),
        ``mae_by_intensity`` (label → level → MAE) and ``loc_min_intensity`` — plus
        ``table``, the :func:`aumaps.metrics.au_metrics` DataFrame, and ``files``, the written
        paths by name (empty without ``out_dir``).
    """
    aus = resolve_aus(aus)
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    table = au_metrics(
        p,
        t,
        mask=mask,
        aus=aus,
        pred_peaks=pred_peaks,
        true_centres=true_centres,
        true_intensity_for_loc_min=true_intensity_for_loc_min,
        iod=iod,
    )
    if mask is not None:
        t = np.where(np.asarray(mask, dtype=bool), t, np.nan)
    labels = [get_au(a).label for a in aus]
    by_level = {a: mae_by_intensity(p[:, j], t[:, j], _LEVELS) for j, a in enumerate(aus)}

    def metric_dict(label: str) -> dict:
        values = {col: _plain(table.loc[label, col]) for col in table.columns}
        if label != "mean":
            values["n"] = int(table.loc[label, "n"])
        return values

    report = {
        "title": title,
        "aus": list(aus),
        "n_samples": int(p.shape[0]),
        "counts": {lab: int(table.loc[lab, "n"]) for lab in labels},
        "per_au": {lab: metric_dict(lab) for lab in labels},
        "mean": metric_dict("mean"),
        "mae_by_intensity": {
            get_au(a).label: {str(level): _plain(v) for level, v in zip(_LEVELS, by_level[a])} for a in aus
        },
        "loc_min_intensity": float(true_intensity_for_loc_min),
    }
    files: dict[str, Path] = {}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "metrics.json": out / "metrics.json",
            "metrics.md": out / "metrics.md",
            "scatter.png": out / "scatter.png",
            "error_by_intensity.png": out / "error_by_intensity.png",
        }
        _write_json(files["metrics.json"], report)
        markdown = _metrics_markdown(table, aus, title, p.shape[0], true_intensity_for_loc_min)
        files["metrics.md"].write_text(markdown, encoding="utf-8")
        _plot_scatter(p, t, aus, table, title, files["scatter.png"])
        _plot_error_by_intensity(by_level, title, files["error_by_intensity.png"])
    return {**report, "table": table, "files": files}


def robustness_table(results: Mapping[float, pd.DataFrame], out_dir: str | Path) -> pd.DataFrame:
    """Summarise the misalignment study: ICC and MAE against the registration noise.

    Args:
        results: noise level (standard deviation of the landmark noise, % of the inter-ocular
            distance) → the :func:`aumaps.metrics.au_metrics` table at that level; all tables
            must have the same rows (AUs and ``mean``).
        out_dir: folder for ``robustness.json``, ``robustness.md`` and ``robustness.png``
            (created if needed).

    Returns:
        A DataFrame indexed by noise level (ascending, named ``noise_iod_pct``) with
        two-level columns (metric ``icc``/``mae``, row label ``AU06``, ..., ``mean``).
    """
    if not results:
        raise ValueError("robustness_table needs at least one noise level")
    levels = sorted(results)
    labels = list(results[levels[0]].index)
    for level in levels:
        if list(results[level].index) != labels:
            raise ValueError(f"the table at noise {level} has rows {list(results[level].index)}, expected {labels}")
    metrics = ("icc", "mae")
    columns = pd.MultiIndex.from_product([metrics, labels], names=["metric", "au"])
    table = pd.DataFrame(
        [[results[level].loc[lab, m] for m, lab in columns] for level in levels],
        index=pd.Index([float(v) for v in levels], name="noise_iod_pct"),
        columns=columns,
        dtype=float,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "noise_iod_pct": list(table.index),
        **{m: {lab: [_plain(v) for v in table[(m, lab)]] for lab in labels} for m in metrics},
    }
    _write_json(out / "robustness.json", report)

    au_labels = [lab for lab in labels if lab != "mean"]
    lines = [
        "# Robustness to misalignment",
        "",
        "Landmark noise (standard deviation, % of the inter-ocular distance) added before registration.",
        "",
    ]
    lines += _md_table(
        ["Noise (% IOD)", "ICC (mean)", "MAE (mean)"],
        [
            [f"{v:g}", _fmt(table.loc[v, ("icc", "mean")], ".3f"), _fmt(table.loc[v, ("mae", "mean")], ".3f")]
            for v in table.index
        ],
    )
    for m, name in (("icc", "ICC(3,1)"), ("mae", "MAE")):
        lines += ["", f"## {name} per AU", ""]
        lines += _md_table(
            ["Noise (% IOD)", *au_labels, "Avg"],
            [[f"{v:g}", *(_fmt(table.loc[v, (m, lab)], ".2f") for lab in [*au_labels, "mean"])] for v in table.index],
        )
    (out / "robustness.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (m, name) in zip(fig.subplots(1, 2), (("icc", "ICC(3,1)"), ("mae", "MAE"))):
        for lab in au_labels:
            ax.plot(table.index, table[(m, lab)], marker="o", ms=3, lw=1, color=_rgb(resolve_aus(lab)[0]), label=lab)
        ax.plot(table.index, table[(m, "mean")], marker="o", lw=2.5, color="black", label="mean")
        ax.set(xlabel="landmark noise (% IOD)", ylabel=name, title=f"{name} against misalignment")
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    fig.savefig(out / "robustness.png", dpi=100)
    return table


# -- running a checkpoint over a preprocessed data set -------------------------------------


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader: Iterable[dict],
    codec: AUHeatmapCodec,
    amp: str | Precision,
    device: torch.device,
    layout: torch.memory_format = torch.channels_last,
) -> dict:
    """Loss and predictions of ``model`` over ``loader`` (validation during training, and
    evaluation).

    ``amp`` is a :class:`~aumaps.hardware.Precision` or a name for
    :func:`~aumaps.hardware.resolve_precision` (``"auto"``: what this machine computes fast).

    Returns a dict with ``loss``, ``pred`` (N, A), ``true`` (N, A; NaN = not coded),
    ``pred_peaks`` (N, A, C, 2) and ``true_centres`` (N, A, C, 2) in crop pixels, and
    ``iod`` (N,) in crop pixels. Intensities and peaks are the codec's readout (its flip
    test and calibration when it carries them), as in prediction; the loss is on the
    uncalibrated maps.
    """

    precision = amp if isinstance(amp, Precision) else resolve_precision(amp, device)
    model.eval()
    total, count = 0.0, 0
    pred, true, peaks, true_c, iod = [], [], [], [], []
    for batch in loader:
        x = batch["image"].to(device, dtype=next(model.parameters()).dtype, memory_format=layout)

        def run(t: torch.Tensor, size: int = len(x)) -> torch.Tensor:
            # the readout's mirrored and moved crops come back in the network's layout, a
            # batch's worth at a time (ten readings of a batch in one call: 4x slower per crop)
            return torch.cat([model(c.contiguous(memory_format=layout))[-1].float() for c in t.split(size)])

        with precision.autocast():
            out = codec.network_maps(run, x, width_axis=3)
        out = out.float().cpu()
        n = len(x)
        total += heatmap_loss(out, batch["heatmaps"], batch["mask"]).item() * n
        count += n
        _, dec = codec.read(out)
        pred.append(dec.intensities)
        no_peak = np.isnan(dec.peaks[:, :, 0, 0])
        dec.peaks[:, :, 0][no_peak] = dec.argmax[no_peak]  # a weak map still has a location
        peaks.append(dec.peaks)
        true.append(batch["intensities"].numpy().astype(np.float64))
        lms = batch["landmarks"].numpy().astype(np.float64)
        true_c.append(codec.centres_in_map(lms) * codec.stride)
        iod.append(interocular_distance(lms))
    return {
        "loss": total / max(count, 1),
        "pred": np.concatenate(pred),
        "true": np.concatenate(true),
        "pred_peaks": np.concatenate(peaks),
        "true_centres": np.concatenate(true_c),
        "iod": np.concatenate(iod),
    }


def predict_cache(
    weights,
    cache,
    split: str | None = "test",
    noise_iod: float = 0.0,
    seed: int = 0,
    batch_size: int = 32,
    amp: str = "auto",
    device: str = "cpu",
) -> dict:
    """Run a checkpoint over a crop cache's split, optionally misaligning the registration.

    Args:
        weights: a :class:`~aumaps.weights.Checkpoint` or anything ``load_checkpoint`` takes.
        cache: a :class:`~aumaps.data.cache.CropCache` or its folder.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (all valid rows).
        noise_iod: σ of Gaussian noise added to the landmarks before registration, in % of
            the inter-ocular distance (the paper's misalignment study); labels keep the true
            landmarks.
        amp: the network's precision (:func:`aumaps.hardware.resolve_precision`): ``"auto"``
            is bfloat16 where this machine computes it natively, float32 elsewhere.

    Returns:
        The :func:`predict_loader` dict (``pred``, ``true``, ``pred_peaks``,
        ``true_centres`` in crop pixels, ``iod``) plus ``aus``.
    """
    import torch

    from .data.augment import AugmentConfig
    from .data.cache import CropCache
    from .data.dataset import AUHeatmapDataset
    from .weights import Checkpoint, load_checkpoint

    ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    cache = cache if isinstance(cache, CropCache) else CropCache(cache)
    codec = ckpt.codec
    aug = None
    if noise_iod > 0:
        aug = AugmentConfig(
            rotation=0, scale=0, translation=0, flip=0, landmark_noise=noise_iod / 100.0, colour=0, grayscale=0
        )
    dataset = AUHeatmapDataset(cache, cache.indices(split), codec, aug, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out = predict_loader(ckpt.model.to(device), loader, codec, amp, torch.device(device))
    out["aus"] = codec.aus
    return out


def evaluate_checkpoint(
    weights, cache, split: str | None = "test", out_dir: str | Path | None = None, title: str = "", **kwargs
) -> dict:
    """:func:`predict_cache` then :func:`evaluate_predictions` (JSON, Markdown table, plots)."""
    res = predict_cache(weights, cache, split, **kwargs)
    return evaluate_predictions(
        res["pred"],
        res["true"],
        res["aus"],
        mask=np.isfinite(res["true"]),
        pred_peaks=res["pred_peaks"],
        true_centres=res["true_centres"],
        iod=res["iod"],
        out_dir=out_dir,
        title=title,
    )


def robustness_study(
    weights,
    cache,
    noise_levels: Sequence[float] = (0, 2.5, 5, 7.5, 10),
    split: str | None = "test",
    out_dir: str | Path | None = None,
    seed: int = 0,
    **kwargs,
) -> pd.DataFrame:
    """The paper's misalignment study: metrics against landmark noise (% IOD) before registration."""
    from .weights import Checkpoint, load_checkpoint

    ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    results = {}
    for level in noise_levels:
        res = predict_cache(ckpt, cache, split, noise_iod=float(level), seed=seed, **kwargs)
        results[float(level)] = au_metrics(
            res["pred"],
            res["true"],
            mask=np.isfinite(res["true"]),
            aus=res["aus"],
            pred_peaks=res["pred_peaks"],
            true_centres=res["true_centres"],
            iod=res["iod"],
        )
    return robustness_table(results, out_dir) if out_dir is not None else pd.concat(results, names=["noise_iod_pct"])


def calibrate_checkpoint(
    weights: str | os.PathLike[str],
    cache: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: str = "val",
    amp: str = "fp32",
    batch_size: int = 32,
    flip_test: bool | None = None,
    shift_test: bool | None = None,
) -> tuple[Path, MapCalibration, dict[str, float]]:
    """Fit a :class:`MapCalibration` for ``weights`` on ``split`` of a crop cache and write a
    copy of the checkpoint that carries it (``out``; the network's weights are unchanged).

    A calibration already in ``weights`` is set aside first: the fit is always on the
    network's own maps. The card gains a ``calibration`` entry saying where it was fitted.

    Args:
        flip_test: read each face with its mirror image (the codec's ``flip_test``) in the
            fit and from then on; ``None`` keeps what ``weights`` says.
        shift_test: read each face over small moves of its crop too (the codec's
            ``shift_test``), likewise.

    Returns:
        The path written, the calibration, and the fit's figures
        (:func:`~aumaps.calibrate.fit_map_calibration`) with ``flip_test`` and ``shift_test``.

    Raises:
        ValueError: ``split`` is ``"test"`` (a model is not calibrated on the faces it is
            evaluated on) or has no rows.
    """
    from .weights import load_checkpoint, save_checkpoint

    if split == "test":
        raise ValueError("calibrate: fit on a validation (or training) split, never on the test split")
    ckpt = load_checkpoint(weights)
    ckpt.codec.calibration = None
    if flip_test is not None:
        ckpt.codec.flip_test = bool(flip_test)
    if shift_test is not None:
        ckpt.codec.shift_test = bool(shift_test)
    res = predict_cache(ckpt, cache, split, amp=amp, batch_size=batch_size)
    if len(res["pred"]) == 0:
        raise ValueError(f"calibrate: {cache} has no rows in split {split!r}")
    where = f"{len(res['pred'])} faces of {Path(cache).as_posix()} ({split} split)"
    cal, stats = fit_map_calibration(res["pred"], res["true"], fitted_on=where)
    log.info(
        "calibration gain %.2f threshold %.2f: ICC %.3f -> %.3f, MAE %.3f -> %.3f on %s",
        cal.gain,
        cal.threshold,
        stats["icc_before"],
        stats["icc_after"],
        stats["mae_before"],
        stats["mae_after"],
        where,
    )
    stats["flip_test"], stats["shift_test"] = ckpt.codec.flip_test, ckpt.codec.shift_test
    ckpt.codec.calibration = cal
    card = dict(ckpt.card)
    readings = [
        "its mirror image's (flip test)" if ckpt.codec.flip_test else "",
        "its crop's moved one map pixel right, left, down and up (shift test)" if ckpt.codec.shift_test else "",
    ]
    readings = " and ".join(r for r in readings if r)
    card["calibration"] = (
        (f"the mean of each face's maps and {readings}, " if readings else "") + "maps calibrated by "
        f"f(m) = {cal.gain:g}·softplus({cal.softness:g}·(m − {cal.threshold:g}))/{cal.softness:g}, "
        f"fitted on {where}: ICC {stats['icc_before']:.3f} -> {stats['icc_after']:.3f}, "
        f"MAE {stats['mae_before']:.3f} -> {stats['mae_after']:.3f} there"
    )
    path = save_checkpoint(out, ckpt.model, ckpt.aus, ckpt.codec, card)
    return path, cal, stats
