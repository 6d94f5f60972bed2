"""Inference engines: the fastest accurate one is picked, built once, rebuilt when stale or
damaged, and int8 is refused when it misses its accuracy bound."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch

from aumaps import hardware
from aumaps.model import AUHourglass, DeployableNet
from aumaps.runtime import engines, export
from aumaps.runtime.engines import EngineUnavailable, create_engine
from aumaps.runtime.probe import AccuracyReport, intensities_of, probe_crops
from aumaps.runtime.store import EngineStore, weights_digest

needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime",
)


def _model(seed: int = 0) -> AUHourglass:
    torch.manual_seed(seed)
    model = AUHourglass(num_aus=5, num_stacks=1, depth=2, width=16).eval()
    with torch.no_grad():
        model.l0.bias.fill_(2.0)  # maps around intensity 2, so that intensities are not all clamped
    return model


@pytest.fixture
def store(tmp_path):
    return EngineStore(tmp_path / "engines")


@pytest.fixture
def exports(monkeypatch):
    """Counts ONNX exports."""
    calls = []
    original = export.onnx_model_bytes

    def counting(model, crop_size=256):
        calls.append(crop_size)
        return original(model, crop_size)

    monkeypatch.setattr(export, "onnx_model_bytes", counting)
    return calls


def test_store_round_trip_and_damage(store):
    key = {"engine": "x", "weights": "abc"}
    assert store.get(key) is None
    entry = store.put(key, facts={"n": 1}, artifact="blob.bin", write=lambda p: p.write_bytes(b"12345"))
    again = store.get(key)
    assert again.artifact.read_bytes() == b"12345" and again.facts == {"n": 1}
    entry.artifact.write_bytes(b"12x45")  # damaged on disk
    assert store.get(key) is None and not store.folder(key).exists()
    store.put(key, facts={"n": 2})
    (store.folder(key) / "entry.json").write_text("{not json")
    assert store.get(key) is None
    assert store.get({"engine": "x", "weights": "other"}) is None


def test_weights_digest_follows_the_values():
    a, b = _model(0), _model(0)
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.conv1.weight[0, 0, 0, 0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_probe_crops_are_faces_and_fixed():
    crops = probe_crops(4)
    assert crops.shape == (4, 256, 256, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops, probe_crops(4))
    assert 40 < crops.mean() < 220 and crops.std() > 20
    # a smaller model's probe faces are the same registered faces at its size (they were once
    # registered for 256 and cut to the top-left corner, so the accuracy check saw no face)
    small = probe_crops(4, crop_size=128)
    assert small.shape == (4, 128, 128, 3)
    halved = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_AREA) for c in crops])
    assert np.abs(small.astype(float) - halved).mean() < 6
    assert np.abs(small.astype(float) - crops[:, :128, :128]).mean() > 20


def test_reference_engine_is_the_release_computation():
    model = _model()
    crops = probe_crops(3).copy()
    engine = create_engine("torch", model)
    with torch.inference_mode():
        want = model(torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0))[-1].numpy()
    np.testing.assert_array_equal(engine(crops), want)
    assert engine.accuracy is None


@needs_onnx
def test_auto_picks_onnx_without_native_bf16_and_builds_it_once(store, exports, monkeypatch):
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    model = _model()
    first = create_engine("auto", model, store=store)
    assert first.name == "onnxruntime float32" and first.accuracy.worst < 1e-3 and len(exports) == 1
    second = create_engine("auto", model, store=store)
    assert second.name == first.name and len(exports) == 1  # reused from the store
    crops = probe_crops(2)
    np.testing.assert_allclose(second(crops), create_engine("torch", model)(crops), atol=1e-4)

    changed = _model(seed=1)  # other weights: another entry
    create_engine("auto", changed, store=store)
    assert len(exports) == 2

    for path in store.root.glob("*/model.onnx"):  # a damaged export is rebuilt, not used
        path.write_bytes(path.read_bytes()[:1000])
    rebuilt = create_engine("auto", model, store=store)
    assert len(exports) == 3 and rebuilt.name == "onnxruntime float32"
    np.testing.assert_allclose(rebuilt(crops), create_engine("torch", model)(crops), atol=1e-4)


def test_auto_picks_bfloat16_where_native(store, monkeypatch):
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    if not hardware.cpu_has_native_bf16():  # do not run emulated bfloat16: check the choice only
        monkeypatch.setattr(
            engines,
            "_torch_fast",
            lambda model, device, crop_size, *stored: engines.Engine(
                "pytorch bfloat16, fused, TorchScript", create_engine("torch", model), 4
            ),
        )
    engine = create_engine("auto", _model(), store=store)
    assert engine.name.startswith("pytorch bfloat16") and engine.batch_size == 4
    assert engine.accuracy.accepted


def test_auto_passes_over_an_engine_beyond_the_bound(store, monkeypatch, caplog):
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(engines, "_available", lambda *modules: False)  # no onnxruntime here
    monkeypatch.setattr(engines, "compare", lambda *a, **k: AccuracyReport(0.3, 0.1, 0.2, 16, 0.05))
    engine = create_engine("auto", _model(), store=store)
    assert engine.name == "pytorch float32 (reference)"
    assert "not using pytorch float32, fused" in caplog.text
    with pytest.raises(EngineUnavailable, match="pip install onnxruntime"):
        create_engine("onnx", _model(), store=store)


@needs_onnx
def test_passing_over_is_only_a_warning_when_nothing_fast_is_left(store, exports, monkeypatch, caplog):
    """The bfloat16 engine beyond the bound and ONNX Runtime within it (the bundled model on an
    AVX-512 BF16 CPU): the user is told as information, not warned on every run."""
    import logging

    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    real = engines.compare

    def compare(engine, reference, crops, max_error):
        if engine.name.startswith("pytorch"):
            return AccuracyReport(0.3, 0.1, 0.2, 16, max_error)
        return real(engine, reference, crops, max_error)

    monkeypatch.setattr(engines, "compare", compare)
    with caplog.at_level(logging.INFO, logger="aumaps.runtime.engines"):
        engine = create_engine("auto", _model(), store=store)
    assert engine.name.startswith("onnxruntime float32")
    passed = [r for r in caplog.records if "not using pytorch" in r.getMessage()]
    assert [r.levelno for r in passed] == [logging.INFO] and "using onnxruntime" in passed[0].getMessage()


def test_the_accuracy_check_is_kept(store, monkeypatch):
    calls = []
    real = engines.compare
    monkeypatch.setattr(engines, "compare", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = _model()
    create_engine("fast", model, store=store)
    create_engine("fast", model, store=store)
    assert len(calls) == 1


@needs_onnx
def test_int8_guard_refuses_a_model_beyond_the_bound_and_keeps_one_within(store, monkeypatch):
    from aumaps.runtime.quantize import Refused, quantize_int8

    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    model = _model()
    calibration, held_out = probe_crops(16, seed=1), probe_crops(8, seed=2)
    with pytest.raises(Refused) as refused:
        quantize_int8(model, calibration, held_out, max_error=0.0, store=store)
    accuracy = refused.value.result.accuracy
    assert 0 < accuracy.mean <= accuracy.worst and not accuracy.accepted and accuracy.n == 8
    with pytest.raises(EngineUnavailable, match="aumaps quantize"):
        create_engine("int8", model, store=store)  # nothing was kept

    bound = accuracy.worst + 0.01
    result = quantize_int8(model, calibration, held_out, max_error=bound, store=store)
    assert result.accepted and result.path.is_file() and result.accuracy.worst == pytest.approx(accuracy.worst)
    int8 = create_engine("int8", model, max_error=bound, store=store)
    got = intensities_of(int8(held_out))
    want = intensities_of(create_engine("torch", model)(held_out))
    assert np.abs(got - want).max() == pytest.approx(accuracy.worst, abs=1e-6)
    assert create_engine("auto", model, max_error=bound, store=store).name.startswith("onnxruntime int8")
    # under a stricter bound the kept model is refused, and auto goes on to float32
    with pytest.raises(EngineUnavailable, match="beyond the bound"):
        create_engine("int8", model, max_error=accuracy.worst / 2, store=store)
    assert create_engine("auto", model, max_error=accuracy.worst / 2, store=store).name == "onnxruntime float32"


def test_fast_engine_computes_stacked_networks_right(store, monkeypatch):
    """oneDNN Graph fusion miscomputes a traced two-stack hourglass in batches (maps 0.13 off
    here, 4.5 on the bundled model's intensities); the fast engine then runs it eagerly. The
    check (seconds) is made once and kept in the store."""
    checks = []
    real = engines._same_maps
    monkeypatch.setattr(engines, "_same_maps", lambda *a: checks.append(1) or real(*a))
    torch.manual_seed(0)
    model = AUHourglass(num_aus=5, num_stacks=2, depth=2, width=16).eval()
    with torch.no_grad():
        model.l1.bias.fill_(2.0)
    crops = probe_crops(8, crop_size=64).copy()
    want = create_engine("torch", model, crop_size=64)(crops)
    fast = create_engine("fast", model, crop_size=64, store=store)
    n = fast.batch_size
    tolerance = 0.05 if "bfloat16" in fast.name else 1e-3
    for _ in range(3):  # TorchScript optimises a graph on its second call
        np.testing.assert_allclose(fast(crops[:n]), want[:n], atol=tolerance)
    np.testing.assert_allclose(fast(crops[:1]), want[:1], atol=tolerance)
    again = create_engine("fast", model, crop_size=64, store=store)
    assert checks == [1] and again.name == fast.name
    np.testing.assert_allclose(again(crops[:n]), want[:n], atol=tolerance)


def test_deployable_net_scales_inputs_once():
    model = _model()
    crops = torch.from_numpy(probe_crops(2).copy())
    with torch.inference_mode():
        want = model(crops.permute(0, 3, 1, 2).float() / 255.0)[-1]
        got = DeployableNet(model)(crops)
    torch.testing.assert_close(got, want)
    with pytest.raises(TypeError, match="uint8"):
        DeployableNet(model)(crops.float())


def test_the_command_line_offers_every_engine():
    from aumaps.cli import ENGINES
    from aumaps.runtime import BACKENDS

    assert tuple(ENGINES) == BACKENDS
