"""aumaps.data.synth: synthetic faces whose AU intensities and landmarks are known exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from aumaps import align
from aumaps.aus import CATALOGUE, centres, column_name
from aumaps.codec import AUHeatmapCodec
from aumaps.data import synth
from aumaps.data.manifest import SPLITS, landmarks_array, read_manifest
from aumaps.geometry import interocular_distance
from aumaps.landmarks import FaceLandmarker

BP4D = (6, 10, 12, 14, 17)


@pytest.fixture(scope="module")
def drawn() -> synth.Identity:
    """A procedural identity (no dlib needed), without glasses or a fringe."""
    return replace(synth.procedural_face(np.random.default_rng(7), "drawn"), look=synth.Look())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small data set: 6 subjects × 4 frames in sequences of 2."""
    out = tmp_path_factory.mktemp("synth")
    return synth.make_dataset(out, n_subjects=6, frames_per_subject=4, sequence_length=2, seed=3, progress=False)


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    ex = landmarks[45] - landmarks[36]
    iod = float(np.linalg.norm(ex))
    ex /= iod
    return ex, np.array([-ex[1], ex[0]]), iod


# ---------------------------------------------------------------- geometry


def test_displacement_table_covers_the_catalogue_and_keeps_the_axes() -> None:
    assert set(synth.DISPLACEMENTS) == set(CATALOGUE)
    for au, table in synth.DISPLACEMENTS.items():
        assert table or au == 45, f"AU{au} moves nothing"  # the blink closes each eye relatively
        assert 36 not in table and 45 not in table  # the face's axes and IOD never change
        assert all(0 <= i < 68 for i in table)
    # symmetric: the mirror of a moved landmark moves the mirrored way
    dx48, dy48 = synth.DISPLACEMENTS[12][48]
    assert synth.DISPLACEMENTS[12][54] == (-dx48, dy48)
    assert dx48 < 0 and dy48 < 0  # image-left corner: outwards (left) and up


def test_au12_moves_lip_corners_exactly_and_nothing_else(drawn: synth.Identity) -> None:
    image, lms = synth.render(drawn, {12: 4.0}, nuisance=False)
    neutral = drawn.landmarks
    ex, ey, iod = _face_axes(neutral)
    for i in (48, 54):
        dx, dy = synth.DISPLACEMENTS[12][i]
        expected = neutral[i] + 4.0 * iod * (dx * ex + dy * ey)
        np.testing.assert_allclose(lms[i], expected, atol=1e-9)
    moved = sorted(synth.DISPLACEMENTS[12])
    still = np.setdiff1d(np.arange(68), moved)
    np.testing.assert_array_equal(lms[still], neutral[still])  # eyes, brows, nose, chin...
    assert set(range(36, 48)) <= set(still)
    assert image.shape == drawn.image.shape and image.dtype == np.uint8


def test_intensities_compose_additively(drawn: synth.Identity) -> None:
    both = synth.displace_landmarks(drawn.landmarks, {12: 2.0, 26: 3.0})
    a = synth.displace_landmarks(drawn.landmarks, {12: 2.0})
    b = synth.displace_landmarks(drawn.landmarks, {26: 3.0})
    np.testing.assert_allclose(both - drawn.landmarks, (a - drawn.landmarks) + (b - drawn.landmarks))
    with pytest.raises(ValueError, match="outside"):
        synth.render(drawn, {12: 5.5}, nuisance=False)


def test_image_content_follows_the_landmarks(drawn: synth.Identity) -> None:
    """Green dots painted on the neutral lip corners and chin end up on the moved landmarks."""
    painted = drawn.image.copy()
    for i in (48, 54, 8):
        x, y = np.round(drawn.landmarks[i]).astype(int)
        cv2.circle(painted, (int(x), int(y)), 2, (0, 255, 0), -1)
    # re-centre the landmarks on the dots' pixel centres so that the dots mark them exactly
    lms = drawn.landmarks.copy()
    lms[[48, 54, 8]] = np.round(lms[[48, 54, 8]])
    face = replace(drawn, image=painted, landmarks=lms)
    image, moved = synth.render(face, {12: 4.0, 26: 3.0}, nuisance=False)
    greenness = image[..., 1].astype(float) - image[..., 0]
    for i in (48, 54, 8):
        shift = np.linalg.norm(moved[i] - lms[i])
        assert shift > 4.0  # the test means something
        x0, y0 = np.round(moved[i]).astype(int) - 8
        window = np.clip(greenness[y0 : y0 + 17, x0 : x0 + 17] - 60.0, 0, None)
        ys, xs = np.mgrid[y0 : y0 + 17, x0 : x0 + 17]
        found = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
        assert np.linalg.norm(found - moved[i]) <= 1.5, (i, found, moved[i])


