"""A short deterministic training run: the loss falls, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aumaps.codec import AUHeatmapCodec
from aumaps.data.cache import CropCache
from aumaps.data.dataset import AUHeatmapDataset
from aumaps.loss import heatmap_loss
from aumaps.train import load_config, train
from aumaps.weights import load_checkpoint

AUS = (6, 10, 12, 14, 17)


def _cfg(cache, out_dir, epochs=3, milestones=(2,)):
    return load_config(
        overrides={
            "data": {"cache": str(cache)},
            "model": {"num_stacks": 1, "depth": 2, "width": 16},
            "optim": {"lr": 1e-3},
            "schedule": {"milestones": list(milestones), "gamma": 0.5},
            "train": {
                "epochs": epochs,
                "batch_size": 4,
                "workers": 0,
                "amp": "auto",
                "seed": 7,
                "out_dir": str(out_dir),
            },
            "card": {"name": "tiny", "trained_on": "16 astronauts"},
        }
    )


def test_masked_loss_ignores_uncoded_maps():
    pred = torch.zeros(2, 3, 4, 4)
    target = torch.ones(2, 3, 4, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    assert heatmap_loss(pred, target, mask).item() == pytest.approx(1.0)
    target[0, 1] = 100.0  # masked: changes nothing
    assert heatmap_loss(pred, target, mask).item() == pytest.approx(1.0)


def test_peak_term_adds_the_squared_difference_of_the_maps_maxima():
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, 1, 2] = 3.0  # one Gaussian's peak of 3; the second map is empty (intensity 0)
    pred = target.clone()
    pred[0, 0, 1, 2] = 2.0  # the peak read 1 low: pixel error 1 on 1 of 16 pixels
    pred[0, 1, 0, 0] = 0.5  # a stray 0.5 where the intensity is 0
    mask = torch.ones(1, 2, dtype=torch.bool)
    plain = (1.0 / 16 + 0.25 / 16) / 2
    assert heatmap_loss(pred, target, mask).item() == pytest.approx(plain)
    assert heatmap_loss(pred, target, mask, peak_weight=0.1).item() == pytest.approx(plain + 0.1 * (1.0 + 0.25) / 2)
    assert heatmap_loss(target, target, mask, peak_weight=0.1).item() == 0.0  # still minimal at the target


def test_peak_term_in_halves_asks_for_both_peaks_of_a_bilateral_au():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 2, 0] = target[0, 0, 2, 3] = 3.0  # the two sides' centres
    pred = target.clone()
    pred[0, 0, 2, 3] = 1.0  # the right side's peak reads 2 low; the map's maximum is still 3
    mask = torch.ones(1, 1, dtype=torch.bool)
    plain = heatmap_loss(pred, target, mask).item()
    assert plain == pytest.approx(4.0 / 16)
    assert heatmap_loss(pred, target, mask, peak_weight=0.1).item() == pytest.approx(plain)
    halves = heatmap_loss(pred, target, mask, peak_weight=0.1, peak_split=2).item()
    assert halves == pytest.approx(plain + 0.1 * 4.0 / 2)
    with pytest.raises(ValueError, match="peak_split must be 1 to the map's width 4, got 0"):
        heatmap_loss(pred, target, mask, peak_weight=0.1, peak_split=0)


def test_au_weights_scale_each_aus_maps_and_bad_ones_are_named():
    from aumaps.train import _au_weights

    pred = torch.zeros(1, 3, 4, 4)
    target = torch.ones(1, 3, 4, 4)
    target[0, 1] = 2.0  # AU 2's maps are off by 2 everywhere: pixel error 4
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert heatmap_loss(pred, target, mask).item() == pytest.approx((1 + 4 + 1) / 3)
    weight = _au_weights({2: 3.0, 4: 0.0}, (1, 2, 4))
    assert weight.tolist() == [1.0, 3.0, 0.0]
    assert heatmap_loss(pred, target, mask, au_weight=weight).item() == pytest.approx((1 + 12 + 0) / 3)
    assert _au_weights({}, (1, 2, 4)) is None
    with pytest.raises(ValueError, match=r"loss.au_weights: 5 is not one of the trained AUs \[1, 2, 4\]"):
        _au_weights({5: 2.0}, (1, 2, 4))
    with pytest.raises(ValueError, match="the weight of AU 2 must be a number >= 0"):
        _au_weights({2: -1}, (1, 2, 4))
    with pytest.raises(ValueError, match="one weight per AU map"):
        heatmap_loss(pred, target, mask, au_weight=torch.ones(2))


def test_dataset_targets_follow_the_codec(tiny_cache):
    cache = CropCache(tiny_cache)
    codec = AUHeatmapCodec(AUS)
    ds = AUHeatmapDataset(cache, cache.indices("train"), codec, augment=None)
    item = ds[0]
    row = int(item["index"])
    expected, mask = codec.encode(cache.landmarks[row], cache.intensities[row])
    np.testing.assert_array_equal(item["heatmaps"].numpy(), expected)
    assert item["image"].shape == (3, 256, 256) and float(item["image"].max()) <= 1.0
    assert row == 0 and item["mask"].tolist() == [True, True, False, True, True]
    with pytest.raises(ValueError, match="no labels for AU"):
        AUHeatmapDataset(cache, cache.indices(), AUHeatmapCodec((1, 6)))


def test_loss_decreases_and_resume_is_bit_identical(tiny_cache, tmp_path):
    full = train(_cfg(tiny_cache, tmp_path / "full"), progress=False)
    log = pd.read_csv(full / "metrics.csv")
    assert list(log["epoch"]) == [1, 2, 3]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert {"val_loss", "val_icc", "val_mae", "samples_per_s"} <= set(log.columns)

    part = tmp_path / "part"
    train(_cfg(tiny_cache, part), progress=False, max_epochs=1)  # "killed" after epoch 1
    with pytest.raises(FileExistsError):
        train(_cfg(tiny_cache, part), progress=False)
    train(_cfg(tiny_cache, part), resume=True, progress=False)
    a = torch.load(full / "train_state.pt", weights_only=True)
    b = torch.load(part / "train_state.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    pd.testing.assert_frame_equal(
        log.drop(columns=["samples_per_s", "epoch_s"]),
        pd.read_csv(part / "metrics.csv").drop(columns=["samples_per_s", "epoch_s"]),
    )
    ckpt = load_checkpoint(full / "model.pt")
    assert ckpt.aus == AUS and ckpt.card["name"] == "tiny" and ckpt.codec.sigma == 1.0


def test_resume_with_a_longer_schedule_equals_a_run_started_with_it(tiny_cache, tmp_path):
    # a 1-epoch run with no LR drop, extended to 3 epochs with a drop after epoch 2
    short = train(_cfg(tiny_cache, tmp_path / "short", epochs=1, milestones=(9,)), progress=False)
    train(_cfg(tiny_cache, short, epochs=3, milestones=(2,)), resume=True, progress=False)
    fresh = train(_cfg(tiny_cache, tmp_path / "fresh", epochs=3, milestones=(2,)), progress=False)
    a = torch.load(short / "train_state.pt", weights_only=True)
    b = torch.load(fresh / "train_state.pt", weights_only=True)
    assert [h["lr"] for h in a["history"]] == [h["lr"] for h in b["history"]] == [1e-3, 1e-3, 5e-4]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_init_starts_from_a_checkpoint(tiny_cache, tmp_path):
    from aumaps.weights import WeightsError

    first = train(_cfg(tiny_cache, tmp_path / "first", epochs=1), progress=False)
    cfg = _cfg(tiny_cache, tmp_path / "second", epochs=1)
    cfg["optim"]["lr"] = 0.0  # no update: the model stays the one it started from
    cfg["train"]["init"] = str(first / "model.pt")
    second = train(cfg, progress=False)
    a, b = (
        load_checkpoint(first / "model.pt").model.state_dict(),
        load_checkpoint(second / "model.pt").model.state_dict(),
    )
    for key in a:
        if "running" not in key and "num_batches" not in key:  # BatchNorm statistics still move
            assert torch.equal(a[key], b[key]), key
    cfg = _cfg(tiny_cache, tmp_path / "third", epochs=1)
    cfg["train"]["init"] = str(first / "model.pt")
    cfg["model"]["width"] = 8  # narrower: not a growth (wider is, see the test below)
    with pytest.raises(WeightsError, match="does not fit"):
        train(cfg, progress=False)

    # other AUs: the shared ones' output channels are carried over (in the new order), new ones start fresh
    from aumaps.model import AUHourglass
    from aumaps.train import _initialise

    torch.manual_seed(3)
    other = AUHourglass(num_aus=3, num_stacks=1, depth=2, width=16)
    fresh = other.l0.weight.detach().clone()
    _initialise(other, str(first / "model.pt"), (12, 1, 6))
    assert torch.equal(other.l0.weight[0], a["l0.weight"][AUS.index(12)])
    assert torch.equal(other.l0.bias[2], a["l0.bias"][AUS.index(6)])
    assert torch.equal(other.l0.weight[1], fresh[1])
    assert torch.equal(other.conv1.weight, a["conv1.weight"])
    with pytest.raises(WeightsError, match="none of the configured"):
        _initialise(other, str(first / "model.pt"), (1, 2, 4))


def test_init_grows_a_checkpoint_into_more_stacks(tmp_path):
    # a 2-stack model started from a 1-stack checkpoint first computes exactly what the checkpoint did
    from aumaps.model import AUHourglass
    from aumaps.train import _initialise
    from aumaps.weights import WeightsError, save_checkpoint

    torch.manual_seed(0)
    one = AUHourglass(num_aus=3, num_stacks=1, depth=2, width=16).eval()
    for module in one.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    path = save_checkpoint(tmp_path / "one.pt", one, aus=(1, 6, 12))
    torch.manual_seed(1)
    two = AUHourglass(num_aus=3, num_stacks=2, depth=2, width=16)
    _initialise(two, str(path), (1, 6, 12))
    two.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = one(x)[0]
        got = two(x)
    assert len(got) == 2
    torch.testing.assert_close(got[0], want, rtol=0, atol=0)
    torch.testing.assert_close(got[1], want, rtol=1e-6, atol=1e-6)
    grown = two.state_dict()
    copied = [key for key in one.state_dict() if key.startswith(("m0.", "l0."))]
    assert copied and all(torch.equal(grown[key.replace("0.", "1.", 1)], one.state_dict()[key]) for key in copied)
    assert not two.bl0.weight.any() and not two.al0.weight.any()
    # fewer stacks than the checkpoint is not a growth: the layer check names it
    deeper = save_checkpoint(tmp_path / "two.pt", two, aus=(1, 6, 12))
    with pytest.raises(WeightsError, match="does not fit"):
        _initialise(AUHourglass(num_aus=3, num_stacks=1, depth=2, width=16), str(deeper), (1, 6, 12))


def test_init_widens_a_checkpoint_and_the_wider_model_first_computes_what_it_did(tmp_path):
    from aumaps.model import AUHourglass
    from aumaps.train import _initialise
    from aumaps.weights import save_checkpoint

    torch.manual_seed(0)
    narrow = AUHourglass(num_aus=3, num_stacks=2, depth=2, width=16)
    for module in narrow.modules():  # BatchNorm statistics and affines that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.1, 0.1)
    for link in (narrow.bl0, narrow.al0):
        torch.nn.init.normal_(link.weight, std=0.1)
    path = save_checkpoint(tmp_path / "narrow.pt", narrow.eval(), aus=(1, 6, 12))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = narrow(x)
    for stacks in (2, 3):  # wider, and wider and deeper at once
        torch.manual_seed(1)
        wide = AUHourglass(num_aus=3, num_stacks=stacks, depth=2, width=24)
        _initialise(wide, str(path), (1, 6, 12))
        with torch.no_grad():
            got = wide.eval()(x)
        for i in range(stacks):
            torch.testing.assert_close(got[i], want[min(i, 1)], rtol=1e-5, atol=1e-5)
        state = wide.state_dict()
        assert torch.equal(state["m0.b1_2.conv2.weight"][:4, :4], narrow.m0.b1_2.conv2.weight.detach()[:4, :4])
        new_rows = state["m0.b1_2.conv2.weight"][8:]  # the new channels start fresh, not at zero
        assert new_rows.abs().sum() > 0
        assert not state["l1.weight"][:, 16:].any() and not state["m0.b1_2.conv3.weight"][:16, 8:].any()
    # and they learn: one step of training moves the new channels' outgoing weights off zero
    wide.train()
    loss = sum(out.square().mean() for out in wide(x))
    loss.backward()
    assert wide.l1.weight.grad[:, 16:].abs().sum() > 0


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match=r"unknown configuration key 'train.epoch'"):
        load_config(overrides={"train": {"epoch": 3}})


def test_cli_train_evaluate_robustness(tiny_cache, tmp_path):
    import json

    import yaml

    from aumaps.cli import main

    cfg = _cfg(tiny_cache, tmp_path / "run", epochs=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--set", "train.epochs=2", "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2
    weights = str(tmp_path / "run" / "model.pt")
    assert (
        main(
            [
                "evaluate",
                "--weights",
                weights,
                "--data",
                str(tiny_cache),
                "--split",
                "all",
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["n_samples"] == 16 and report["counts"]["AU12"] == 15  # the uncoded label is masked
    assert (
        main(
            [
                "robustness",
                "--weights",
                weights,
                "--data",
                str(tiny_cache),
                "--split",
                "all",
                "--noise",
                "0",
                "5",
                "--out",
                str(tmp_path / "rob"),
            ]
        )
        == 0
    )
    assert (tmp_path / "rob" / "robustness.png").stat().st_size > 5000
    # misaligning the registration changes the predictions; no noise reproduces evaluate
    rob = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert rob["noise_iod_pct"] == [0.0, 5.0]
    assert rob["mae"]["mean"][0] == pytest.approx(report["mean"]["mae"], abs=1e-9)
    assert rob["mae"]["mean"][1] != rob["mae"]["mean"][0]


def test_schedules():
    from aumaps.train import _schedule

    step = _schedule({"name": "step", "milestones": [2, 4], "gamma": 0.5}, 6)
    assert [step(e) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cosine = _schedule({"name": "cosine", "warmup": 1}, 5)
    assert [round(cosine(e), 4) for e in range(5)] == [0.5, 1.0, 0.8536, 0.5, 0.1464]
    with pytest.raises(ValueError, match="step or cosine"):
        _schedule({"name": "linear"}, 3)


def test_weight_average_is_saved_and_resumes_bit_identically(tiny_cache, tmp_path):
    def cfg(out, epochs):
        c = _cfg(tiny_cache, out, epochs=epochs, milestones=())
        c["train"]["ema"] = 0.9
        return c

    full = train(cfg(tmp_path / "full", 2), progress=False)
    part = tmp_path / "part"
    train(cfg(part, 2), progress=False, max_epochs=1)
    train(cfg(part, 2), resume=True, progress=False)
    a = torch.load(full / "train_state.pt", weights_only=True)
    b = torch.load(part / "train_state.pt", weights_only=True)
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    saved = load_checkpoint(full / "model.pt").model.state_dict()
    raw = a["model"]
    averaged = {k.removeprefix("module."): v for k, v in a["ema"].items() if k != "n_averaged"}
    weight = "conv1.weight"
    assert torch.equal(saved[weight], averaged[weight]) and not torch.equal(saved[weight], raw[weight])
    with pytest.raises(ValueError, match=r"train.ema"):
        c = cfg(tmp_path / "bad", 1)
        c["train"]["ema"] = 1.5
        train(c, progress=False)


def test_float64_weights_need_float32_arithmetic():
    from aumaps.hardware import Precision, resolve_precision
    from aumaps.train import _dtype

    assert _dtype("float64", resolve_precision("fp32")) == torch.float64
    with pytest.raises(ValueError, match=r"needs train.amp: fp32"):
        _dtype("float64", Precision("bf16", torch.bfloat16, "cpu", False, "asked for"))
    with pytest.raises(ValueError, match="float32 or float64"):
        _dtype("float16", resolve_precision("fp32"))


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory):
    """A small synthetic set with labels for every catalogue AU (OpenFace's 17 among them)."""
    from aumaps.data.cache import build_cache
    from aumaps.data.synth import make_dataset

    root = tmp_path_factory.mktemp("synth17")
    manifest = make_dataset(
        root / "synth",
        n_subjects=4,
        frames_per_subject=4,
        sequence_length=2,
        seed=0,
        splits=(0.5, 0.25, 0.25),
        progress=False,
    )
    return build_cache(manifest, root / "cache", aus="all", progress=False)


def test_17_au_run_on_small_crops_resumes_bit_identically(synth_cache, tmp_path):
    """The bundled model's kind of run: OpenFace's 17 AUs, 128x128 crops and 32x32 maps from a
    256x256 cache, a moving average of the weights; killed after epoch 1 and resumed, it ends
    where an uninterrupted run ends."""

    def cfg(out):
        return load_config(
            overrides={
                "data": {"cache": str(synth_cache)},
                "aus": "openface",
                "codec": {"crop_size": 128, "map_size": 32, "sigma": 1.0, "sigma_growth": 0.1, "window": 3.0},
                "model": {"num_stacks": 1, "depth": 2, "width": 16},
                "optim": {"name": "adam", "lr": 1e-3},
                "schedule": {"name": "cosine", "warmup": 1},
                "train": {
                    "epochs": 2,
                    "batch_size": 4,
                    "workers": 0,
                    "amp": "auto",
                    "seed": 3,
                    "out_dir": str(out),
                    "ema": 0.9,
                },
            }
        )

    full = train(cfg(tmp_path / "full"), progress=False)
    train(cfg(tmp_path / "part"), progress=False, max_epochs=1)
    part = train(cfg(tmp_path / "part"), resume=True, progress=False)
    a = torch.load(full / "train_state.pt", weights_only=True)
    b = torch.load(part / "train_state.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ckpt = load_checkpoint(full / "model.pt")
    assert ckpt.aus == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
    assert (ckpt.codec.crop_size, ckpt.codec.map_size) == (128, 32)
    maps = ckpt.model(torch.zeros(1, 3, 128, 128))[-1]
    assert tuple(maps.shape) == (1, 17, 32, 32)
    bad = cfg(tmp_path / "bad")
    bad["codec"]["map_size"] = 64
    with pytest.raises(ValueError, match=r"quarter of codec.crop_size"):
        train(bad, progress=False)


def test_every_shipped_recipe_loads_and_each_stage_starts_from_another_recipes_output() -> None:
    """The recipes in ``configs/`` are how every stage of the bundled model is reproduced: each
    must load (no unknown key), and a stage's ``init`` must be the output of another recipe, so
    the chain can be rerun from ``configs/`` alone."""
    from pathlib import Path

    import aumaps

    root = Path(aumaps.__file__).parent / "configs"
    recipes = {str(path.relative_to(root)): load_config(path) for path in sorted(root.rglob("*.yaml"))}
    assert len(recipes) >= 10
    outputs = {str(Path(cfg["train"]["out_dir"]) / "best.pt"): name for name, cfg in recipes.items()}
    assert len(set(outputs)) == len(recipes), "two recipes write to the same folder"
    chained = {name: cfg["train"]["init"] for name, cfg in recipes.items() if cfg["train"].get("init")}
    assert chained["openface17-rev3.yaml"] == "runs/openface17-faces/best.pt"
    for name, inits in chained.items():
        for init in inits if isinstance(inits, list) else [inits]:  # a list: their mean
            assert init in outputs, f"{name} starts from {init}, which no recipe in configs/ writes"
            assert outputs[init] != name
