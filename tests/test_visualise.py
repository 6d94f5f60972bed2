"""Pictures: faces carried into resized and cut views stay registered; a group photo gives one
picture with every face."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from aumaps import align
from aumaps.aus import AU_SETS, get_au
from aumaps.results import FaceResult
from aumaps.visualise import (
    au_colour,
    au_groups,
    draw_faces,
    draw_legend,
    face_in_view,
    legend_panel,
    legend_width,
    overlay,
    short_name,
)

OPENFACE = tuple(AU_SETS["openface"])


def _face(face_id: int, x: float, intensities=(3.0, 1.0)) -> FaceResult:
    landmarks = align.TEMPLATE_68 * 0.5 + [x, 40.0]
    matrix = align.registration_matrix(landmarks)
    maps = np.zeros((2, 64, 64), np.float32)
    maps[0, 40:44, 28:36] = intensities[0]  # AU6 around the mouth corners' height
    maps[1, 20:24, 20:24] = intensities[1]
    return FaceResult(
        face_id=face_id,
        aus=(6, 12),
        intensities=np.array(intensities),
        heatmaps=maps,
        peaks=np.full((2, 2, 2), np.nan),
        argmax=np.zeros((2, 2)),
        landmarks=landmarks,
        box=np.concatenate([landmarks.min(0), landmarks.max(0)]),
        confidence=1.0,
        matrix=matrix,
        crop=np.zeros((256, 256, 3), np.uint8),
    )


@pytest.mark.parametrize("scale, origin", [(2.0, (0, 0)), (1.0, (30, 12)), ((0.5, 1.5), (3, 4))])
def test_face_in_view_keeps_the_registration(scale, origin):
    face = _face(0, 20.0)
    moved = face_in_view(face, scale, origin)
    s = np.broadcast_to(np.asarray(scale, float), (2,))
    np.testing.assert_allclose(moved.landmarks, face.landmarks * s - origin)
    # the same crop point comes from the moved landmarks under the moved matrix
    np.testing.assert_allclose(
        align.transform_points(moved.landmarks, moved.matrix),
        align.transform_points(face.landmarks, face.matrix),
        atol=1e-9,
    )
    np.testing.assert_allclose(moved.box[:2], face.box[:2] * s - origin)


def test_group_picture_shows_every_face_and_its_bars():
    image = np.full((200, 400, 3), 80, np.uint8)
    faces = [_face(0, 20.0), _face(1, 220.0, (0.5, 4.0))]
    picture = overlay(image, faces, min_side=200)
    one = draw_legend((6, 12), None, picture.shape[0]).shape[1]
    assert picture.shape[1] == 400 + legend_width((6, 12), 200, 2)  # both faces' bars beside the image
    assert one <= legend_width((6, 12), 200, 2) <= 2 * one
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


def _colour_mask(picture: np.ndarray, au: int) -> np.ndarray:
    """Pixels of exactly AU ``au``'s colour (swatches, bars and chips are drawn solid)."""
    return (picture == np.array(au_colour(au), np.uint8)).all(axis=2)


def _face17(face_id: int, x: float, values: dict[int, float], scale: float = 0.5) -> FaceResult:
    """A face with OpenFace's 17 AUs: each AU's map a blob of its intensity where its first centre is."""
    landmarks = align.TEMPLATE_68 * scale + [x, 40.0]
    intensities = np.array([values.get(a, 0.0) for a in OPENFACE])
    maps = np.zeros((len(OPENFACE), 64, 64), np.float32)
    argmax = np.zeros((len(OPENFACE), 2))
    crop_points = align.transform_points(landmarks, align.registration_matrix(landmarks)) * 64 / align.CROP_SIZE
    for a, au in enumerate(OPENFACE):
        cx, cy = np.round(crop_points[list(get_au(au).centres[0].landmarks)].mean(0)).astype(int)
        maps[a, cy - 2 : cy + 3, cx - 2 : cx + 3] = intensities[a]
        argmax[a] = landmarks[list(get_au(au).centres[0].landmarks)].mean(0)
    return FaceResult(
        face_id=face_id,
        aus=OPENFACE,
        intensities=intensities,
        heatmaps=maps,
        peaks=np.full((len(OPENFACE), 2, 2), np.nan),
        argmax=argmax,
        landmarks=landmarks,
        box=np.concatenate([landmarks.min(0), landmarks.max(0)]),
        confidence=1.0,
        matrix=align.registration_matrix(landmarks),
        crop=np.zeros((256, 256, 3), np.uint8),
    )


