"""Metrics (ICC(3,1), Pearson, MAE, RMSE, F1, localisation) and the evaluation reports."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pingouin
import pytest
from matplotlib import image as mpimg

from aumaps.evaluate import evaluate_predictions, robustness_table
from aumaps.metrics import (
    METRIC_COLUMNS,
    au_metrics,
    f1_occurrence,
    icc31,
    localisation_error,
    mae,
    mae_by_intensity,
    pearson,
    rmse,
)

BP4D_LABELS = ["AU06", "AU10", "AU12", "AU14", "AU17"]


def _pingouin_icc3(pred: np.ndarray, true: np.ndarray) -> float:
    n = len(pred)
    long = pd.DataFrame(
        {
            "sample": np.r_[np.arange(n), np.arange(n)],
            "rater": ["pred"] * n + ["true"] * n,
            "score": np.r_[pred, true],
        }
    )
    with warnings.catch_warnings():  # pingouin's own pandas deprecation warnings
        warnings.simplefilter("ignore")
        table = pingouin.intraclass_corr(data=long, targets="sample", raters="rater", ratings="score")
    table = table.set_index("Type")
    # pingouin < 0.7 names the row "ICC3"; 0.7 renamed it "ICC(C,1)" (consistency, single rater)
    return float(table.loc["ICC3" if "ICC3" in table.index else "ICC(C,1)", "ICC"])


def _labels_and_predictions(seed: int, n: int = 200, a: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 6, (n, a)).astype(float)
    pred = np.clip(true + rng.normal(0.3, 0.8, (n, a)), 0, 5)
    return pred, true


# -- ICC(3,1) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_icc31_agrees_with_pingouin(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    true = rng.integers(0, 6, n).astype(float)
    pred = 0.7 * true + rng.normal(0.5, 1.0, n)
    assert icc31(pred, true) == pytest.approx(_pingouin_icc3(pred, true), abs=1e-9)


def test_icc31_by_hand_from_the_two_way_anova():
    # 4 samples (rows) × 2 raters (columns: pred, true)
    pred = np.array([2.0, 2.0, 3.0, 5.0])
    true = np.array([0.0, 1.0, 3.0, 4.0])
    # grand mean 20/8 = 2.5; row means 1, 1.5, 3, 4.5; column means pred 3, true 2
    # SS_rows = 2·(1.5² + 1² + 0.5² + 2²) = 15;  SS_cols = 4·(0.5² + 0.5²) = 2
    # SS_total = (0.25 + 0.25 + 0.25 + 6.25) + (6.25 + 2.25 + 0.25 + 2.25) = 18
    # SS_err = 18 − 15 − 2 = 1;  MS_rows = 15/3 = 5;  MS_err = 1/(3·1) = 1/3
    # ICC(3,1) = (5 − 1/3) / (5 + 1/3) = 14/16
    assert icc31(pred, true) == pytest.approx(0.875, abs=1e-12)
    # consistency: a constant offset leaves it unchanged (absolute agreement would drop)
    assert icc31(pred + 1.7, true) == pytest.approx(0.875, abs=1e-12)


def test_icc31_degenerate_cases():
    assert math.isnan(icc31([1.0], [2.0]))
    assert math.isnan(icc31([], []))
    assert math.isnan(icc31([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]))  # both constant
    pred = np.array([0.5, 1.5, 2.0, 4.0])
    assert icc31(pred, np.zeros(4)) == 0.0  # one constant: MS_rows = MS_err
    assert _pingouin_icc3(pred, np.zeros(4)) == pytest.approx(0.0, abs=1e-9)


def test_icc31_drops_nan_pairs():
    pred, true = _labels_and_predictions(7, n=50, a=1)
    pred, true = pred[:, 0], true[:, 0]
    holed_pred, holed_true = pred.copy(), true.copy()
    holed_pred[[3, 10]] = np.nan
    holed_true[[10, 20, 30]] = np.nan
    keep = np.ones(50, bool)
    keep[[3, 10, 20, 30]] = False
    assert icc31(holed_pred, holed_true) == pytest.approx(icc31(pred[keep], true[keep]), abs=1e-12)
    with pytest.raises(ValueError, match="1-D"):
        icc31(np.zeros((3, 2)), np.zeros((3, 2)))


# -- Pearson, MAE, RMSE, F1 -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_agrees_with_numpy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=80)
    y = 0.5 * x + rng.normal(size=80)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_pearson_undefined_for_constant_input():
    assert math.isnan(pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))
    assert math.isnan(pearson([1.0], [2.0]))


def test_mae_rmse_by_hand():
    pred = [2.0, 2.0, 3.0, 5.0]
    true = [0.0, 1.0, 3.0, 4.0]  # errors 2, 1, 0, 1
    assert mae(pred, true) == pytest.approx(1.0)
    assert rmse(pred, true) == pytest.approx(math.sqrt(6 / 4))
    assert math.isnan(mae([np.nan, 1.0], [0.0, np.nan]))  # no complete pair
    assert math.isnan(rmse([], []))


def test_f1_by_hand():
    pred = [0.4, 1.0, 2.5, 0.0, 3.0, 0.9]
    true = [0.0, 2.0, 1.0, 1.0, 0.0, 0.0]
    # occurrence at ≥ 1: pred F T T F T F, true F T T T F F -> TP 2 (1, 2), FP 1 (4), FN 1 (3)
    assert f1_occurrence(pred, true) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # threshold 2: pred F F T F T F, true F T F F F F -> TP 0, FP 2, FN 1
    assert f1_occurrence(pred, true, threshold=2.0) == 0.0


def test_f1_without_positives():
    assert math.isnan(f1_occurrence([0.0, 0.5], [0.0, 0.0]))  # nothing to score
    assert f1_occurrence([0.0, 3.0], [0.0, 0.0]) == 0.0  # a false positive only


def test_mae_by_intensity_by_hand():
    pred = [0.5, 0.0, 2.0, 1.0, 4.0, np.nan]
    true = [0.0, 0.0, 1.0, 1.4, 2.5, 3.0]  # 1.4 counts at level 1, 2.5 at level 3
    out = mae_by_intensity(pred, true)
    assert out[:4] == pytest.approx([0.25, (1.0 + 0.4) / 2, np.nan, 1.5], nan_ok=True)
    assert np.isnan(out[4:]).all()


# -- localisation ---------------------------------------------------------------------------------


def _peaks_and_centres() -> tuple[np.ndarray, np.ndarray]:
    nan = np.nan
    peaks = np.array(
        [
            [[100.0, 100.0], [140.0, 100.0], [nan, nan]],
            [[nan, nan], [nan, nan], [nan, nan]],  # no peak predicted
        ]
    )
    centres = np.array(
        [
            [[140.0, 104.0], [96.0, 97.0], [nan, nan]],  # nearest peaks: 2nd at 4 px, 1st at 5 px
            [[50.0, 50.0], [60.0, 60.0], [nan, nan]],
        ]
    )
    return peaks, centres


def test_localisation_error_nearest_peak_in_map_pixels():
    peaks, centres = _peaks_and_centres()
    err = localisation_error(peaks, centres)
    assert err.shape == (2, 3)
    assert err[0, :2] == pytest.approx([4 / 4, 5 / 4])
    assert np.isnan(err[0, 2])  # padding
    assert np.isnan(err[1]).all()  # nothing predicted
    assert localisation_error(peaks, centres, stride=2.0)[0, :2] == pytest.approx([2.0, 2.5])


def test_localisation_error_ignores_order():
    peaks, centres = _peaks_and_centres()
    base = localisation_error(peaks, centres)
    swapped_peaks = localisation_error(peaks[:, [2, 1, 0]], centres)
    swapped_centres = localisation_error(peaks, centres[:, [1, 0, 2]])
    np.testing.assert_array_equal(swapped_peaks, base)
    np.testing.assert_array_equal(swapped_centres, base[:, [1, 0, 2]])


def test_localisation_error_in_percent_of_iod():
    peaks, centres = _peaks_and_centres()
    err = localisation_error(peaks, centres, iod=np.array([100.0, 80.0]))
    assert err[0, :2] == pytest.approx([4.0, 5.0])
    with pytest.raises(ValueError, match="iod"):
        localisation_error(peaks, centres, iod=np.array([100.0]))


def test_localisation_error_allows_two_centres_on_one_peak():
    peaks = np.array([[[32.0, 32.0]]])
    centres = np.array([[[36.0, 32.0], [32.0, 24.0]]])
    assert localisation_error(peaks, centres)[0] == pytest.approx([1.0, 2.0])


# -- au_metrics -----------------------------------------------------------------------------------


def test_au_metrics_rows_and_mean():
    pred, true = _labels_and_predictions(3)
    table = au_metrics(pred, true, aus="bp4d")
    assert list(table.index) == BP4D_LABELS + ["mean"]
    assert tuple(table.columns) == METRIC_COLUMNS
    for j, label in enumerate(BP4D_LABELS):
        assert table.loc[label, "icc"] == pytest.approx(icc31(pred[:, j], true[:, j]))
        assert table.loc[label, "mae"] == pytest.approx(mae(pred[:, j], true[:, j]))
        assert table.loc[label, "n"] == 200
    pd.testing.assert_series_equal(table.loc["mean"], table.loc[BP4D_LABELS].mean(axis=0), check_names=False)
    assert table[["loc_px", "loc_iod_pct"]].isna().all().all()


def test_au_metrics_mean_leaves_out_undefined_entries():
    pred, true = _labels_and_predictions(4)
    true[:, 3] = 0.0  # AU14 neither labelled nor predicted: its ICC and F1 are undefined
    pred[:, 3] = 0.0
    table = au_metrics(pred, true, aus="bp4d")
    assert math.isnan(table.loc["AU14", "f1"]) and math.isnan(table.loc["AU14", "icc"])
    others = [lab for lab in BP4D_LABELS if lab != "AU14"]
    assert table.loc["mean", "f1"] == pytest.approx(table.loc[others, "f1"].mean())


def test_masked_labels_never_influence_the_metrics():
    pred, true = _labels_and_predictions(5)
    rng = np.random.default_rng(0)
    mask = rng.random(true.shape) > 0.3
    base = au_metrics(pred, true, mask=mask, aus="bp4d")

    changed_true = true.copy()
    changed_true[~mask] = rng.uniform(0, 5, (~mask).sum())
    changed_true[~mask & (rng.random(true.shape) > 0.5)] = 9.0  # BP4D's "not coded" code
    pd.testing.assert_frame_equal(au_metrics(pred, changed_true, mask=mask, aus="bp4d"), base)

    as_nan = np.where(mask, true, np.nan)
    pd.testing.assert_frame_equal(au_metrics(pred, as_nan, aus="bp4d"), base)

    as_zero = np.where(mask, true, 0.0)  # reading "not coded" as 0 would change the numbers
    assert not np.allclose(au_metrics(pred, as_zero, aus="bp4d")["mae"], base["mae"])
    assert base.loc["AU06", "n"] == mask[:, 0].sum()
    assert base.loc["AU06", "mae"] == pytest.approx(np.abs(pred[mask[:, 0], 0] - true[mask[:, 0], 0]).mean())


def test_au_metrics_localisation_only_where_the_au_is_present():
    n, a = 3, 2
    nan = np.nan
    true = np.array([[2.0, 3.0], [0.0, 1.0], [4.0, 2.0]])
    mask = np.array([[True, True], [True, True], [True, False]])
    centres = np.full((n, a, 2, 2), nan)
    centres[:, :, 0] = [100.0, 100.0]
    peaks = np.full((n, a, 3, 2), nan)
    peaks[:, :, 0] = [
        [[108.0, 100.0], [100.0, 112.0]],  # errors 8 and 12 crop px
        [[200.0, 200.0], [100.0, 104.0]],  # AU06 absent: its 141 px error is not scored
        [[104.0, 100.0], [0.0, 0.0]],
    ]  # AU10 masked: not scored
    iod = np.array([100.0, 50.0, 80.0])
    table = au_metrics(true, true, mask=mask, aus=(6, 10), pred_peaks=peaks, true_centres=centres, iod=iod)
    assert table.loc["AU06", "loc_px"] == pytest.approx((8 / 4 + 4 / 4) / 2)
    assert table.loc["AU06", "loc_iod_pct"] == pytest.approx((8.0 + 5.0) / 2)
    assert table.loc["AU10", "loc_px"] == pytest.approx((12 / 4 + 4 / 4) / 2)
    assert table.loc["AU10", "loc_iod_pct"] == pytest.approx((12.0 + 8.0) / 2)
    strict = au_metrics(
        true, true, mask=mask, aus=(6, 10), pred_peaks=peaks, true_centres=centres, true_intensity_for_loc_min=3.0
    )
    assert strict.loc["AU06", "loc_px"] == pytest.approx(1.0)  # only the intensity-4 sample
    assert strict.loc["AU10", "loc_px"] == pytest.approx(3.0)
    assert math.isnan(strict.loc["AU10", "loc_iod_pct"])  # no iod given


def test_au_metrics_checks_shapes():
    pred, true = _labels_and_predictions(0, a=5)
    with pytest.raises(ValueError, match="AUs"):
        au_metrics(pred, true, aus="disfa")
    with pytest.raises(ValueError, match="both"):
        au_metrics(pred, true, pred_peaks=np.zeros((200, 5, 2, 2)))


# -- reports --------------------------------------------------------------------------------------


def _assert_real_png(path, min_bytes=10_000):
    assert path.stat().st_size > min_bytes
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].std() > 0.02  # not a blank canvas


def _as_float(x):
    return math.nan if x is None else x


def test_evaluate_predictions_writes_the_report(tmp_path):
    pred, true = _labels_and_predictions(11, n=300)
    mask = np.random.default_rng(1).random(true.shape) > 0.1
    out = evaluate_predictions(pred, true, "bp4d", mask=mask, out_dir=tmp_path / "eval", title="unit test")
    table = out["table"]
    names = ["metrics.json", "metrics.md", "scatter.png", "error_by_intensity.png"]
    assert sorted(out["files"]) == sorted(names)
    for name in names:
        assert (tmp_path / "eval" / name).is_file()

    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["aus"] == [6, 10, 12, 14, 17] and saved["n_samples"] == 300
    for label in BP4D_LABELS:
        assert saved["counts"][label] == mask[:, BP4D_LABELS.index(label)].sum()
        for col in METRIC_COLUMNS:
            np.testing.assert_equal(_as_float(saved["per_au"][label][col]), table.loc[label, col])
    for col in METRIC_COLUMNS:
        np.testing.assert_equal(_as_float(saved["mean"][col]), table.loc["mean", col])
    assert saved["per_au"]["AU06"]["loc_px"] is None  # NaN written as null

    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| Metric | AU06 | AU10 | AU12 | AU14 | AU17 | Avg |" in md
    icc_row = next(line for line in md.splitlines() if line.startswith("| ICC(3,1) |"))
    assert icc_row.split("|")[-2].strip() == f"{table.loc['mean', 'icc']:.2f}"
    assert "0.68" in md and "unverified" in md and "BMVC 2018" in md

    for name in ("scatter.png", "error_by_intensity.png"):
        _assert_real_png(tmp_path / "eval" / name)


def test_evaluate_predictions_without_out_dir_and_other_au_sets(tmp_path):
    pred, true = _labels_and_predictions(12, a=2)
    out = evaluate_predictions(pred, true, (6, 12))
    assert out["files"] == {} and list(out["per_au"]) == ["AU06", "AU12"]
    evaluate_predictions(pred, true, (6, 12), out_dir=tmp_path)
    assert "published" not in (tmp_path / "metrics.md").read_text()  # no published set matches


def test_robustness_table_writes_the_right_numbers(tmp_path):
    def table(icc: list[float], mae_: list[float]) -> pd.DataFrame:
        t = pd.DataFrame({"icc": icc, "mae": mae_}, index=["AU06", "AU12"]).reindex(columns=METRIC_COLUMNS)
        t.loc["mean"] = t.mean(axis=0)
        return t

    results = {
        5.0: table([0.6, 0.4], [0.8, 1.0]),
        0.0: table([0.8, 0.7], [0.5, 0.6]),
        10.0: table([0.3, np.nan], [1.2, 1.4]),
    }
    out = robustness_table(results, tmp_path / "rob")
    assert list(out.index) == [0.0, 5.0, 10.0]
    assert out.loc[5.0, ("icc", "mean")] == pytest.approx(0.5)
    assert out.loc[0.0, ("mae", "AU12")] == pytest.approx(0.6)

    saved = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert saved["noise_iod_pct"] == [0.0, 5.0, 10.0]
    assert saved["icc"]["mean"] == pytest.approx([0.75, 0.5, 0.3])
    assert saved["mae"]["mean"] == pytest.approx([0.55, 0.9, 1.3])
    assert saved["icc"]["AU12"][2] is None

    md = (tmp_path / "rob" / "robustness.md").read_text()
    assert "| 5 | 0.500 | 0.900 |" in md
    assert "| 10 | 0.30 | – | 0.30 |" in md
    _assert_real_png(tmp_path / "rob" / "robustness.png")

    with pytest.raises(ValueError):
        robustness_table({}, tmp_path)
