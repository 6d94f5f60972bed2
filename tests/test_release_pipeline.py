"""A checkpoint in the published layout gives, on real photos, what the BMVC 2018 release gives.

The release's pipeline is re-stated here from its description with plain OpenCV, dlib and
``published_reference.reference_forward`` (no aumaps code): read with ``cv2.imread`` and turn
to RGB, take dlib's first detection (no upsampling) and its 68 landmarks, register landmarks
8, 36, 45 onto the fixed points with ``getAffineTransform`` + ``warpAffine``, divide by 255, run
the network, and take each map's maximum clamped to [0, 5].
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
import torch

from aumaps.predict import AUEstimator
from published_reference import published_layout, random_state_dict, reference_forward

S0 = np.array([[127.6475, 227.8161], [79.1608, 87.0376], [176.8392, 87.0376]], np.float32)


def _release(path: Path, state_dict: dict[str, torch.Tensor]):
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    detector = dlib.get_frontal_face_detector()
    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0], "models")
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    shape = predictor(image, detector(image)[0])
    coords = np.array([[float(shape.part(i).x), float(shape.part(i).y)] for i in range(68)])
    frame = cv2.warpAffine(image, cv2.getAffineTransform(np.float32(coords[[8, 36, 45]]), S0), (256, 256))
    x = torch.from_numpy(frame.transpose(2, 0, 1) / 255.0).float().unsqueeze(0)
    with torch.no_grad():
        maps = reference_forward(state_dict, x, num_stacks=1, depth=4)[-1][0]
    return maps.amax(dim=(1, 2)).clamp(0, 5).numpy(), maps.numpy(), coords


@pytest.fixture(scope="module")
def published_file(tmp_path_factory):
    sd = random_state_dict(published_layout(), seed=3)
    sd["l0.bias"] = torch.full((5,), 2.5)  # keep the maps inside (0, 5) so clamping hides nothing
    path = tmp_path_factory.mktemp("release") / "AUdetector.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 30}, path)
    return path, sd


@pytest.fixture(scope="module")
def photos(tmp_path_factory, grace_hopper_path):
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return [folder / "astronaut.jpg", grace_hopper_path]


def test_published_checkpoint_matches_the_release_pipeline(published_file, photos):
    path, sd = published_file
    estimator = AUEstimator(weights=path, backend="torch")
    assert estimator.aus == (6, 10, 12, 14, 17) and estimator.checkpoint.kind == "official"
    for photo in photos:
        expected, expected_maps, coords = _release(photo, sd)
        face = estimator.predict(photo)[0]
        np.testing.assert_array_equal(face.landmarks, coords)
        np.testing.assert_allclose(face.heatmaps, expected_maps, atol=2e-4)
        np.testing.assert_allclose(face.intensities, expected, atol=2e-4)
        assert np.ptp(expected) > 0.01  # the comparison is not between constants