def test_au_groups_put_the_upper_face_first_in_the_models_order():
    groups = dict(au_groups(OPENFACE))
    assert list(groups) == ["upper", "lower"]
    assert groups["upper"] == [1, 2, 4, 5, 6, 7, 45]
    assert groups["lower"] == [9, 10, 12, 14, 15, 17, 20, 23, 25, 26]
    assert au_groups((6, 10, 12, 14, 17)) == [("upper", [6]), ("lower", [10, 12, 14, 17])]
    assert au_groups((12, 25)) == [("lower", [12, 25])]
    assert all(len(short_name(a)) <= 16 for a in OPENFACE)


def test_a_17_au_legend_has_two_columns_that_fit_beside_a_video():
    """480 pixels high (a VGA video): upper face left, lower face right, no wider than a five-AU
    legend and a little, every AU's colour on its side with a bar as long as its value."""
    values = np.linspace(0, 5, len(OPENFACE))
    legend = draw_legend(OPENFACE, values, 480)
    single = draw_legend((6, 10, 12, 14, 17), None, 480)
    assert legend.shape[0] == 480  # 10 lower-face rows and a heading fit: nothing cut, nothing scaled
    assert legend.shape[1] < 1.2 * single.shape[1]
    half = legend.shape[1] / 2
    counts = {}
    for au in OPENFACE:
        xs = np.nonzero(_colour_mask(legend, au))[1]
        assert len(xs), f"AU{au} is missing from the legend"
        assert (xs < half).all() if get_au(au).region == "upper" else (xs > half).all(), au
        counts[au] = len(xs)
    # swatch + bar: the colour's area grows linearly with the value (bars of equal height)
    area = np.array([counts[a] for a in OPENFACE], float)
    fit = np.polyfit(values, area, 1)
    assert fit[0] > 0 and np.abs(np.polyval(fit, values) - area).max() <= 12  # a pixel column of bar at most
    assert draw_legend(OPENFACE, None, 480).shape == legend.shape


def test_a_group_photo_with_17_aus_gives_one_table_with_every_face():
    """Four faces: one table (an AU per row, a face per column) of exactly the size asked, every
    AU's colour present, each face's bar in its own column and as long as its value."""
    rng = np.random.default_rng(0)
    faces = [_face17(k, 20.0 + 150 * k, dict(zip(OPENFACE, rng.uniform(0, 5, 17)))) for k in range(4)]
    faces[2] = _face17(2, 320.0, {12: 5.0})  # a broad smile, nothing else
    height = 480
    width = legend_width(OPENFACE, height, 4)
    assert draw_legend(OPENFACE, None, height).shape[1] <= width <= 2 * draw_legend(OPENFACE, None, height).shape[1]
    table = legend_panel(faces, OPENFACE, height, width)
    assert table.shape == (height, width, 3)
    for au in OPENFACE:
        assert _colour_mask(table, au).any(), au
    # each face's bar in its own column, in face order, as long as its value
    zero = _face17(9, 0.0, {})
    blank = legend_panel([zero, zero], OPENFACE, height, width)
    swatches = {au: _colour_mask(blank, au).sum() for au in OPENFACE}  # the swatches alone: no bars at 0
    second = legend_panel([zero, faces[2]], OPENFACE, height, width)
    first = legend_panel([faces[2], zero], OPENFACE, height, width)
    assert all(_colour_mask(second, a).sum() == swatches[a] for a in OPENFACE if a != 12)
    bar = _colour_mask(second, 12) & ~_colour_mask(blank, 12)
    other = _colour_mask(first, 12) & ~_colour_mask(blank, 12)
    assert bar.sum() > 20 * 4 and abs(bar.sum() - other.sum()) <= 20  # the same bar, give or take a pixel column
    assert np.nonzero(bar)[1].min() > np.nonzero(other)[1].max()
    # the picture: the image, then the table
    picture = overlay(np.full((300, 640, 3), 90, np.uint8), faces)
    assert picture.shape == (300, 640 + legend_width(OPENFACE, 300, 4), 3)


def test_many_faces_share_the_width_and_the_table_says_how_many_it_shows():
    faces = [_face17(k, 0.0, {6: 4.0, 12: 4.0}) for k in range(60)]
    table = legend_panel(faces, OPENFACE, 360, 500)
    assert table.shape == (360, 500, 3)
    mask = _colour_mask(table, 12)
    line = mask[int(np.median(np.nonzero(mask)[0]))]  # a line through AU12's swatch and bars
    segments = np.count_nonzero(np.diff(line.astype(int)) == 1) + int(line[0])
    assert 5 <= segments - 1 < 60  # the swatch, then a bar per face shown: as many as fit, not 60 slivers
    assert not line[-1]  # nothing runs off the edge