def test_zero_intensities_give_back_the_neutral_face(drawn: synth.Identity) -> None:
    image, lms = synth.render(drawn, dict.fromkeys(CATALOGUE, 0.0), nuisance=False)
    np.testing.assert_array_equal(image, drawn.image)
    np.testing.assert_array_equal(lms, drawn.landmarks)


def test_au12_and_au14_look_different_at_the_lip_corners(drawn: synth.Identity) -> None:
    """They share heatmap centres, so the image, not the landmarks, must tell them apart."""
    smile, lms12 = synth.render(drawn, {12: 4.0}, nuisance=False)
    dimple, lms14 = synth.render(drawn, {14: 4.0}, nuisance=False)
    _, _, iod = _face_axes(drawn.landmarks)
    for i in (48, 54):
        assert np.linalg.norm(lms12[i] - lms14[i]) < 0.15 * iod  # both stay at the corner
    # appearance alone: each rendering against the same warp without strokes
    for intensities, lms, image in (({12: 4.0}, lms12, smile), ({14: 4.0}, lms14, dimple)):
        plain = synth._warp_image(drawn.image, drawn.landmarks, lms).astype(float)
        diff = np.abs(image.astype(float) - plain).sum(-1)
        for i in (48, 54):
            x, y = np.round(lms[i]).astype(int)
            r = int(0.2 * iod)
            assert diff[y - r : y + r, x - r : x + r].max() > 15, intensities
    # and the two differ where the dimple sits, beside the corners
    ex, ey, _ = _face_axes(drawn.landmarks)
    for i, side in ((48, -1), (54, 1)):
        spot = np.round(lms14[i] + side * 0.07 * iod * ex).astype(int)
        r = 3
        a = smile[spot[1] - r : spot[1] + r, spot[0] - r : spot[0] + r].astype(float)
        b = dimple[spot[1] - r : spot[1] + r, spot[0] - r : spot[0] + r].astype(float)
        assert np.abs(a - b).mean() > 8


def _mouth_width(lms: np.ndarray, ex: np.ndarray) -> float:
    return float((lms[54] - lms[48]) @ ex)


def test_au23_narrows_the_mouth_and_au24_presses_the_lips(drawn: synth.Identity) -> None:
    """Revision 2 tells the lip tightener from the pressor; revision 1 moved them almost alike."""
    neutral = drawn.landmarks
    ex, ey, iod = _face_axes(neutral)
    width = _mouth_width(neutral, ex)
    tight = synth.displace_landmarks(neutral, {23: 5.0}, revision=2)
    pressed = synth.displace_landmarks(neutral, {24: 5.0}, revision=2)
    assert _mouth_width(tight, ex) == pytest.approx(width - 2 * 5 * 0.014 * iod)  # corners in
    assert _mouth_width(pressed, ex) == pytest.approx(width + 2 * 5 * 0.004 * iod)  # spread a little
    for lms in (tight, pressed):  # both thin the upper lip's red
        assert (lms[62] - lms[51]) @ ey < (neutral[62] - neutral[51]) @ ey - 0.03 * iod
    # revision 1, as the bundled model's stages 1-4 were trained on: the historic numbers
    old_tight = synth.displace_landmarks(neutral, {23: 5.0}, revision=1)
    old_pressed = synth.displace_landmarks(neutral, {24: 5.0}, revision=1)
    assert _mouth_width(old_tight, ex) == pytest.approx(width - 2 * 5 * 0.008 * iod)
    assert _mouth_width(old_pressed, ex) == pytest.approx(width - 2 * 5 * 0.004 * iod)
    assert np.abs(old_tight - old_pressed).max() < 0.03 * iod  # under a pixel at 128 px crops
    for revision in (1, 2):  # nothing else changed between the revisions
        np.testing.assert_array_equal(
            synth.displace_landmarks(neutral, {12: 3.0, 26: 2.0, 45: 4.0}, revision=revision),
            synth.displace_landmarks(neutral, {12: 3.0, 26: 2.0, 45: 4.0}),
        )
    # drawn, the two differ more around the mouth in revision 2 than in revision 1
    box = np.round(np.r_[neutral[48:68].min(0) - 0.1 * iod, neutral[48:68].max(0) + 0.1 * iod]).astype(int)

    def gap(revision: int) -> float:
        a, _ = synth.render(drawn, {23: 5.0}, nuisance=False, revision=revision)
        b, _ = synth.render(drawn, {24: 5.0}, nuisance=False, revision=revision)
        cut = (slice(box[1], box[3]), slice(box[0], box[2]))
        return float(np.abs(a[cut].astype(float) - b[cut].astype(float)).mean())

    assert gap(2) > 1.2 * gap(1)  # 8.4 vs 6.6 grey levels on this face
    with pytest.raises(ValueError, match="revision 4 does not exist; revisions: 1, 2, 3"):
        synth.render(drawn, {23: 1.0}, nuisance=False, revision=4)


