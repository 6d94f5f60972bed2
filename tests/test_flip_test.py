"""The flip test (aumaps.model.mirror_average, the codec's ``flip_test``): each face read with
its mirror image, everywhere the network runs."""

import numpy as np
import pytest
import torch

from aumaps.codec import AUHeatmapCodec
from aumaps.evaluate import calibrate_checkpoint, predict_cache
from aumaps.model import mirror_average
from aumaps.weights import load_checkpoint, save_checkpoint


def _cumulative(x):
    """A 'network' that is not mirror-symmetric: maps = running sums along the width."""
    if isinstance(x, torch.Tensor):
        return x.float().cumsum(-1)
    return np.cumsum(x.astype(np.float32), axis=-1)


def test_mirror_average_by_hand_numpy_and_torch():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)  # N=2, one "AU", 2x3 maps
    calls = []

    def run(batch):
        calls.append(len(batch))
        return _cumulative(batch)

    got = mirror_average(run, x, width_axis=3)
    # row [0, 1, 2]: cumsum [0, 1, 3]; mirror [2, 1, 0] -> cumsum [2, 3, 3] -> back [3, 3, 2]; mean [1.5, 2, 2.5]
    np.testing.assert_allclose(got[0, 0, 0], [1.5, 2.0, 2.5])
    np.testing.assert_allclose(got, (_cumulative(x) + _cumulative(x[..., ::-1])[..., ::-1]) / 2)
    assert calls == [4]  # one call: the inputs and their mirrors in one batch
    t = mirror_average(_cumulative, torch.from_numpy(x), width_axis=3)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), got)
    # NHWC crops: the width is axis 2, the maps' width is still their last axis
    crops = np.random.default_rng(0).integers(0, 255, (3, 4, 4, 3), dtype=np.uint8)

    def per_crop(batch):
        return np.cumsum(batch.astype(np.float32).mean(-1), axis=-1)[:, None]  # (N, 1, 4, 4)

    mirrored = per_crop(crops[:, :, ::-1])[..., ::-1]
    np.testing.assert_allclose(mirror_average(per_crop, crops, width_axis=2), (per_crop(crops) + mirrored) / 2)


def test_the_two_readings_meet_on_the_map_pixel():
    """A 'network' that reads map pixel i off crop column stride·i (the codec's geometry) is
    mirror-symmetric under the flip test's mirroring, so the flip test gives back exactly its
    maps; a plain flip about the crop's centre would not (off by 3/4 of a map pixel)."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)  # S = 16, 4x4 maps: stride 4

    def sample(batch):
        return batch[:, ::4, ::4, 0].astype(np.float32)[:, None]  # (N, 1, 4, 4): pixel i <- column 4i

    np.testing.assert_array_equal(mirror_average(sample, crops, width_axis=2, stride=4), sample(crops))
    assert not np.array_equal(mirror_average(sample, crops, width_axis=2, stride=1), sample(crops))
    t = mirror_average(lambda x: x[:, :1, ::4, ::4].float(), torch.from_numpy(crops).permute(0, 3, 1, 2), 3, stride=4)
    np.testing.assert_array_equal(t.numpy(), sample(crops))
    with pytest.raises(ValueError, match="whole stride"):
        mirror_average(sample, crops, width_axis=2, stride=2.5)


def test_codec_states_it_only_when_set():
    plain = AUHeatmapCodec("openface", crop_size=128, map_size=32)
    assert "flip_test" not in plain.to_dict() and plain.flip_test is False  # older checkpoints' dicts unchanged
    flipped = AUHeatmapCodec.from_dict({**plain.to_dict(), "flip_test": True})
    assert flipped.flip_test is True and flipped.to_dict()["flip_test"] is True
    with pytest.raises(ValueError, match="flip_test"):
        AUHeatmapCodec("openface", flip_test="yes")
    with pytest.raises(ValueError, match="multiple of the map size"):
        AUHeatmapCodec("openface", crop_size=100, map_size=32, flip_test=True)


def test_estimator_and_evaluation_read_faces_with_their_mirror(
    tiny_weights, tiny_cache, tmp_path, astronaut, one_thread
):
    from aumaps import AUEstimator

    ckpt = load_checkpoint(tiny_weights)
    ckpt.codec.flip_test = True
    path = save_checkpoint(tmp_path / "flip.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    assert load_checkpoint(path).codec.flip_test is True
    plain = AUEstimator(weights=tiny_weights, backend="torch")
    flipped = AUEstimator(weights=path, backend="torch")
    crops = plain.predict(astronaut)[0].crop[None]
    crops = np.concatenate([crops, crops[:, ::-1]])  # the face and its mirror: not the same maps
    one, mirror = plain.heatmaps(crops[:1]), plain.heatmaps(crops[1:])
    assert np.abs(one - mirror[..., ::-1]).max() > 1e-3  # the network alone is not mirror-symmetric
    stride = int(ckpt.codec.stride)
    mirrored = np.concatenate([crops[:, :, ::-1][:, :, stride - 1 :], crops[:, :, :1].repeat(stride - 1, 2)], axis=2)
    expected = (plain.heatmaps(crops) + plain.heatmaps(mirrored)[..., ::-1]) / 2
    np.testing.assert_allclose(flipped.heatmaps(crops), expected, atol=1e-5)
    result = flipped.predict(astronaut)[0]
    np.testing.assert_allclose(
        result.intensities, np.clip(expected[0].reshape(len(ckpt.aus), -1).max(-1), 0, 5), atol=1e-4
    )
    # evaluation reads the cache the same way
    raw = predict_cache(load_checkpoint(tiny_weights), tiny_cache, "val", amp="fp32")
    both = predict_cache(load_checkpoint(path), tiny_cache, "val", amp="fp32")
    assert not np.allclose(raw["pred"], both["pred"])


def test_calibrate_fits_the_flip_test_and_keeps_it(tiny_weights, tiny_cache, tmp_path, one_thread):
    from aumaps.cli import main

    path, cal, stats = calibrate_checkpoint(tiny_weights, tiny_cache, tmp_path / "f.pt", split="val", flip_test=True)
    ckpt = load_checkpoint(path)
    assert stats["flip_test"] is True and ckpt.codec.flip_test is True and ckpt.codec.calibration == cal
    assert "flip test" in ckpt.card["calibration"]
    # None keeps what the checkpoint says; --no-flip-test turns it off again
    _, _, kept = calibrate_checkpoint(path, tiny_cache, tmp_path / "g.pt", split="val")
    assert kept["flip_test"] is True and load_checkpoint(tmp_path / "g.pt").codec.flip_test is True
    args = ["calibrate", "--weights", str(path), "--data", str(tiny_cache), "--out", str(tmp_path / "h.pt")]
    assert main([*args, "--no-flip-test"]) == 0
    again = load_checkpoint(tmp_path / "h.pt")
    assert again.codec.flip_test is False and "flip test" not in again.card["calibration"]
