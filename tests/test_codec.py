import numpy as np
import pytest
import torch

from aumaps import align
from aumaps.codec import AUHeatmapCodec


def _codec(aus=(12,), **kw):
    kw.setdefault("sigma", 1.0)
    kw.setdefault("sigma_growth", 0.25)
    return AUHeatmapCodec(aus, **kw)


def _lips(left=(100.0, 160.0), right=(156.0, 160.0)):
    lm = align.TEMPLATE_68.copy()
    lm[48], lm[54] = left, right
    return lm


def test_golden_values_by_hand():
    # AU12 centres: landmarks 48 and 54 at crop (100,160), (156,160) -> map pixels (25,40), (39,40).
    maps, mask = _codec().encode(_lips(), np.array([2.0]))
    assert maps.shape == (1, 64, 64) and maps.dtype == np.float32 and mask.tolist() == [True]
    m = maps[0]
    # sigma(2) = 1 + 0.25 * 2 = 1.5, so G(i, j) = 2 exp(-(i^2 + j^2) / 4.5)
    assert m[40, 25] == pytest.approx(2.0)
    assert m[40, 39] == pytest.approx(2.0)
    assert m[40, 26] == pytest.approx(1.6014748058, rel=1e-6)  # (i, j) = (1, 0)
    assert m[44, 28] == pytest.approx(0.0077318403, rel=1e-6)  # (3, 4)
    assert m[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_window_truncates_small_intensities():
    # I = 0.5: sigma = 1.125, support |i|,|j| <= 3
    m = _codec().encode(_lips(), np.array([0.5]))[0][0]
    assert m[43, 25] == pytest.approx(0.0142827504, rel=1e-6)  # (0, 3): inside
    assert m[44, 25] == 0.0  # (0, 4): the Gaussian is 0.0009 there, the window cuts it


def test_zero_intensity_is_an_empty_map_and_nan_is_masked():
    maps, mask = _codec((6, 12, 17)).encode(align.TEMPLATE_68, np.array([0.0, np.nan, 3.0]))
    assert not maps[0].any() and not maps[1].any() and maps[2].max() == pytest.approx(3.0)
    assert mask.tolist() == [True, False, True]


def test_max_combines_overlapping_centres():
    lm = _lips(left=(100.0, 160.0), right=(108.0, 160.0))  # map (25,40) and (27,40)
    m = _codec().encode(lm, np.array([4.0]))[0][0]
    sigma = 1.0 + 0.25 * 4
    assert m[40, 26] == pytest.approx(4 * np.exp(-1 / (2 * sigma**2)), rel=1e-6)  # max, not sum


def _random_faces(n, rng):
    out = []
    for _ in range(n):
        s, a = rng.uniform(0.85, 1.1), np.deg2rad(rng.uniform(-12, 12))
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lm = (align.TEMPLATE_68 - 128) @ rot.T + 128 + rng.uniform(-8, 8, 2)
        out.append(lm + rng.normal(0, 1.0, lm.shape))
    return np.stack(out)


def test_round_trip_intensities_and_centres():
    rng = np.random.default_rng(1)
    codec = AUHeatmapCodec("bp4d")
    lms = _random_faces(16, rng)
    inten = rng.uniform(0.6, 5.0, (16, 5))
    maps, _ = codec.encode(lms, inten)
    assert maps.shape == (16, 5, 64, 64)
    dec = codec.decode(maps)
    np.testing.assert_allclose(dec.intensities, inten, atol=1e-6)
    # every true centre is found among the decoded peaks, to the map pixel
    true = codec.centres_in_map(lms) * codec.stride
    for n in range(16):
        for a, au in enumerate(codec.aus):
            k = int(codec.n_centres[a])
            found = dec.peaks[n, a, :k]
            for c in true[n, a, :k]:
                if np.isnan(c).any():
                    continue
                assert np.min(np.abs(found - c).max(axis=1)) < 1e-9, (au, c, found)
    np.testing.assert_allclose(dec.peak_values[:, :, 0], inten, atol=1e-6)


def test_decode_clamps_and_accepts_torch():
    codec = AUHeatmapCodec((6, 12))
    maps = torch.zeros(2, 2, 64, 64)
    maps[0, 0, 10, 20] = 7.5
    maps[0, 1] = -1.0
    maps[1, 1, 5, 6] = 2.5
    dec = codec.decode(maps)
    np.testing.assert_allclose(dec.intensities, [[5.0, 0.0], [0.0, 2.5]])
    np.testing.assert_allclose(dec.argmax[0, 0], [80.0, 40.0])
    np.testing.assert_allclose(dec.argmax[1, 1], [24.0, 20.0])
    assert np.isnan(dec.argmax[0, 1]).all() and np.isnan(dec.peaks[0, 1]).all()
    assert np.isnan(dec.peaks[1, 1, 1]).all()  # a single peak; the second is not made up


def test_shape_errors_are_clear():
    codec = AUHeatmapCodec("bp4d")
    with pytest.raises(ValueError, match=r"intensities \(N, 5\)"):
        codec.encode(np.zeros((2, 68, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="heatmaps"):
        codec.decode(np.zeros((1, 3, 64, 64)))
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        codec.encode(align.TEMPLATE_68, np.array([1, 2, 3, 4, 6.0]))


def test_dict_round_trip():
    codec = AUHeatmapCodec("disfa", sigma=2.0, sigma_growth=0.0)
    again = AUHeatmapCodec.from_dict(codec.to_dict())
    assert again.to_dict() == codec.to_dict() and again.aus[0] == 1
