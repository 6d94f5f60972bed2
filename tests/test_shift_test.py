"""The shift test (aumaps.model.shift_average, the codec's ``shift_test``): each face also read
moved one map pixel each way, everywhere the network runs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aumaps.codec import AUHeatmapCodec
from aumaps.evaluate import calibrate_checkpoint, predict_cache
from aumaps.model import SHIFTS, mirror_average, shift_average
from aumaps.weights import load_checkpoint, save_checkpoint


def _padded_reference(run, x: torch.Tensor, stride: int, shifts=SHIFTS) -> torch.Tensor:
    """The shift test written independently: move by padding with the edge (torch's
    ``replicate`` padding) and cropping, one call of ``run`` per move."""

    def move(t, dx, dy):
        p = max(abs(dx), abs(dy))
        h, w = t.shape[-2:]
        padded = F.pad(t, (p, p, p, p), mode="replicate") if p else t
        return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]

    maps = [move(run(move(x, dx * stride, dy * stride)), -dx, -dy) for dx, dy in shifts]
    return torch.stack(maps).mean(0)


def test_shift_average_against_padding_numpy_and_torch():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 16, 16), dtype=np.float32))  # N=2, S=16, stride 4 -> 4x4 maps
    weight = torch.from_numpy(rng.random((2, 3, 4, 4), dtype=np.float32))  # 2 "AUs", not shift-invariant at edges

    def net(t):
        return F.conv2d(t, weight, stride=4) + torch.arange(4.0)[:, None]  # depends on the absolute row too

    calls = []

    def run(t):
        calls.append(len(t))
        return net(t)

    got = shift_average(run, x, width_axis=3, stride=4)
    assert calls == [10]  # one call: the five moves of both faces in one batch
    np.testing.assert_allclose(got.numpy(), _padded_reference(net, x, 4).numpy(), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, net(x), atol=1e-3)  # the readings differ, so the mean is not one of them
    # NHWC NumPy crops (width axis 2) give the same maps
    nhwc = x.permute(0, 2, 3, 1).numpy()
    got_np = shift_average(lambda a: net(torch.from_numpy(a).permute(0, 3, 1, 2)).numpy(), nhwc, 2, stride=4)
    assert isinstance(got_np, np.ndarray)
    np.testing.assert_allclose(got_np, got.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="whole stride"):
        shift_average(net, x, width_axis=3, stride=1.5)


def test_a_network_that_reads_the_codec_geometry_is_unchanged_inside():
    """A 'network' that reads map pixel (i, j) off crop pixel (stride·i, stride·j) gives back its
    own maps under the shift test away from the border: the moves go back pixel for pixel."""
    crops = np.random.default_rng(1).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)  # 8x8 maps

    def sample(batch):
        return batch[:, ::4, ::4, 0].astype(np.float32)[:, None]

    got = shift_average(sample, crops, width_axis=2, stride=4)
    np.testing.assert_array_equal(got[..., 1:-1, 1:-1], sample(crops)[..., 1:-1, 1:-1])
    assert not np.array_equal(got, sample(crops))  # the border repeats the edge


def test_codec_readings_and_dict():
    plain = AUHeatmapCodec("openface", crop_size=128, map_size=32)
    assert "shift_test" not in plain.to_dict() and plain.shift_test is False and plain.readings() == 1
    both = AUHeatmapCodec.from_dict({**plain.to_dict(), "flip_test": True, "shift_test": True})
    assert both.to_dict()["shift_test"] is True and both.readings() == 10 and both.readings(shift_test=False) == 2
    assert AUHeatmapCodec("openface", crop_size=128, map_size=32, shift_test=True).readings() == 5
    with pytest.raises(ValueError, match="shift_test"):
        AUHeatmapCodec("openface", shift_test=1)
    with pytest.raises(ValueError, match="shift_test needs a crop size"):
        AUHeatmapCodec("openface", crop_size=100, map_size=32, shift_test=True)


def test_estimator_and_evaluation_read_the_moves(tiny_weights, tiny_cache, tmp_path, astronaut, one_thread):
    from aumaps import AUEstimator

    ckpt = load_checkpoint(tiny_weights)
    ckpt.codec.flip_test = ckpt.codec.shift_test = True
    path = save_checkpoint(tmp_path / "shift.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    assert load_checkpoint(path).codec.shift_test is True
    plain = AUEstimator(weights=tiny_weights, backend="torch")
    both = AUEstimator(weights=path, backend="torch", batch_size=4)  # fewer than ten readings per batch
    crops = plain.predict(astronaut)[0].crop[None].repeat(3, 0)
    stride = int(ckpt.codec.stride)
    expected = shift_average(lambda c: mirror_average(plain.heatmaps, c, 2, stride), crops, 2, stride)
    got = both.heatmaps(crops)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - mirror_average(plain.heatmaps, crops, 2, stride)).max() > 1e-3
    result = both.predict(astronaut)[0]
    np.testing.assert_allclose(result.intensities, np.clip(got[0].reshape(len(ckpt.aus), -1).max(-1), 0, 5), atol=1e-4)
    # evaluation reads the cache the same way
    flip = load_checkpoint(tiny_weights)
    flip.codec.flip_test = True
    assert not np.allclose(
        predict_cache(flip, tiny_cache, "val", amp="fp32")["pred"],
        predict_cache(load_checkpoint(path), tiny_cache, "val", amp="fp32")["pred"],
    )


def test_calibrate_fits_the_shift_test_and_keeps_it(tiny_weights, tiny_cache, tmp_path, one_thread):
    from aumaps.cli import main

    args = ["calibrate", "--weights", str(tiny_weights), "--data", str(tiny_cache), "--out", str(tmp_path / "s.pt")]
    assert main([*args, "--flip-test", "--shift-test"]) == 0
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert ckpt.codec.shift_test is True and ckpt.codec.flip_test is True
    assert "mirror image's (flip test) and its crop's moved" in ckpt.card["calibration"]
    _, _, kept = calibrate_checkpoint(tmp_path / "s.pt", tiny_cache, tmp_path / "t.pt", split="val")
    assert kept["shift_test"] is True  # None keeps what the checkpoint says
    _, _, off = calibrate_checkpoint(tmp_path / "s.pt", tiny_cache, tmp_path / "u.pt", split="val", shift_test=False)
    again = load_checkpoint(tmp_path / "u.pt")
    assert off["shift_test"] is False and again.codec.shift_test is False and again.codec.flip_test is True
    assert "shift test" not in again.card["calibration"]


def test_live_cameras_and_no_shift_test_read_without_the_moves(tiny_weights, tmp_path, astronaut, one_thread):
    """``--no-shift-test``, ``AUEstimator(shift_test=False)``, a study's option and the web
    app's live frames all read as the flip test alone does; photos keep the model's readout."""
    import threading

    import pandas as pd

    from aumaps import AUEstimator
    from aumaps.cli import main
    from aumaps.serve.models import SharedEstimator
    from aumaps.study.options import StudyOptions
    from aumaps.study.processes import build_estimator

    ckpt = load_checkpoint(tiny_weights)
    ckpt.codec.flip_test = True
    flip = save_checkpoint(tmp_path / "flip.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    ckpt.codec.shift_test = True
    both = save_checkpoint(tmp_path / "both.pt", ckpt.model, ckpt.aus, ckpt.codec, ckpt.card)
    crops = AUEstimator(weights=flip, backend="torch").predict(astronaut)[0].crop[None]
    flip_maps = AUEstimator(weights=flip, backend="torch").heatmaps(crops)
    est = AUEstimator(weights=both, backend="torch")
    assert est.shift_test is True and np.abs(est.heatmaps(crops) - flip_maps).max() > 1e-3
    np.testing.assert_allclose(est.heatmaps(crops, shift_test=False), flip_maps, atol=1e-6)
    np.testing.assert_allclose(AUEstimator(weights=both, backend="torch", shift_test=False).heatmaps(crops), flip_maps)

    shared = SharedEstimator(est, threading.Lock())
    faces = est.find_faces(astronaut)
    live = shared.analyse(astronaut, faces, shift_test=False)[0].intensities
    photo = shared.analyse(astronaut, faces)[0].intensities
    expected = AUEstimator(weights=flip, backend="torch").predict(astronaut)[0].intensities
    np.testing.assert_allclose(live, expected, atol=1e-5)
    assert np.abs(photo - expected).max() > 1e-4

    options = StudyOptions(weights=str(both), backend="torch", shift_test=False)
    assert build_estimator(options, "cpu").shift_test is False
    assert StudyOptions(shift_test=False).results_key()["shift_test"] is False  # a study never mixes the two

    image = tmp_path / "astronaut.png"
    import cv2

    cv2.imwrite(str(image), astronaut[:, :, ::-1])
    common = ["predict", str(image), "--backend", "torch", "--quiet"]
    assert main([*common, "--weights", str(both), "--no-shift-test", "--out", str(tmp_path / "a.csv")]) == 0
    assert main([*common, "--weights", str(flip), "--out", str(tmp_path / "b.csv")]) == 0
    assert main([*common, "--weights", str(both), "--out", str(tmp_path / "c.csv")]) == 0
    a, b, c = (pd.read_csv(tmp_path / f"{x}.csv") for x in "abc")
    cols = [k for k in a.columns if k.endswith("_r")]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-3)
    assert np.abs(c[cols].to_numpy() - b[cols].to_numpy()).max() > 1e-3


def test_evaluation_feeds_the_network_its_layout_a_batch_at_a_time(tiny_weights, tiny_cache, one_thread):
    """The mirrored and moved crops reach the network channels-last and a loader batch at a
    time: ten readings of a batch in one NCHW call ran 4x slower per crop."""
    from aumaps.data.cache import CropCache
    from aumaps.data.dataset import AUHeatmapDataset
    from aumaps.evaluate import predict_loader

    ckpt = load_checkpoint(tiny_weights)
    ckpt.codec.flip_test = ckpt.codec.shift_test = True
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            calls.append((len(x), x.is_contiguous(memory_format=torch.channels_last)))
            return self.net(x)

    cache = CropCache(tiny_cache)
    dataset = AUHeatmapDataset(cache, cache.indices("val"), ckpt.codec, None)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    out = predict_loader(Recorder(ckpt.model), loader, ckpt.codec, "fp32", torch.device("cpu"))
    n = len(dataset)
    assert sum(size for size, _ in calls) == 10 * n and all(layout for _, layout in calls)
    assert max(size for size, _ in calls) <= 3
    expected = predict_cache(ckpt, tiny_cache, "val", amp="fp32", batch_size=n)  # one batch: same maps
    np.testing.assert_allclose(out["pred"], expected["pred"], atol=1e-4)