def test_revision_3_thins_au23s_reds_and_stretches_au20s_lips(drawn: synth.Identity) -> None:
    """Revision 3: AU23's reds close on the inner lips by a share of their own height (0.6 at
    intensity 5) as the mouth narrows; AU20 lengthens the mouth more and flattens the lips."""
    neutral = drawn.landmarks
    ex, ey, iod = _face_axes(neutral)
    width = _mouth_width(neutral, ex)
    tight = synth.displace_landmarks(neutral, {23: 5.0}, revision=3)
    assert _mouth_width(tight, ex) == pytest.approx(width - 2 * 5 * 0.016 * iod)
    for outer, inner in ((51, 62), (57, 66)):  # midline: 40 % of each red's height is left
        np.testing.assert_allclose(tight[inner] - tight[outer], 0.4 * (neutral[inner] - neutral[outer]))
    half = synth.displace_landmarks(neutral, {23: 2.5}, revision=3)
    np.testing.assert_allclose(half[62] - half[51], 0.7 * (neutral[62] - neutral[51]))
    one_side = synth.displace_landmarks(neutral, {23: 5.0}, {23: (1.0, 0.0)}, revision=3)
    np.testing.assert_array_equal(one_side[[52, 53, 54, 55, 56]], neutral[[52, 53, 54, 55, 56]])
    assert (one_side[61] - one_side[50]) @ ey < 0.5 * (neutral[61] - neutral[50]) @ ey
    stretched = synth.displace_landmarks(neutral, {20: 5.0}, revision=3)
    assert _mouth_width(stretched, ex) == pytest.approx(width + 2 * 5 * 0.030 * iod)
    assert _mouth_width(synth.displace_landmarks(neutral, {20: 5.0}, revision=2), ex) == pytest.approx(
        width + 2 * 5 * 0.024 * iod
    )
    assert (stretched[62] - stretched[51]) @ ey < (neutral[62] - neutral[51]) @ ey - 0.02 * iod  # flatter
    # drawn, AU23 looks less like AU14 (the dimpler, which also pulls the corners in) than in revision 2
    box = np.round(np.r_[neutral[48:68].min(0) - 0.1 * iod, neutral[48:68].max(0) + 0.1 * iod]).astype(int)
    cut = (slice(box[1], box[3]), slice(box[0], box[2]))

    def gap(revision: int) -> float:
        a, _ = synth.render(drawn, {23: 5.0}, nuisance=False, revision=revision)
        b, _ = synth.render(drawn, {14: 5.0}, nuisance=False, revision=revision)
        return float(np.abs(a[cut].astype(float) - b[cut].astype(float)).mean())

    assert gap(3) > 1.1 * gap(2)  # 10.8 vs 9.1 grey levels on this face


