"""Shared fixtures: real faces that ship with the test dependencies."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pandas as pd
import pytest
from skimage import data

from aumaps.aus import column_name
from aumaps.data.cache import build_cache
from aumaps.landmarks import FaceLandmarker


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory):
    """Tests never read or write the user's real cache (downloaded weights, built engines)."""
    import os

    folder = tmp_path_factory.mktemp("user-cache")
    previous = os.environ.get("AUMAPS_CACHE")
    os.environ["AUMAPS_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("AUMAPS_CACHE", None)
    else:
        os.environ["AUMAPS_CACHE"] = previous


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut: 512×512×3 uint8 RGB, one frontal face."""
    image = data.astronaut()
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """matplotlib's sample portrait of Grace Hopper (JPEG, 600×512, one face)."""
    return Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="session")
def landmarker() -> FaceLandmarker:
    """The default dlib detector + 68-point predictor, built once for the session."""
    return FaceLandmarker()


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, astronaut, landmarker):
    """16 shifted astronauts from 4 subjects with random labels, one label uncoded."""
    root = tmp_path_factory.mktemp("tiny")
    lm = landmarker(astronaut)[0].landmarks
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        dx, dy = rng.integers(-20, 21, 2)
        shifted = cv2.warpAffine(astronaut, np.float64([[1, 0, dx], [0, 1, dy]]), (512, 512))
        name = f"img{i:02d}.png"
        cv2.imwrite(str(root / name), cv2.cvtColor(shifted, cv2.COLOR_RGB2BGR))
        row = {
            "image": name,
            "subject": f"s{i % 4}",
            "sequence": "t1",
            "frame": i,
            "split": ["train", "train", "val", "test"][i % 4],
        }
        row.update({column_name(a): float(rng.integers(0, 6)) for a in (6, 10, 12, 14, 17)})
        row.update({f"x_{k}": lm[k, 0] + dx for k in range(68)})
        row.update({f"y_{k}": lm[k, 1] + dy for k in range(68)})
        rows.append(row)
    rows[0][column_name(12)] = np.nan
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return build_cache(root / "manifest.csv", root / "cache", aus=(6, 10, 12, 14, 17), progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for the module: the tiny networks of the tests gain nothing from
    two, and on a busy machine two threads spend their time waiting for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small random network (depth 2, width 32) whose maps vary around 2.5, saved as an
    aumaps checkpoint for the BP4D AUs."""
    import torch

    from aumaps.codec import AUHeatmapCodec
    from aumaps.model import AUHourglass
    from aumaps.weights import save_checkpoint

    torch.manual_seed(0)
    model = AUHourglass(num_aus=5, num_stacks=1, depth=2, width=32)
    with torch.no_grad():
        model.l0.bias.fill_(2.5)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(
        path,
        model,
        aus=(6, 10, 12, 14, 17),
        codec=AUHeatmapCodec("bp4d").to_dict(),
        card={"name": "tiny random test model", "trained_on": "nothing"},
    )
    return path
