"""Evaluation metrics for AU intensity estimation and AU localisation (pure NumPy).

Intensity: ICC(3,1), the FERA 2015 intensity measure (``method.md`` §5), Pearson's r, MAE,
RMSE and the F1 of occurrence (intensity ≥ a threshold). Localisation: the distance from each
labelled AU centre to the nearest predicted heatmap peak, in heatmap pixels or in % of the
inter-ocular distance. :func:`au_metrics` gathers all of them in one table, one row per AU
plus the mean over AUs that papers report.

Conventions shared by every paired metric (``pred``, ``true`` of shape ``(N,)``, N samples):

* NaN-safe: a pair where either value is NaN is dropped, so NaN can stand for "not coded" or
  "no prediction"; an uncoded label is never read as 0.
* Undefined is NaN, never an exception: with fewer than 2 pairs (ICC, Pearson), no pairs
  (MAE, RMSE) or no positives at all (F1) the result is NaN. :func:`au_metrics` leaves NaN
  entries out of its mean row.

Shapes: N samples, A AUs, C centres per AU (NaN padded); coordinates are (x, y).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .aus import get_au, resolve_aus

__all__ = [
    "METRIC_COLUMNS",
    "icc31",
    "pearson",
    "mae",
    "rmse",
    "f1_occurrence",
    "mae_by_intensity",
    "localisation_error",
    "au_metrics",
]

#: Columns of :func:`au_metrics`, in order.
METRIC_COLUMNS: tuple[str, ...] = ("icc", "pearson", "mae", "rmse", "f1", "n", "loc_px", "loc_iod_pct")


def _paired(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(M,)`` float64 pairs of two ``(N,)`` arrays where neither value is NaN."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"pred and true must be 1-D arrays of one length, got {p.shape} and {t.shape}")
    keep = ~(np.isnan(p) | np.isnan(t))
    return p[keep], t[keep]


def _is_constant(x: np.ndarray) -> bool:
    return bool(x.max() == x.min())


def icc31(pred: np.ndarray, true: np.ndarray) -> float:
    """ICC(3,1) between predictions and labels: consistency, two-way mixed, single rater.

    With the N pairs as targets and {prediction, label} as k = 2 fixed raters, the two-way
    ANOVA gives ICC(3,1) = (MS_rows − MS_err) / (MS_rows + (k − 1)·MS_err) (Shrout & Fleiss
    1979, case 3). For k = 2 this reduces to the closed form used here,

        ICC(3,1) = 2·s_pt / (s_pp + s_tt),

    with s the sums of centred cross-products, so a constant offset between prediction and
    label does not lower it (consistency, not absolute agreement).

    Args:
        pred: ``(N,)`` predicted intensities (NaN pairs dropped).
        true: ``(N,)`` labelled intensities (NaN pairs dropped).

    Returns:
        The ICC. NaN with fewer than 2 pairs or when both inputs are constant (the ANOVA has
        no variance to split); 0.0 when exactly one of them is constant (MS_rows = MS_err,
        as the ANOVA formula gives).
    """
    p, t = _paired(pred, true)
    if p.size < 2:
        return float("nan")
    const_p, const_t = _is_constant(p), _is_constant(t)
    if const_p and const_t:
        return float("nan")
    if const_p or const_t:
        return 0.0
    dp, dt = p - p.mean(), t - t.mean()
    return float(2.0 * (dp @ dt) / (dp @ dp + dt @ dt))


def pearson(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson's correlation coefficient of ``(N,)`` predictions and labels.

    NaN with fewer than 2 pairs or when either input is constant.
    """
    p, t = _paired(pred, true)
    if p.size < 2 or _is_constant(p) or _is_constant(t):
        return float("nan")
    dp, dt = p - p.mean(), t - t.mean()
    return float((dp @ dt) / np.sqrt((dp @ dp) * (dt @ dt)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error of ``(N,)`` predictions and labels (NaN without pairs)."""
    p, t = _paired(pred, true)
    return float(np.abs(p - t).mean()) if p.size else float("nan")


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error of ``(N,)`` predictions and labels (NaN without pairs)."""
    p, t = _paired(pred, true)
    return float(np.sqrt(np.square(p - t).mean())) if p.size else float("nan")


def f1_occurrence(pred: np.ndarray, true: np.ndarray, threshold: float = 1.0) -> float:
    """F1 of the positive class, an AU occurring where its intensity is ≥ ``threshold``.

    F1 = 2·TP / (2·TP + FP + FN) over the ``(N,)`` pairs. When neither the labels nor the
    predictions hold a positive (TP = FP = FN = 0) F1 is undefined and NaN is returned; with
    no positive label but some positive prediction it is 0.
    """
    p, t = _paired(pred, true)
    pos_p, pos_t = p >= threshold, t >= threshold
    tp = int(np.sum(pos_p & pos_t))
    fp = int(np.sum(pos_p & ~pos_t))
    fn = int(np.sum(~pos_p & pos_t))
    if tp + fp + fn == 0:
        return float("nan")
    return 2.0 * tp / (2.0 * tp + fp + fn)


def mae_by_intensity(pred: np.ndarray, true: np.ndarray, levels: Sequence[int] = range(6)) -> np.ndarray:
    """MAE within each true-intensity level.

    Args:
        pred: ``(N,)`` predicted intensities (NaN pairs dropped).
        true: ``(N,)`` labelled intensities; a continuous label counts at its nearest
            integer level (halves round up).
        levels: the L integer levels to report.

    Returns:
        ``(L,)`` MAE per level, NaN for a level without labels.
    """
    p, t = _paired(pred, true)
    level_of = np.floor(t + 0.5)
    out = np.full(len(levels), np.nan)
    for i, level in enumerate(levels):
        sel = level_of == level
        if sel.any():
            out[i] = np.abs(p[sel] - t[sel]).mean()
    return out


def localisation_error(
    pred_peaks: np.ndarray,
    true_centres: np.ndarray,
    iod: np.ndarray | None = None,
    stride: float = 4.0,
) -> np.ndarray:
    """Distance from every labelled AU centre to the nearest predicted peak.

    Each true centre is matched to its nearest predicted peak of the same sample, so the order
    of peaks and centres does not matter (two centres may share one peak). The caller chooses
    the samples (e.g. only those where the AU is labelled at intensity ≥ 1).

    Args:
        pred_peaks: ``(N, Cp, 2)`` predicted peaks in crop pixels, NaN padded.
        true_centres: ``(N, Ct, 2)`` labelled centres in crop pixels, NaN padded.
        iod: ``(N,)`` inter-ocular distance (outer eye corners 36–45) in crop pixels, or None.
        stride: crop pixels per heatmap pixel (4 for a 256 crop and a 64 map).

    Returns:
        ``(N, Ct)`` errors: in heatmap pixels (crop distance / ``stride``) when ``iod`` is
        None, in % of the inter-ocular distance otherwise. NaN where the centre is padding or
        the sample has no predicted peak at all.
    """
    peaks = np.asarray(pred_peaks, dtype=np.float64)
    ctrs = np.asarray(true_centres, dtype=np.float64)
    if peaks.ndim != 3 or ctrs.ndim != 3 or peaks.shape[-1] != 2 or ctrs.shape[-1] != 2:
        raise ValueError(f"pred_peaks and true_centres must be (N, C, 2), got {peaks.shape} and {ctrs.shape}")
    if peaks.shape[0] != ctrs.shape[0] or peaks.shape[1] == 0:
        raise ValueError(f"pred_peaks {peaks.shape} and true_centres {ctrs.shape} need the same N and C ≥ 1 peaks")
    diff = ctrs[:, :, None, :] - peaks[:, None, :, :]  # (N, Ct, Cp, 2)
    dist = np.fmin.reduce(np.hypot(diff[..., 0], diff[..., 1]), axis=-1)  # NaN only if all are
    if iod is None:
        return dist / stride
    scale = np.asarray(iod, dtype=np.float64)
    if scale.shape != (ctrs.shape[0],):
        raise ValueError(f"iod must have shape ({ctrs.shape[0]},), got {scale.shape}")
    return 100.0 * dist / scale[:, None]


def _finite_mean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else float("nan")


def au_metrics(
    pred: np.ndarray,
    true: np.ndarray,
    mask: np.ndarray | None = None,
    aus: str | Sequence[int] = "bp4d",
    pred_peaks: np.ndarray | None = None,
    true_centres: np.ndarray | None = None,
    true_intensity_for_loc_min: float = 1.0,
    iod: np.ndarray | None = None,
    stride: float = 4.0,
) -> pd.DataFrame:
    """All metrics, one row per AU plus their mean.

    Args:
        pred: ``(N, A)`` predicted intensities (NaN = no prediction; such pairs are dropped).
        true: ``(N, A)`` labelled intensities (NaN = not coded).
        mask: ``(N, A)`` bool, True where the label is coded; False entries are excluded
            whatever value ``true`` holds there. None: every non-NaN label is coded.
        aus: the A AU numbers in column order, or a set name (``"bp4d"``).
        pred_peaks: ``(N, A, Cp, 2)`` predicted peaks in crop pixels (NaN padded), e.g.
            ``AUHeatmapCodec.decode(maps).peaks``.
        true_centres: ``(N, A, Ct, 2)`` labelled AU centres in crop pixels (NaN padded).
        true_intensity_for_loc_min: localisation is scored only where the coded label is at
            least this (an absent AU has no location).
        iod: ``(N,)`` inter-ocular distance in crop pixels, for ``loc_iod_pct``.
        stride: crop pixels per heatmap pixel, for ``loc_px``.

    Returns:
        A DataFrame indexed ``AU06``, ``AU10``, ..., ``mean`` with :data:`METRIC_COLUMNS`:
        ``icc`` ICC(3,1), ``pearson``, ``mae``, ``rmse``, ``f1`` (occurrence at intensity ≥ 1),
        ``n`` pairs used, ``loc_px`` mean localisation error in heatmap pixels and
        ``loc_iod_pct`` in % IOD (NaN where peaks/centres/iod were not given or no label
        reaches ``true_intensity_for_loc_min``). The ``mean`` row is the column mean over the
        AU rows, NaN entries left out.
    """
    aus = resolve_aus(aus)
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    n, a = p.shape[0], len(aus)
    if p.shape != (n, a) or t.shape != (n, a):
        raise ValueError(f"pred and true must be (N, {a}) for AUs {list(aus)}, got {p.shape} and {t.shape}")
    coded = ~np.isnan(t)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (n, a):
            raise ValueError(f"mask must be (N, A) = {(n, a)}, got {m.shape}")
        coded &= m
    t = np.where(coded, t, np.nan)
    if (pred_peaks is None) != (true_centres is None):
        raise ValueError("pass both pred_peaks and true_centres, or neither")
    locate = pred_peaks is not None
    if locate:
        peaks = np.asarray(pred_peaks, dtype=np.float64)
        ctrs = np.asarray(true_centres, dtype=np.float64)
        if peaks.shape[:2] != (n, a) or ctrs.shape[:2] != (n, a):
            raise ValueError(
                f"pred_peaks and true_centres must start with (N, A) = {(n, a)}, got {peaks.shape} and {ctrs.shape}"
            )
    scale = None if iod is None else np.asarray(iod, dtype=np.float64)

    rows = {}
    for j, au in enumerate(aus):
        pj, tj = p[:, j], t[:, j]
        row = {
            "icc": icc31(pj, tj),
            "pearson": pearson(pj, tj),
            "mae": mae(pj, tj),
            "rmse": rmse(pj, tj),
            "f1": f1_occurrence(pj, tj),
            "n": int(np.sum(~np.isnan(pj) & coded[:, j])),
            "loc_px": float("nan"),
            "loc_iod_pct": float("nan"),
        }
        if locate:
            sel = coded[:, j] & (np.nan_to_num(tj, nan=-np.inf) >= true_intensity_for_loc_min)
            if sel.any():
                row["loc_px"] = _finite_mean(localisation_error(peaks[sel, j], ctrs[sel, j], stride=stride))
                if scale is not None:
                    row["loc_iod_pct"] = _finite_mean(
                        localisation_error(peaks[sel, j], ctrs[sel, j], iod=scale[sel], stride=stride)
                    )
        rows[get_au(au).label] = row
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(METRIC_COLUMNS)).astype(float)
    table.loc["mean"] = table.mean(axis=0, skipna=True)
    return table