def test_parted_lips_show_a_dark_mouth_and_teeth(drawn: synth.Identity) -> None:
    image, lms = synth.render(drawn, {25: 4.0, 26: 4.0}, nuisance=False)
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(lms[60:68]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)
    assert inside.sum() > 100
    grey = image.mean(-1)[inside]
    assert (grey < 70).mean() > 0.05  # the mouth's dark interior
    assert (grey > 150).mean() > 0.1  # the teeth
    rgb = image[inside].astype(float)
    assert ((rgb[:, 0] - rgb[:, 1] > 50) & (grey > 80)).mean() > 0.05  # the tongue


def test_nuisances_move_image_and_landmarks_together(drawn: synth.Identity) -> None:
    nz = synth.Nuisance(roll=15.0, yaw=10.0, scale=0.9, shift=(0.03, -0.02))
    image, lms = synth.render(drawn, {}, np.random.default_rng(0), nuisance=nz, size=128)
    assert image.shape == (128, 128, 3)
    ex, _, _ = _face_axes(lms)
    assert np.degrees(np.arctan2(ex[1], ex[0])) == pytest.approx(15.0, abs=2.0)
    _, _, iod = _face_axes(drawn.landmarks)
    assert interocular_distance(lms) == pytest.approx(iod * 0.9 / 2, rel=0.05)
    # the pupils (dark) are where the landmarks say the eyes are
    grey = image.mean(-1)
    for eye in (slice(36, 42), slice(42, 48)):
        x, y = np.round(lms[eye].mean(0)).astype(int)
        assert grey[y - 1 : y + 2, x - 1 : x + 2].min() < np.median(grey) - 30


# ---------------------------------------------------------------- intensities


def test_sampled_intensities_spread_and_co_occur() -> None:
    rng = np.random.default_rng(0)
    samples = [synth.sample_intensities(rng) for _ in range(3000)]
    assert all(set(s) == set(CATALOGUE) for s in samples)
    values = {au: np.array([s[au] for s in samples]) for au in CATALOGUE}
    assert all(((v >= 0) & (v <= 5)).all() for v in values.values())
    for au in BP4D:
        v = values[au]
        assert 0.55 < (v == 0).mean() < 0.9, au  # most faces near neutral, as in real data...
        counts = np.histogram(v[v > 0], bins=[0, 1, 2, 3, 4, 5.001])[0] / (v > 0).sum()
        assert counts.min() > 0.1, (au, counts)  # ...and the rest spread over 0-5
    on12, on14 = values[12] > 0, values[14] > 0
    for share in ((on12 & ~on14).mean(), (on14 & ~on12).mean(), (on12 & on14).mean()):
        assert share > 0.05
    assert np.corrcoef(values[6], values[12])[0, 1] > 0.2  # happiness
    only = synth.sample_intensities(rng, aus="bp4d")
    assert all(only[au] == 0 for au in CATALOGUE if au not in BP4D)


def test_intensity_curves_are_smooth_and_bounded() -> None:
    curves = synth.intensity_curves(np.random.default_rng(1), 40, keyframe_every=4)
    assert set(curves) == set(CATALOGUE)
    for curve in curves.values():
        assert curve.shape == (40,)
        assert ((curve >= 0) & (curve <= 5)).all()
        assert np.abs(np.diff(curve)).max() <= 5 * 0.75 + 1e-9  # at most 3/4 of a jump per frame


def test_render_sequence_moves_smoothly(drawn: synth.Identity) -> None:
    curves = synth.intensity_curves(np.random.default_rng(2), 6)
    frames = list(synth.render_sequence(drawn, curves, np.random.default_rng(2)))
    assert len(frames) == 6
    _, _, iod = _face_axes(drawn.landmarks)
    steps = [np.abs(b[1] - a[1]).max() for a, b in zip(frames, frames[1:])]
    assert max(steps) < 0.3 * iod
    with pytest.raises(ValueError, match="same length"):
        next(synth.render_sequence(drawn, {6: np.zeros(3), 12: np.zeros(4)}))


# ---------------------------------------------------------------- data set


def test_manifest_follows_the_data_format(dataset: Path) -> None:
    table = read_manifest(dataset, aus="all")
    assert len(table) == 24
    assert [column_name(a) for a in CATALOGUE] == [c for c in table.columns if c.endswith("_r")]
    assert (table["source"].isin([*synth.REAL_FACES, "procedural"])).all()
    assert (table["revision"] == str(synth.REVISION)).all()  # extra columns are read as text
    first = Path(table["image"][0])
    assert first.parent.name == table["subject"][0] and first.name == "q00_00000.png"
    image = cv2.imread(str(first))
    assert image.shape == (256, 256, 3)
    assert landmarks_array(table).shape == (24, 68, 2)
    assert table.groupby(["subject", "sequence"]).size().eq(2).all()