def test_maps_of_aus_under_half_a_point_are_not_drawn_and_active_aus_get_a_chip():
    image = np.full((260, 260, 3), 90, np.uint8)
    face = _face17(0, 20.0, {12: 3.0, 6: 0.4}, scale=0.9)
    drawn = draw_faces(image, [face], draw_box=False, draw_peaks=False)
    plain = draw_faces(image, [face], draw_box=False, draw_peaks=False, draw_labels=False)
    changed = np.abs(plain.astype(int) - 90).sum(axis=2) > 0
    assert changed.any()
    # AU6 (0.4) draws nothing: only AU12's colour is blended in
    tint = plain[changed].astype(float) - 90
    colour12 = np.array(au_colour(12), float) - 90
    cos = (tint @ colour12) / (np.linalg.norm(tint, axis=1) * np.linalg.norm(colour12))
    assert cos.min() > 0.99
    # AU12's number on a chip of its colour beside its peak; AU6 has none
    chip = _colour_mask(drawn, 12)
    assert chip.sum() > 60 and not _colour_mask(plain, 12).any() and not _colour_mask(drawn, 6).any()
    ys, xs = np.nonzero(chip)
    peak = face.argmax[OPENFACE.index(12)]
    assert np.hypot(xs.mean() - peak[0], ys.mean() - peak[1]) < 30


@pytest.mark.parametrize("aus, rows, panels", [(OPENFACE, 2, 2 + 17), ((6, 12), 1, 3)])
def test_the_demo_figure_has_a_row_per_face_region_for_17_aus(aus, rows, panels):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from aumaps.visualise import figure_maps

    face = _face17(0, 20.0, {12: 3.0}) if len(aus) > 2 else _face(0, 20.0)
    face.crop[:] = 128
    fig = figure_maps(face, title="maps")
    try:
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert len(shown) == panels
        assert len({round(ax.get_position().y0, 3) for ax in shown}) == rows
        titles = [ax.get_title() for ax in shown]
        if rows == 2:
            assert titles[0] == "Upper face" and titles[8] == "Lower face" and titles[1] == "AU01 0.00"
            assert "AU12 3.00" in titles and fig.get_size_inches()[0] < 20
        else:
            assert titles == ["registered crop", "AU06 3.00", "AU12 1.00"]
    finally:
        plt.close(fig)


def test_map_values_off_the_face_are_not_drawn_on_the_image_or_sent_to_the_page():
    """The network's maps cover the whole crop (neck and background too): a spurious blob at
    the crop's bottom corner is noise, not where the face moves; the mouth's blob is kept."""
    from aumaps.serve.payload import face_payload

    image = np.full((300, 300, 3), 90, np.uint8)
    face = _face17(0, 40.0, {12: 3.0}, scale=0.9)
    a12 = OPENFACE.index(12)
    face.heatmaps[a12, 58:63, 1:6] = 3.0  # bottom-left corner of the crop
    corner = align.transform_points(np.array([[3.5 * 4, 60.5 * 4]]), align.invert(face.matrix))[0]
    assert 0 <= corner[0] < 300 and 0 <= corner[1] < 300
    plain = draw_faces(image, [face], draw_box=False, draw_peaks=False, draw_labels=False)
    changed = np.abs(plain.astype(int) - 90).sum(axis=2) > 0
    x, y = np.round(corner).astype(int)
    assert not changed[y - 3 : y + 4, x - 3 : x + 4].any()
    mouth = face.argmax[a12]
    assert changed[round(mouth[1]) - 2 : round(mouth[1]) + 3, round(mouth[0]) - 2 : round(mouth[0]) + 3].any()

    sent = face_payload(face, align.CROP_SIZE)
    maps = np.frombuffer(base64.b64decode(sent["maps"]), np.uint8).reshape(len(OPENFACE), 64, 64)
    assert not maps[a12, 58:63, 1:6].any()
    assert maps[a12].max() == 153  # the mouth's 3.0 of 5, as bytes
    # the mask keeps the whole face: every AU's blob at its centre (brows to chin) is sent whole
    every = _face17(0, 40.0, dict.fromkeys(OPENFACE, 2.0), scale=0.9)
    maps = np.frombuffer(base64.b64decode(face_payload(every, align.CROP_SIZE)["maps"]), np.uint8)
    maps = maps.reshape(len(OPENFACE), 64, 64)
    for a, au in enumerate(OPENFACE):
        blob = every.heatmaps[a] > 0
        assert (maps[a][blob] == 102).all(), f"AU{au}"
