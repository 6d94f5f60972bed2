"""Pictures: faces carried into resized and cut views stay registered; a group photo gives one
picture with every face."""

from __future__ import annotations

import numpy as np
import pytest

from aumaps import align
from aumaps.results import FaceResult
from aumaps.visualise import draw_legend, face_in_view, legend_panel, overlay


def _face(face_id: int, x: float, intensities=(3.0, 1.0)) -> FaceResult:
    landmarks = align.TEMPLATE_68 * 0.5 + [x, 40.0]
    matrix = align.registration_matrix(landmarks)
    maps = np.zeros((2, 64, 64), np.float32)
    maps[0, 40:44, 28:36] = intensities[0]  # AU6 around the mouth corners' height
    maps[1, 20:24, 20:24] = intensities[1]
    return FaceResult(face_id=face_id, aus=(6, 12), intensities=np.array(intensities), heatmaps=maps,
                      peaks=np.full((2, 2, 2), np.nan), argmax=np.zeros((2, 2)), landmarks=landmarks,
                      box=np.concatenate([landmarks.min(0), landmarks.max(0)]), confidence=1.0, matrix=matrix,
                      crop=np.zeros((256, 256, 3), np.uint8))


@pytest.mark.parametrize("scale, origin", [(2.0, (0, 0)), (1.0, (30, 12)), ((0.5, 1.5), (3, 4))])
def test_face_in_view_keeps_the_registration(scale, origin):
    face = _face(0, 20.0)
    moved = face_in_view(face, scale, origin)
    s = np.broadcast_to(np.asarray(scale, float), (2,))
    np.testing.assert_allclose(moved.landmarks, face.landmarks * s - origin)
    # the same crop point comes from the moved landmarks under the moved matrix
    np.testing.assert_allclose(align.transform_points(moved.landmarks, moved.matrix),
                               align.transform_points(face.landmarks, face.matrix), atol=1e-9)
    np.testing.assert_allclose(moved.box[:2], face.box[:2] * s - origin)


def test_group_picture_shows_every_face_and_its_bars():
    image = np.full((200, 400, 3), 80, np.uint8)
    faces = [_face(0, 20.0), _face(1, 220.0, (0.5, 4.0))]
    picture = overlay(image, faces, min_side=200)
    one = draw_legend((6, 12), None, picture.shape[0]).shape[1]
    assert picture.shape[1] == 400 + 2 * one  # both faces' bars beside the image
    drawn = picture[:, :400].astype(int) - 80
    left, right = np.abs(drawn[:, :200]).sum(), np.abs(drawn[:, 200:]).sum()
    assert left > 0 and right > 0  # maps drawn on both faces
    single = overlay(image, faces, face_index=1, min_side=200)
    assert single.shape[1] == 400 + one
    panel = legend_panel(faces, (6, 12), 120, 300)
    assert panel.shape == (120, 300, 3) and (panel != 32).any()


def test_au_colours_tell_apart_the_aus_that_share_a_place():
    """Every AU has its own colour; AUs that act on the same part of the face (the lip corners,
    the lips, the eyes, the brows) differ by at least 60 in RGB."""
    import itertools

    from aumaps.aus import AU_SETS, CATALOGUE
    from aumaps.visualise import au_colour

    colours = {au: np.array(au_colour(au), float) for au in CATALOGUE}
    assert len({tuple(c) for c in colours.values()}) == len(CATALOGUE)
    assert set(AU_SETS["openface"]) <= set(colours)
    for group in [(12, 14, 15, 20), (10, 23, 24, 25, 26), (5, 6, 7, 45), (1, 2, 4)]:
        for a, b in itertools.combinations(group, 2):
            assert np.linalg.norm(colours[a] - colours[b]) > 60, (a, b)