def test_splits_are_subject_disjoint_and_all_used(dataset: Path) -> None:
    table = read_manifest(dataset)
    assert table.groupby("subject")["split"].nunique().eq(1).all()
    assert set(table["split"]) == set(SPLITS)


def test_labels_and_centres_match_the_codec(dataset: Path) -> None:
    table = read_manifest(dataset)
    codec = AUHeatmapCodec("bp4d")
    lms = landmarks_array(table)
    crop_lms = align.transform_points(lms, align.registration_matrix(lms))
    labels = table[[column_name(a) for a in BP4D]].to_numpy()
    maps, mask = codec.encode(crop_lms, labels)
    assert mask.all()
    decoded = codec.decode(maps)
    np.testing.assert_allclose(decoded.intensities, labels, atol=1e-5)
    where = centres(crop_lms, BP4D)  # (N, A, C, 2)
    checked = 0
    for n, a, c in zip(*np.nonzero(np.isfinite(decoded.peaks[..., 0]))):
        distance = np.abs(where[n, a] - decoded.peaks[n, a, c]).max(axis=-1)
        assert np.nanmin(distance) <= codec.stride, (n, a, c)
        checked += 1
    assert checked > 10


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kwargs = dict(n_subjects=3, frames_per_subject=2, sequence_length=2, progress=False)
    first = synth.make_dataset(tmp_path / "a", seed=11, **kwargs)
    again = synth.make_dataset(tmp_path / "b", seed=11, workers=2, **kwargs)
    other = synth.make_dataset(tmp_path / "c", seed=12, **kwargs)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    images = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(images) == 6
    for name in images:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert any(
        (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
        for name in images
        if (tmp_path / "c" / name).exists()
    )


def test_first_subject_adds_new_identities(tmp_path: Path) -> None:
    kwargs = dict(frames_per_subject=2, sequence_length=2, progress=False, seed=11)
    whole = pd.read_csv(synth.make_dataset(tmp_path / "a", n_subjects=3, **kwargs))
    more = pd.read_csv(synth.make_dataset(tmp_path / "b", n_subjects=1, first_subject=2, splits=(1, 0, 0), **kwargs))
    assert set(more["subject"]) == {"syn0002"} and set(more["split"]) == {"train"}
    same = whole[whole["subject"] == "syn0002"].drop(columns="split").reset_index(drop=True)
    pd.testing.assert_frame_equal(same, more.drop(columns="split"))
    name = more["image"].iloc[0]
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_renders_an_older_revision_again(tmp_path: Path, capsys) -> None:
    from aumaps.cli import main

    kwargs = dict(n_subjects=3, frames_per_subject=2, sequence_length=2, progress=False, seed=4)
    old = synth.make_dataset(tmp_path / "api", revision=1, **kwargs)
    args = ["synth", str(tmp_path / "cli"), "--subjects", "3", "--frames", "2", "--seed", "4", "--revision", "1"]
    assert main(args) == 0  # 2 frames fit in one of the CLI's 10-frame sequences, as in one of 2
    table = pd.read_csv(tmp_path / "cli" / "manifest.csv")
    assert set(table["revision"]) == {1}
    pd.testing.assert_frame_equal(table, pd.read_csv(old))
    assert main(["synth", str(tmp_path / "bad"), "--subjects", "3", "--revision", "4"]) == 2
    assert "generator revision 4 does not exist; revisions: 1, 2, 3" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- realism


def test_identities_are_distinct() -> None:
    faces = synth.neutral_faces(6, seed=4)
    assert len({f.subject for f in faces}) == 6
    for a, b in zip(faces, faces[1:]):
        assert np.abs(a.landmarks - b.landmarks).max() > 1.0
    again = synth.make_identity(3, seed=4)
    np.testing.assert_array_equal(again.image, faces[3].image)


def test_dlib_finds_the_synthetic_faces(landmarker: FaceLandmarker) -> None:
    """dlib sees a face in most renderings, its landmarks close to the true ones."""
    faces = synth.neutral_faces(20, seed=9)
    found, errors = 0, []
    for k, face in enumerate(faces):
        rng = np.random.default_rng(k)
        image, truth = synth.render(face, synth.sample_intensities(rng), rng)
        detected = landmarker(image)
        if detected:
            found += 1
            error = np.linalg.norm(detected[0].landmarks - truth, axis=1).mean()
            errors.append(error / interocular_distance(truth))
    # heads turned up to 35 degrees, hands over faces, dark and tiny faces: HOG misses some
    assert found >= 13
    assert np.mean(errors) < 0.08


# ---------------------------------------------------------------- 17 AUs: eyes, pose, looks


def _eye_mask(image: np.ndarray, lms: np.ndarray, eye: slice) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lms[eye]).astype(np.int32)], 1)
    return mask.astype(bool)


