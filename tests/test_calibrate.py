"""Readout calibration (aumaps.calibrate): the function, its fit, and where it is applied."""

import math

import numpy as np
import pytest
import torch

from aumaps.calibrate import MapCalibration, fit_map_calibration
from aumaps.cli import main
from aumaps.codec import AUHeatmapCodec
from aumaps.evaluate import calibrate_checkpoint
from aumaps.metrics import icc31
from aumaps.readout import FaceInput, read_faces
from aumaps.weights import load_checkpoint, save_checkpoint


def test_golden_values_and_types():
    cal = MapCalibration(gain=1.5, threshold=0.6, softness=5.0)
    # f(0) = gain * ln(1 + e^(-softness * threshold)) / softness, by hand: 1.5 * ln(1 + e^-3) / 5
    assert float(cal(np.float32(0.0))) == pytest.approx(1.5 * math.log1p(math.exp(-3.0)) / 5.0, rel=1e-5)
    # well above the threshold it is gain * (m - threshold): 1.5 * 2.4 (+ 1.5 * ln(1 + e^-12) / 5)
    assert float(cal(np.float32(3.0))) == pytest.approx(3.6, abs=1e-5)
    # at the threshold: gain * ln 2 / softness
    assert float(cal(np.float32(0.6))) == pytest.approx(1.5 * math.log(2) / 5, rel=1e-5)
    out = cal(np.zeros((2, 3, 4, 4)))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 3, 4, 4)
    assert isinstance(cal(torch.zeros(2, 3)), torch.Tensor)


def test_strictly_increasing_so_no_ranking_changes():
    cal = MapCalibration(gain=1.4, threshold=0.5)
    m = np.linspace(-1.0, 6.0, 2001, dtype=np.float32)
    f = cal(m).astype(np.float64)
    assert np.all(np.diff(f) > 0)
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 4, 200)
    assert (np.argsort(cal.of_intensity(raw)) == np.argsort(raw)).all()
    assert cal.of_intensity(np.array([10.0]))[0] == 5.0  # clamped to [0, 5] like the readout


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="gain"):
        MapCalibration(gain=0.0)
    with pytest.raises(ValueError, match="threshold"):
        MapCalibration(threshold=float("nan"))
    with pytest.raises(ValueError, match="unknown"):
        MapCalibration.from_dict({"gain": 1.2, "offset": 0.1})
    cal = MapCalibration(1.3, 0.45, 5.0, "somewhere")
    assert MapCalibration.from_dict(cal.to_dict()) == cal


def test_fit_recovers_a_known_shrinkage():
    """Maps that read labels as 0.5 + t / 1.5 (shrunk towards a floor, as L2-trained maps do)
    are calibrated back by gain 1.5 and a threshold near 0.5, and agreement improves."""
    rng = np.random.default_rng(1)
    true = np.where(rng.random((3000, 3)) < 0.5, 0.0, rng.uniform(0, 5, (3000, 3)))
    true[5, 1] = np.nan  # not coded
    raw = np.clip(0.5 + true / 1.5 + rng.normal(0, 0.05, true.shape), 0, 5)
    cal, stats = fit_map_calibration(raw, true, fitted_on="synthetic")
    assert cal.gain == pytest.approx(1.5, abs=0.1)
    assert cal.threshold == pytest.approx(0.5, abs=0.1)
    assert cal.fitted_on == "synthetic"
    assert stats["icc_after"] > stats["icc_before"] + 0.02
    assert stats["mae_after"] < 0.6 * stats["mae_before"]
    calibrated = cal.of_intensity(raw)
    coded = [np.isfinite(true[:, a]) for a in range(3)]
    assert stats["icc_after"] == pytest.approx(
        np.mean([icc31(calibrated[c, a], true[c, a]) for a, c in enumerate(coded)])
    )
    with pytest.raises(ValueError, match="both be"):
        fit_map_calibration(raw[:, :2], true)


def test_fit_never_lifts_an_empty_map_above_the_floor():
    """Maps that read labels as t / 1.25 with no floor: threshold 0 and gain 1.25 would fit
    best, but would read every neutral face's AUs as about 0.17; the fit keeps f(0) <= 0.05."""
    rng = np.random.default_rng(2)
    true = np.where(rng.random((3000, 3)) < 0.5, 0.0, rng.uniform(0, 5, (3000, 3)))
    raw = np.clip(true / 1.25 + rng.normal(0, 0.05, true.shape), 0, 5)
    free, _ = fit_map_calibration(raw, true, max_at_zero=5.0)
    cal, _ = fit_map_calibration(raw, true)
    assert free.threshold == 0.0 and free.of_intensity(np.zeros(1))[0] > 0.15
    assert cal.threshold > 0.0 and cal.of_intensity(np.zeros(1))[0] <= 0.05
    with pytest.raises(ValueError, match="empty map at most"):
        fit_map_calibration(raw, true, thresholds=(0.0,), max_at_zero=0.01)


