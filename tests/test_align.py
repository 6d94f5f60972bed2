import cv2
import numpy as np
import pytest

from aumaps import align


def _face(scale=1.3, angle=12.0, shift=(40.0, 25.0)):
    """The template face moved by a known similarity transform into a 480×400 image."""
    t = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return align.TEMPLATE_68 @ rot.T + np.asarray(shift)


def test_anchors_land_on_reference_points():
    lm = _face()
    m = align.registration_matrix(lm)
    assert m.shape == (2, 3)
    got = align.transform_points(lm[list(align.ANCHORS)], m)
    np.testing.assert_allclose(got, align.REFERENCE_POINTS, atol=1e-4)


def test_matches_opencv_getaffinetransform_exactly():
    lm = _face()
    expected = cv2.getAffineTransform(np.float32(lm[[8, 36, 45]]), align.REFERENCE_POINTS)
    np.testing.assert_array_equal(align.registration_matrix(lm), expected)


def test_inverse_composed_with_forward_is_identity():
    rng = np.random.default_rng(0)
    batch = np.stack([_face(s, a, (x, y)) for s, a, x, y in rng.uniform([0.5, -30, 0, 0], [2, 30, 90, 90], (5, 4))])
    m = align.registration_matrix(batch)
    assert m.shape == (5, 2, 3)
    inv = align.invert(m)
    pts = rng.uniform(0, 500, (5, 10, 2))
    np.testing.assert_allclose(align.transform_points(align.transform_points(pts, m), inv), pts, atol=1e-9)
    np.testing.assert_allclose(inv[2], cv2.invertAffineTransform(m[2]), atol=1e-12)


def test_warp_to_crop_and_back_puts_a_dot_where_it_was():
    lm = _face()
    image = np.zeros((400, 480), np.float32)
    image[int(lm[30, 1]), int(lm[30, 0])] = 1.0  # a dot on the nose tip
    m = align.registration_matrix(lm)
    crop = align.warp_to_crop(cv2.GaussianBlur(image, (0, 0), 3), m)
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    expected = align.transform_points(np.floor(lm[30:31]), m)[0]
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1
    # a 64×64 heatmap carried back onto the image peaks at the same image pixel
    heat = np.zeros((64, 64), np.float32)
    heat[int(round(expected[1] / 4)), int(round(expected[0] / 4))] = 1.0
    back = align.warp_from_crop(cv2.GaussianBlur(heat, (0, 0), 1.5), m, image.shape)
    assert back.shape == image.shape
    yb, xb = np.unravel_index(np.argmax(back), back.shape)
    assert abs(xb - lm[30, 0]) <= 4 * 1.3 and abs(yb - lm[30, 1]) <= 4 * 1.3


def test_degenerate_landmarks_rejected():
    lm = _face()
    lm[[8, 36, 45]] = [[0, 0], [1, 1], [2, 2]]
    with pytest.raises(ValueError, match="collinear"):
        align.registration_matrix(lm)