def test_blink_closes_the_lids_and_hides_the_iris(drawn: synth.Identity) -> None:
    neutral = drawn.landmarks
    closed = synth.displace_landmarks(neutral, {45: 5.0})
    _, _, iod = _face_axes(neutral)
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert np.linalg.norm(closed[upper] - closed[lower]) < 0.01 * iod
        assert np.linalg.norm(neutral[upper] - neutral[lower]) > 0.05 * iod
    half = synth.displace_landmarks(neutral, {45: 2.5})
    gap = lambda m: np.linalg.norm(m[37] - m[41])  # noqa: E731
    assert gap(half) == pytest.approx(0.5 * gap(neutral), rel=1e-6)  # intensity = closure
    # the iris (dark pixels) that showed in the open eye is covered by the lids
    image, _ = synth.render(drawn, {}, nuisance=False)
    blink, _ = synth.render(drawn, {45: 5.0}, nuisance=False)
    eye = _eye_mask(image, neutral, slice(36, 42))
    iris = np.percentile(image.mean(-1)[eye], 25)  # the open eye's darkest quarter: iris, pupil
    dark = lambda im: (im.mean(-1)[eye] <= iris).sum()  # noqa: E731
    assert dark(image) > 15
    assert dark(blink) < 0.25 * dark(image)


def test_upper_lid_raiser_shows_white_above_the_iris(drawn: synth.Identity) -> None:
    image, _ = synth.render(drawn, {}, nuisance=False)
    wide, lms = synth.render(drawn, {5: 5.0}, nuisance=False)
    eye = _eye_mask(wide, lms, slice(36, 42))
    before = _eye_mask(image, drawn.landmarks, slice(36, 42))
    white = np.percentile(image.mean(-1)[before], 50)  # brighter than the open eye's median: sclera
    assert eye.sum() > 1.3 * before.sum()
    assert (wide.mean(-1)[eye] > white).sum() > 1.3 * (image.mean(-1)[before] > white).sum()


def test_asymmetric_action_moves_one_side_less(drawn: synth.Identity) -> None:
    neutral = drawn.landmarks
    full = synth.displace_landmarks(neutral, {12: 4.0})
    weak_left = synth.displace_landmarks(neutral, {12: 4.0}, sides={12: (0.5, 1.0)})
    np.testing.assert_allclose(weak_left[48] - neutral[48], 0.5 * (full[48] - neutral[48]))
    np.testing.assert_allclose(weak_left[54], full[54])
    rng = np.random.default_rng(0)
    sides = [synth.sample_sides(rng) for _ in range(500)]
    share = np.mean([12 in s for s in sides])
    assert 0.05 < share < 0.2
    assert all(min(v) < 1.0 == max(v) for s in sides for v in s.values())