def test_codec_carries_it_and_decodes_the_same_peaks():
    cal = MapCalibration(1.5, 0.6)
    plain = AUHeatmapCodec("bp4d", crop_size=128, map_size=32)
    codec = AUHeatmapCodec.from_dict({**plain.to_dict(), "calibration": cal.to_dict()})
    assert "calibration" not in plain.to_dict()
    assert codec.calibration == cal
    rng = np.random.default_rng(0)
    landmarks = np.tile(
        np.array([[x, y] for x, y in zip(np.linspace(30, 98, 68), np.linspace(40, 100, 68))]), (3, 1, 1)
    )
    maps, _ = codec.encode(landmarks, rng.uniform(0, 4, (3, 5)))
    maps = maps + rng.normal(0, 0.05, maps.shape).astype(np.float32)
    raw = plain.decode(maps)
    shown, calibrated = codec.read(maps)
    np.testing.assert_allclose(shown, cal(maps), atol=1e-6)
    np.testing.assert_allclose(calibrated.intensities, cal.of_intensity(maps.reshape(3, 5, -1).max(-1)), atol=1e-5)
    np.testing.assert_array_equal(calibrated.peaks, raw.peaks)  # same local maxima above the same raw level
    np.testing.assert_array_equal(np.isnan(calibrated.argmax), np.isnan(raw.argmax))
    assert plain.calibrate(maps) is maps  # no calibration: untouched


def test_readout_and_checkpoint_round_trip(tiny_weights, tmp_path):
    ckpt = load_checkpoint(tiny_weights)
    cal = MapCalibration(1.25, 0.3, 5.0, "a test")
    ckpt.codec.calibration = cal
    path = save_checkpoint(tmp_path / "cal.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    again = load_checkpoint(path)
    assert again.codec.calibration == cal
    maps = np.random.default_rng(0).uniform(-0.5, 3.0, (1, 5, 64, 64)).astype(np.float32)
    face = FaceInput(0, np.array([0, 0, 10, 10.0]), float("nan"), np.zeros((68, 2)))
    (result,) = read_faces(
        again.codec, maps, np.tile(np.eye(2, 3), (1, 1, 1)), np.zeros((1, 256, 256, 3), np.uint8), [face]
    )
    np.testing.assert_allclose(result.intensities, cal.of_intensity(maps.reshape(5, -1).max(-1)), atol=1e-5)
    np.testing.assert_allclose(result.heatmaps, cal(maps[0]), atol=1e-6)  # the maps shown are the calibrated ones


def test_calibrate_checkpoint_fits_on_validation_only(tiny_weights, tiny_cache, tmp_path, one_thread):
    out = tmp_path / "calibrated.pt"
    with pytest.raises(ValueError, match="never on the test split"):
        calibrate_checkpoint(tiny_weights, tiny_cache, out, split="test")
    assert not out.exists()
    path, cal, stats = calibrate_checkpoint(tiny_weights, tiny_cache, out, split="val")
    ckpt = load_checkpoint(path)
    assert ckpt.codec.calibration == cal
    assert "val split" in cal.fitted_on and stats["n"] == 4
    assert "calibration" in ckpt.card and f"{cal.gain:g}" in ckpt.card["calibration"]
    before = load_checkpoint(tiny_weights).model.state_dict()
    for key, value in ckpt.model.state_dict().items():  # the network itself is untouched
        assert torch.equal(value, before[key])
    assert (
        main(
            ["calibrate", "--weights", str(tiny_weights), "--data", str(tiny_cache), "--out", str(tmp_path / "cli.pt")]
        )
        == 0
    )
    assert load_checkpoint(tmp_path / "cli.pt").codec.calibration == cal


def test_estimator_reports_calibrated_intensities_and_holds_engines_to_the_bound(
    tiny_weights, tmp_path, astronaut, monkeypatch, one_thread
):
    import aumaps.estimator as estimator_module
    from aumaps import AUEstimator

    ckpt = load_checkpoint(tiny_weights)
    cal = MapCalibration(1.25, 0.3)
    ckpt.codec.calibration = cal
    path = save_checkpoint(tmp_path / "cal.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    raw = AUEstimator(weights=tiny_weights, backend="torch").predict(astronaut)[0]
    bounds = []
    create = estimator_module.create_engine
    monkeypatch.setattr(estimator_module, "create_engine", lambda *a, **k: bounds.append(a[4]) or create(*a, **k))
    calibrated = AUEstimator(weights=path, backend="torch", max_error=0.05).predict(astronaut)[0]
    assert bounds == [pytest.approx(0.05 / 1.25)]  # |f(a) - f(b)| <= gain * |a - b|
    np.testing.assert_allclose(calibrated.intensities, cal.of_intensity(raw.intensities), atol=1e-4)
    np.testing.assert_array_equal(calibrated.landmarks, raw.landmarks)
