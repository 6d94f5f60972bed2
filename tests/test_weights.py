"""Checkpoint files: our format round trips, the release's layout loads, every failure is a
clear WeightsError, and the download never leaves a partial file. No test uses the network."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import pytest
import torch

from aumaps.codec import AUHeatmapCodec
from aumaps.model import AUHourglass
from aumaps.weights import (
    OFFICIAL_AUS,
    OFFICIAL_URL,
    WeightsError,
    cache_dir,
    download_official,
    load_checkpoint,
    save_checkpoint,
)

SMALL = {"num_aus": 5, "num_stacks": 1, "depth": 2, "width": 32}
UNREACHABLE = "http://127.0.0.1:9/AUdetector.pth.tar"


class SneakyDict(collections.OrderedDict):
    """A dict subclass: unpickling it would need an arbitrary global."""


def randomized(model: AUHourglass, seed: int = 0) -> AUHourglass:
    """``model`` with random weights and non-trivial BatchNorm statistics, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith("running_var"):
                value.copy_(0.5 + torch.rand(value.shape, generator=gen))
            elif value.is_floating_point():
                value.copy_(0.2 * torch.randn(value.shape, generator=gen))
            else:
                value.fill_(int(torch.randint(1, 100, (1,), generator=gen)))
    return model.eval()


def save_release_style(path: Path, model: AUHourglass, bare: bool = False, drop_tracked: bool = True) -> dict:
    """Write ``model`` as the BMVC 2018 file is laid out: ``module.`` keys, optionally no
    ``num_batches_tracked``, inside ``{"state_dict": ..., "epoch": ...}`` unless ``bare``."""
    sd = {
        f"module.{k}": v.clone()
        for k, v in model.state_dict().items()
        if not (drop_tracked and k.endswith("num_batches_tracked"))
    }
    torch.save(sd if bare else {"state_dict": sd, "epoch": 10}, path)
    return sd


def forward(model: AUHourglass, size: int = 64) -> torch.Tensor:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        return model(x)[-1]


# --- our own format ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, aus",
    [
        (SMALL, (6, 10, 12, 14, 17)),
        ({"num_aus": 12, "num_stacks": 2, "depth": 3, "width": 128}, (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)),
    ],
)
def test_aumaps_checkpoint_round_trips_bit_identically(tmp_path, config, aus) -> None:
    model = randomized(AUHourglass(**config), seed=1)
    codec = AUHeatmapCodec(aus, sigma=1.5, sigma_growth=0.1, window=5.0, peak_threshold=0.25)
    card = {"name": "test model", "trained_on": "nothing", "crop_size": 256, "tags": ["a", "b"], "note": None}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, list(aus), codec=codec, card=card)

    assert path == tmp_path / "sub" / "model.pt"
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left behind
    ckpt = load_checkpoint(path)

    assert ckpt.kind == "aumaps"
    assert ckpt.path == path
    assert ckpt.aus == aus
    assert isinstance(ckpt.codec, AUHeatmapCodec) and ckpt.codec.to_dict() == codec.to_dict()
    assert ckpt.card == card
    assert ckpt.model.config == config
    assert not ckpt.model.training
    original, loaded = model.state_dict(), ckpt.model.state_dict()
    assert original.keys() == loaded.keys()
    for key in original:
        assert torch.equal(original[key], loaded[key]), key
    assert torch.equal(forward(ckpt.model), forward(model))


def test_aumaps_file_holds_only_plain_types(tmp_path) -> None:
    model = randomized(AUHourglass(**SMALL))
    path = save_checkpoint(tmp_path / "m.pt", model, OFFICIAL_AUS)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "aumaps-checkpoint"
    assert payload["format_version"] == 1
    assert payload["arch"] == SMALL
    assert payload["aus"] == [6, 10, 12, 14, 17]
    assert payload["codec"] is None and payload["card"] is None
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in payload["state_dict"].values())
    assert load_checkpoint(path).card == {}


def test_save_rejects_mismatched_aus_and_non_plain_values(tmp_path) -> None:
    model = AUHourglass(**SMALL)
    with pytest.raises(WeightsError, match="5 AU channels"):
        save_checkpoint(tmp_path / "m.pt", model, (1, 2, 4))
    with pytest.raises(WeightsError, match="codec"):
        save_checkpoint(tmp_path / "m.pt", model, OFFICIAL_AUS, codec={"sigma": torch.tensor(2.0)})
    with pytest.raises(WeightsError, match="card"):
        save_checkpoint(tmp_path / "m.pt", model, OFFICIAL_AUS, card={"path": Path("x")})
    assert list(tmp_path.iterdir()) == []