def test_head_turns_in_depth() -> None:
    from aumaps.data.synth.head import _turn_maps

    face = synth.make_identity(0, seed=0, procedural=1.0)
    shape = face.image.shape[:2]
    _, _, still = _turn_maps(face.landmarks, shape, 0.0, 0.0)
    np.testing.assert_allclose(still, face.landmarks, atol=1e-6)
    width = lambda m, a, b: np.linalg.norm(m[b] - m[a])  # noqa: E731
    map_x, map_y, turned = _turn_maps(face.landmarks, shape, 30.0, 0.0)
    # turned towards the image's left: the nose tip moves left of the eyes' middle, the left eye
    # (farther now) narrows against the right one, heights barely change
    mid = turned[[39, 42]].mean(0)
    assert turned[30, 0] < mid[0] - 0.05 * width(face.landmarks, 36, 45)
    ratio = width(turned, 36, 39) / width(turned, 42, 45)
    assert ratio < 0.9 * width(face.landmarks, 36, 39) / width(face.landmarks, 42, 45)
    assert abs(turned[8, 1] - face.landmarks[8, 1]) < 0.1 * width(face.landmarks, 36, 45)
    # the maps carry image content along with the landmarks (nose tip's pixel)
    x, y = np.round(turned[30]).astype(int)
    src = np.array([map_x[y, x], map_y[y, x]])
    assert np.linalg.norm(src - face.landmarks[30]) < 2.0


def test_glasses_are_drawn_around_the_eyes(drawn: synth.Identity) -> None:
    glasses = synth.Glasses(
        colour=(255.0, 0.0, 0.0),
        thickness=0.04,
        width=0.26,
        height=0.18,
        squareness=3.0,
        tint=0.1,
        lens_colour=(200.0, 200.0, 200.0),
    )
    worn = replace(drawn, look=synth.Look(glasses=glasses))
    image, lms = synth.render(worn, {}, nuisance=False)
    redness = image[..., 0].astype(int) - image[..., 1]
    eye = lms[36:42].mean(0)
    _, _, iod = _face_axes(lms)
    near = np.hypot(*(np.mgrid[0:256, 0:256][::-1] - eye[:, None, None])) < 0.35 * iod
    assert (redness[near] > 120).sum() > 30  # the red frame around the left eye
    plain, _ = synth.render(drawn, {}, nuisance=False)
    assert ((plain[..., 0].astype(int) - plain[..., 1])[near] > 120).sum() < 5


def test_rendered_prototypes_carry_their_aus(drawn: synth.Identity) -> None:
    """The basic emotions' prototypes move the face as FACS describes them: surprise raises the
    brows (1, 2) and drops the jaw (26); anger lowers and draws the brows together (4);
    happiness pulls the lip corners up and out (12); blink closes the eyes (45); and a sampled
    prototype holds its core AUs."""
    neutral = drawn.landmarks
    ex, ey, iod = _face_axes(neutral)
    down = lambda lms, i: float((lms[i] - neutral[i]) @ ey) / iod  # noqa: E731
    out = lambda lms, i, side: float((lms[i] - neutral[i]) @ ex) * side / iod  # noqa: E731
    surprise = synth.displace_landmarks(neutral, {1: 4.5, 2: 4.5, 5: 4.0, 25: 4.0, 26: 4.0})
    assert down(surprise, 21) < -0.1 and down(surprise, 18) < -0.1 and down(surprise, 8) > 0.2
    assert down(surprise, 66) - down(surprise, 62) > 0.3  # the mouth opens
    assert down(surprise, 37) < -0.04  # the upper lids rise
    anger = synth.displace_landmarks(neutral, {4: 4.5, 5: 3.0, 7: 4.0, 23: 4.0})
    assert down(anger, 21) > 0.05 and out(anger, 21, -1) < -0.03  # down and towards the midline
    assert down(anger, 41) < -0.03  # the lower lids rise (AU7)
    happy = synth.displace_landmarks(neutral, {6: 4.0, 12: 4.5})
    assert down(happy, 48) < -0.08 and out(happy, 48, -1) > 0.05 and out(happy, 54, 1) > 0.05
    blink = synth.displace_landmarks(neutral, {45: 5.0})
    assert abs(down(blink, 37) - down(blink, 41) + float((neutral[37] - neutral[41]) @ ey) / iod) < 0.01
    rng = np.random.default_rng(1)
    cores = {name: core for name, (core, _, _) in synth.PROTOTYPES.items() if core}
    seen = set()
    for _ in range(3000):
        sample = synth.sample_intensities(rng)
        for name, core in cores.items():
            if all(sample[au] >= 1.0 for au in core):
                seen.add(name)
    assert seen == set(cores)  # every prototype is drawn with all its core AUs present
