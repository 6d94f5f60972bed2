"""The rows' confidence: calibrated on landmark error, monotone and bounded, fresh on every row."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aumaps.confidence import (
    CALIBRATION,
    FACE_BOX,
    FEATURES,
    Calibration,
    LandmarkConfidence,
    check_box,
    features_of,
)
from aumaps.geometry import interocular_distance
from aumaps.images import read_image
from aumaps.predict import AUEstimator
from aumaps.video import Frame, VideoAnalyser


@pytest.fixture(scope="module")
def checker(landmarker) -> LandmarkConfidence:
    return LandmarkConfidence(landmarker.predictor)


@pytest.fixture(scope="module")
def photos(astronaut, grace_hopper_path, landmarker):
    """The two real photos with dlib's landmarks."""
    out = []
    for image in (astronaut, read_image(grace_hopper_path)):
        out.append((np.ascontiguousarray(image), landmarker(image)[0].landmarks))
    return out


def test_the_calibration_is_monotone_and_bounded():
    recheck = np.r_[-1.0, 0.0, np.geomspace(1e-4, 100.0, 30), np.inf]
    appearance = np.r_[-np.inf, np.linspace(-10.0, 10.0, 31), np.inf]
    miss = np.r_[-0.5, np.linspace(0.0, 1.0, 21), 2.0]
    grid = np.stack(np.meshgrid(recheck, appearance, miss, indexing="ij"), axis=-1)
    p = CALIBRATION(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    assert np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0
    assert (np.diff(p, axis=0) <= 1e-12).all()  # more disagreement on the recheck: never more confidence
    assert (np.diff(p, axis=1) >= -1e-12).all()  # a more face-like registered image: never less
    assert (np.diff(p, axis=2) <= 1e-12).all()  # its window further from where a face belongs: never more
    assert p.max() > 0.99 and p.min() < 0.01  # and it spans the range
    unchecked = np.array([[np.nan, 1.0, 0.0], [0.01, np.nan, 0.0], [0.01, 1.0, np.nan]])
    assert (CALIBRATION(unchecked) == 0.0).all()  # a face that cannot be checked: no trust
    with pytest.raises(ValueError, match="fall with the recheck"):
        Calibration(weights=(1.0, 1.0, -1.0), bias=0.0)
    assert FEATURES == ("recheck", "appearance", "miss")


def test_features_of_measures():
    cx, cy, side = FACE_BOX
    at_home = features_of(np.array([[0.02, 0.8, cx, cy, side]]))[0]
    np.testing.assert_allclose(at_home, [0.02, 0.8, 0.0], atol=1e-12)  # the window where a face belongs
    half_off = features_of(np.array([[0.02, 0.8, cx + side / 2, cy, side]]))[0]
    assert half_off[2] == pytest.approx(1 - 1 / 3)  # half a side off: IoU 1/3
    nothing = features_of(np.array([[0.02, -3.0, np.nan, np.nan, np.nan]]))[0]
    assert nothing[2] == 1.0  # no window at all misses entirely


def _shifted(landmarks: np.ndarray, distance: float, directions: int) -> list[np.ndarray]:
    """The landmarks moved by ``distance`` IOD in ``directions`` directions around the circle."""
    iod = interocular_distance(landmarks)
    return [
        landmarks + distance * iod * np.array([np.cos(a), np.sin(a)])
        for a in np.arange(directions) * 2 * np.pi / directions
    ]


def test_good_landmarks_get_high_confidence_and_wrong_ones_low(photos, checker):
    rng = np.random.default_rng(0)
    for image, landmarks in photos:
        assert checker(image, [landmarks])[0] > 0.9
        iod, centre = interocular_distance(landmarks), landmarks.mean(axis=0)
        turn = cv2.getRotationMatrix2D(tuple(centre), 25.0, 1.0)
        wrong = {
            "turned 25 degrees": landmarks @ turn[:, :2].T + turn[:, 2],
            "scaled 1.4": (landmarks - centre) * 1.4 + centre,
            "jittered 0.2 IOD": landmarks + rng.normal(0, 0.2, landmarks.shape) * iod,
        }
        for name, moved in wrong.items():
            assert checker(image, [moved])[0] < 0.4, name
        # moved rigidly by 0.4 IOD: every direction below the usual 0.8 cut, most far below
        shifted = checker(image, _shifted(landmarks, 0.4, 8))
        assert shifted.max() < 0.5 and np.median(shifted) < 0.15
        # landmarks placed by the predictor on a part of the photo that is not a face
        height, width = image.shape[:2]
        corner = np.array([width * 0.02, height * 0.55])
        box = np.concatenate([corner, corner + 0.35 * min(height, width)])
        assert checker(image, [checker.predictor.predict(image, box)])[0] < 0.1


def test_synthetic_faces_with_exact_landmarks(checker, landmarker):
    """dlib's landmarks on synthetic faces, whose exact landmarks are known."""
    from aumaps.data.synth import make_identity, render, sample_intensities

    rng = np.random.default_rng(3)
    good, moved = [], []
    for index in range(6):
        image, truth = render(make_identity(index, seed=11), sample_intensities(rng), rng, nuisance=False, size=256)
        found = landmarker.predictor.predict(image, check_box(truth))
        error = np.linalg.norm(found - truth, axis=1).mean() / interocular_distance(truth)
        assert error < 0.06  # dlib's landmarks are right on these clean faces...
        good.append(checker(image, [found])[0])  # ...and trusted
        moved.extend(checker(image, _shifted(found, 0.4, 4)))
    assert min(good) > 0.9
    assert max(moved) < 0.5 and np.median(moved) < 0.15


def test_every_row_is_assessed_on_its_own_frame(tiny_weights, astronaut):
    """Tracked frames are checked on their own image: a frame whose face is covered loses its
    confidence while the detector's score stays the track's."""
    est = AUEstimator(weights=tiny_weights, backend="torch", batch_size=4)
    frames = []
    for i in range(24):
        matrix = cv2.getRotationMatrix2D((215.0, 115.0), 3.0 * np.sin(i / 4), 1.0)
        matrix[:, 2] += [100.0 - 215.0 + 2 * np.sin(i / 5), 120.0 - 115.0]
        image = cv2.warpAffine(astronaut, matrix, (320, 280), borderMode=cv2.BORDER_REFLECT)
        if i in (9, 10):  # the lower face covered by a hand-like blob for two frames
            cv2.ellipse(image, (100, 150), (40, 30), 0, 0, 360, (205, 160, 140), -1)
        frames.append(Frame(i, i / 10, image))
    results = list(VideoAnalyser(est, redetect_every=12).run(frames))
    assert len(results) == 24 and all(len(r.faces) == 1 for r in results)
    confidence = np.array([r.faces[0].confidence for r in results])
    assert ((confidence >= 0) & (confidence <= 1)).all()
    for result, frame in zip(results, frames, strict=True):
        again = est.confidence(frame.image, [result.faces[0].landmarks])[0]
        assert result.faces[0].confidence == pytest.approx(again, abs=1e-9)  # this frame's own check
    clean = np.delete(confidence, [9, 10])
    assert np.median(clean) > 0.9 and (clean > 0.8).mean() > 0.9
    assert confidence[[9, 10]].max() < clean.min()  # the covered frames are trusted least
    scores = {r.faces[0].detector_score for r in results[1:12]}
    assert len(scores) == 1  # the raw detector score is the latest detection's, kept in its own column