def test_requested_aus_must_match_the_checkpoint(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", AUHourglass(**SMALL), OFFICIAL_AUS)
    assert load_checkpoint(path, aus=[6, 10, 12, 14, 17]).aus == OFFICIAL_AUS
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path, aus=(1, 2, 4, 5, 6))
    assert "[6, 10, 12, 14, 17]" in str(err.value) and "[1, 2, 4, 5, 6]" in str(err.value)


def test_three_channel_checkpoint_with_five_aus_is_refused(tmp_path) -> None:
    model = AUHourglass(**{**SMALL, "num_aus": 3})
    ours = save_checkpoint(tmp_path / "ours.pt", model, (1, 2, 4))
    theirs = tmp_path / "theirs.pth.tar"
    save_release_style(theirs, model)
    for path in (ours, theirs):
        with pytest.raises(WeightsError) as err:
            load_checkpoint(path, aus=OFFICIAL_AUS)
        message = str(err.value)
        assert "3 AU channels" in message and "expects 5" in message and str(path) in message


def test_last_layer_mismatch_says_how_many_channels(tmp_path) -> None:
    path = tmp_path / "inconsistent.pt"
    save_checkpoint(path, AUHourglass(**{**SMALL, "num_aus": 3}), (1, 2, 4))
    payload = torch.load(path, weights_only=True)
    payload["arch"]["num_aus"] = 5
    payload["aus"] = list(OFFICIAL_AUS)
    torch.save(payload, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "l0.weight: expected (5, 32, 1, 1), found (3, 32, 1, 1)" in message
    assert "checkpoint has 3 AU channels, the model/AU list expects 5" in message


# --- the release's layout ----------------------------------------------------------------


@pytest.mark.parametrize("bare", [False, True])
def test_release_layout_loads_and_infers_the_architecture(tmp_path, bare) -> None:
    model = randomized(AUHourglass(**SMALL), seed=2)
    path = tmp_path / "release.pth.tar"
    sd = save_release_style(path, model, bare=bare)
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "official"
    assert ckpt.model.config == SMALL
    assert ckpt.aus == OFFICIAL_AUS
    assert ckpt.codec.to_dict() == AUHeatmapCodec(OFFICIAL_AUS).to_dict()  # the release states none: defaults
    assert ckpt.card == {"name": "release.pth.tar"}  # not the published architecture
    loaded = ckpt.model.state_dict()
    for key, value in sd.items():
        assert torch.equal(loaded[key.removeprefix("module.")], value), key
    assert torch.equal(forward(ckpt.model), forward(model))


def test_release_layout_with_several_stacks(tmp_path) -> None:
    config = {"num_aus": 5, "num_stacks": 2, "depth": 3, "width": 64}
    path = tmp_path / "fan2.pth.tar"
    save_release_style(path, randomized(AUHourglass(**config)), drop_tracked=False)
    assert load_checkpoint(path).model.config == config


def test_foreign_file_with_unknown_aus_asks_for_an_aumaps_checkpoint(tmp_path) -> None:
    path = tmp_path / "twelve.pth.tar"
    save_release_style(path, AUHourglass(**{**SMALL, "num_aus": 12}))
    with pytest.raises(WeightsError, match=r"12 AU channels.*aumaps checkpoint"):
        load_checkpoint(path)


def test_mid_layer_shape_mismatch_names_the_key(tmp_path) -> None:
    path = tmp_path / "bad.pth.tar"
    sd = {f"module.{k}": v for k, v in AUHourglass(**SMALL).state_dict().items()}
    sd["module.m0.b2_1.conv2.weight"] = torch.zeros(16, 16, 1, 1)
    torch.save({"state_dict": sd}, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    assert "m0.b2_1.conv2.weight: expected (16, 16, 3, 3), found (16, 16, 1, 1)" in message
    assert "AU channels" not in message


def test_unexpected_and_missing_keys_are_errors(tmp_path) -> None:
    sd = {f"module.{k}": v for k, v in AUHourglass(**SMALL).state_dict().items()}
    extra = tmp_path / "extra.pth.tar"
    torch.save({"state_dict": {**sd, "module.head.weight": torch.zeros(3)}}, extra)
    with pytest.raises(WeightsError, match=r"Unexpected keys: head\.weight"):
        load_checkpoint(extra)

    missing = tmp_path / "missing.pth.tar"
    del sd["module.conv3.bn2.running_mean"]
    torch.save({"state_dict": sd}, missing)
    with pytest.raises(WeightsError, match=r"Missing keys: conv3\.bn2\.running_mean"):
        load_checkpoint(missing)


def test_aumaps_checkpoint_is_loaded_strictly(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", AUHourglass(**SMALL), OFFICIAL_AUS)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["extra.bias"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(WeightsError, match=r"Unexpected keys: extra\.bias"):
        load_checkpoint(path)


def test_state_dict_of_something_else_is_refused(tmp_path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="does not look like an AU hourglass"):
        load_checkpoint(path)
    torch.save({"epoch": 3, "optimizer": "adam"}, path)
    with pytest.raises(WeightsError, match="neither an aumaps checkpoint nor a state dict"):
        load_checkpoint(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="holds a list"):
        load_checkpoint(path)


# --- files that are not safe checkpoints -------------------------------------------------


@pytest.mark.parametrize(
    "payload, culprit",
    [
        (SneakyDict(weight=torch.zeros(1)), "SneakyDict"),
        ({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, "argparse.Namespace"),
    ],
)
def test_pickled_python_objects_are_refused(tmp_path, payload, culprit) -> None:
    path = tmp_path / "evil.pth.tar"
    torch.save(payload, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    assert "not a safe PyTorch checkpoint" in message and "refuses to unpickle" in message
    assert culprit in message


@pytest.mark.parametrize("content", [b"hello, this is not a checkpoint\n", b""])
def test_non_checkpoint_files_are_refused(tmp_path, content) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a safe PyTorch checkpoint") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_missing_file_is_named(tmp_path) -> None:
    path = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(WeightsError, match="does not exist") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


# --- cache and download ------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AUMAPS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "aumaps"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "aumaps"
    monkeypatch.setenv("AUMAPS_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_download_copies_into_the_cache_once(monkeypatch, tmp_path) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUMAPS_CACHE", str(cache))
    source = tmp_path / "served" / "AUdetector.pth.tar"
    source.parent.mkdir()
    source.write_bytes(b"\x00weights\xff" * 1000)

    path = download_official(url=source.as_uri())
    assert path == cache / "AUdetector.pth.tar"
    assert path.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["AUdetector.pth.tar"]

    source.unlink()
    assert download_official(url=source.as_uri()) == path  # served from the cache
    assert download_official(url=UNREACHABLE) == path


def test_download_to_explicit_destination(tmp_path) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"abc")
    dest = tmp_path / "deep" / "dir" / "w.bin"
    assert download_official(dest, url=source.as_uri()) == dest
    assert dest.read_bytes() == b"abc"


def test_failed_download_explains_the_manual_route_and_leaves_nothing(monkeypatch, tmp_path) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUMAPS_CACHE", str(cache))
    with pytest.raises(WeightsError) as err:
        download_official(url=UNREACHABLE, timeout=5)
    message = str(err.value)
    assert "failed" in message and "offline" in message
    assert UNREACHABLE in message
    assert str(cache / "AUdetector.pth.tar") in message
    assert "--weights" in message
    assert list(cache.iterdir()) == []

    with pytest.raises(WeightsError, match="--weights"):
        download_official(url=(tmp_path / "absent.bin").as_uri())
    assert list(cache.iterdir()) == []


def test_official_loads_from_the_cache_without_network(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AUMAPS_CACHE", str(tmp_path))
    model = randomized(AUHourglass(**SMALL), seed=3)
    save_release_style(tmp_path / "AUdetector.pth.tar", model)
    ckpt = load_checkpoint("official", url=UNREACHABLE)
    assert ckpt.path == tmp_path / "AUdetector.pth.tar"
    assert ckpt.aus == OFFICIAL_AUS
    assert torch.equal(forward(ckpt.model), forward(model))


def test_official_published_card(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AUMAPS_CACHE", str(tmp_path))
    sd = {f"module.{k}": v for k, v in AUHourglass().state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 10}, tmp_path / "AUdetector.pth.tar")
    ckpt = load_checkpoint("official", url=UNREACHABLE)
    assert {k: ckpt.card[k] for k in ("name", "trained_on", "source")} == {
        "name": "BMVC 2018 release (AUdetector.pth.tar)",
        "trained_on": "BP4D (FERA 2015)",
        "source": OFFICIAL_URL,
    }
    # the registry's card comes with it: licence, paper, input normalisation
    assert ckpt.card["registry"] == "official" and "BMVC 2018" in ckpt.card["paper"]
    assert "licence" in ckpt.card and "/ 255" in ckpt.card["input"]


def test_damaged_official_download_says_to_delete_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AUMAPS_CACHE", str(tmp_path))
    (tmp_path / "AUdetector.pth.tar").write_text("<html>404</html>")
    with pytest.raises(WeightsError, match=r"delete .*AUdetector.pth.tar"):
        load_checkpoint("official", url=UNREACHABLE)


def test_official_download_failure_is_a_weights_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AUMAPS_CACHE", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="--weights"):
        load_checkpoint("official", url=UNREACHABLE)


def test_bundled_default_model_states_what_it_is() -> None:
    from aumaps.aus import AU_SETS
    from aumaps.weights import DEFAULT_WEIGHTS

    ckpt = load_checkpoint("default")
    assert ckpt.path == DEFAULT_WEIGHTS and ckpt.kind == "aumaps"
    assert ckpt.aus == AU_SETS["openface"] and ckpt.model.config["width"] == 96  # OpenFace's 17, its order
    assert (ckpt.codec.crop_size, ckpt.codec.map_size, ckpt.codec.sigma) == (128, 32, 1.0)  # travels with it
    # its readout: ten readings a face, the calibration fitted for them, and the card says so
    assert ckpt.codec.flip_test and ckpt.codec.shift_test and ckpt.codec.readings() == 10
    assert "(flip test)" in ckpt.card["calibration"] and "(shift test)" in ckpt.card["calibration"]
    card = ckpt.card
    assert "synthetic" in card["trained_on"] and "no real AU data" in card["trained_on"]
    assert "astronaut" in card["sources"] and "grace_hopper" in card["sources"] and "public domain" in card["sources"]
    assert "MIT" in card["licence"] and "CC0" in card["licence"]
    assert card["use"] and "clinical" in card["not_for"]


def test_codec_sizes_the_network_cannot_honour_are_errors(tmp_path) -> None:
    model = AUHourglass(**SMALL)
    for codec, match in (
        (AUHeatmapCodec(OFFICIAL_AUS, crop_size=256, map_size=32), "quarter of its input"),
        (AUHeatmapCodec(OFFICIAL_AUS, crop_size=200, map_size=50), "multiple of"),
    ):
        path = save_checkpoint(tmp_path / "m.pt", model, OFFICIAL_AUS, codec=codec)
        with pytest.raises(WeightsError, match=match):
            load_checkpoint(path)
    path = save_checkpoint(tmp_path / "m.pt", model, OFFICIAL_AUS, codec=AUHeatmapCodec((6, 12, 10, 14, 17)))
    with pytest.raises(WeightsError, match="codec lists AUs"):
        load_checkpoint(path)
    # a smaller crop the network can honour: registration frames the face the same way in it
    small = AUHeatmapCodec(OFFICIAL_AUS, crop_size=128, map_size=32)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "s.pt", model, OFFICIAL_AUS, codec=small))
    assert (ckpt.codec.crop_size, ckpt.codec.map_size) == (128, 32)


def test_pretrained_registry_cards() -> None:
    from aumaps.aus import AU_SETS
    from aumaps.pretrained import get_pretrained, list_pretrained

    names = [entry.name for entry in list_pretrained()]
    assert names == ["default", "official"]
    default = get_pretrained("default")
    assert default.bundled and default.path().is_file() and default.aus == AU_SETS["openface"]
    card = default.card()
    assert {"source", "sha256", "licence", "aus", "input", "paper", "trained_on"} <= set(card)
    assert "/ 255" in card["input"] and "128x128" in card["input"] and "BMVC 2018" in card["paper"]
    # the provenance of every training image, and the licence that follows from it
    assert "astronaut" in card["trained_on"] and "grace_hopper" in card["trained_on"]
    assert "public domain" in card["trained_on"] and "no real AU data" in card["trained_on"]
    assert "MIT" in card["licence"] and "public domain" in card["licence"]
    assert get_pretrained("official").url.endswith("AUdetector.pth.tar")
    with pytest.raises(KeyError, match="registered: default, official"):
        get_pretrained("nope")


def test_bundled_file_that_does_not_match_its_checksum_is_refused(tmp_path, monkeypatch) -> None:
    from aumaps import pretrained

    fake = tmp_path / "aumaps-demo.pt"
    save_checkpoint(fake, AUHourglass(**SMALL), OFFICIAL_AUS)
    entry = pretrained.get_pretrained("default")
    monkeypatch.setattr(type(entry), "path", lambda self: fake)
    with pytest.raises(WeightsError, match="SHA-256"):
        load_checkpoint("default")


# --- averaging (model soups) ---------------------------------------------------------------


def test_average_is_the_mean_of_the_weights_and_drops_the_calibration(tmp_path, capsys) -> None:
    from aumaps.calibrate import MapCalibration
    from aumaps.cli import main
    from aumaps.weights import average_checkpoints

    aus = (6, 10, 12, 14, 17)
    models = [randomized(AUHourglass(**SMALL), seed=s) for s in (1, 2, 3)]
    paths = []
    for i, model in enumerate(models):
        calibration = MapCalibration(1.0 + i, 0.1 * i)
        codec = AUHeatmapCodec(aus, sigma=1.5, calibration=calibration, flip_test=bool(i), shift_test=i == 2)
        card = {"name": f"run {i}", "calibration": "fitted somewhere", "val_icc": 0.5 + i, "epochs_trained": i}
        paths.append(save_checkpoint(tmp_path / f"m{i}.pt", model, aus, codec, card))

    out = average_checkpoints(paths, tmp_path / "soup.pt")
    soup = load_checkpoint(out)
    states = [m.state_dict() for m in models]
    for key, value in soup.model.state_dict().items():
        if value.is_floating_point():
            expected = (states[0][key].double() + states[1][key].double() + states[2][key].double()) / 3
            assert torch.allclose(value.double(), expected, atol=1e-6), key
        else:  # BatchNorm's batch counts: the last file's
            assert torch.equal(value, states[2][key]), key
    # the calibration and the readings were fitted on one network's maps: the mean is not calibrated
    assert soup.codec.calibration is None and soup.codec.sigma == 1.5
    assert soup.codec.flip_test is False and soup.codec.shift_test is False
    assert soup.card == {"name": "run 2", "averaged_from": [str(p) for p in paths]}

    # train.init given the list starts from the same mean
    from aumaps.train import _initialise

    fresh = AUHourglass(**SMALL)
    _initialise(fresh, [str(p) for p in paths], aus)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, soup.model.state_dict()[key]), key

    # the CLI is the same function
    assert main(["average", str(paths[0]), str(paths[1]), "--out", str(tmp_path / "cli.pt")]) == 0
    assert "not calibrated" in capsys.readouterr().out
    two = load_checkpoint(tmp_path / "cli.pt").model.state_dict()
    key = next(k for k, v in two.items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(two[key].double(), (states[0][key].double() + states[1][key].double()) / 2, atol=1e-6)


def test_average_refuses_checkpoints_of_different_networks(tmp_path) -> None:
    from aumaps.weights import average_checkpoints

    aus = (6, 10, 12, 14, 17)
    a = save_checkpoint(tmp_path / "a.pt", AUHourglass(**SMALL), aus)
    wider = save_checkpoint(tmp_path / "wider.pt", AUHourglass(**{**SMALL, "width": 64}), aus)
    other_aus = save_checkpoint(tmp_path / "aus.pt", AUHourglass(**SMALL), (1, 2, 4, 6, 12))
    sharper = save_checkpoint(tmp_path / "sigma.pt", AUHourglass(**SMALL), aus, AUHeatmapCodec(aus, sigma=3.0))
    for other, what in ((wider, "architecture"), (other_aus, "AUs"), (sharper, "codec")):
        with pytest.raises(WeightsError, match=f"cannot average .*{other.name}.*their {what} differ"):
            average_checkpoints([a, other], tmp_path / "out.pt")
    for alone in ([a], str(a)):
        with pytest.raises(WeightsError, match="at least two"):
            average_checkpoints(alone, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
