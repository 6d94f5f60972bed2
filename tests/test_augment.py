import numpy as np
import pytest

from aumaps import aus
from aumaps.align import TEMPLATE_68
from aumaps.codec import AUHeatmapCodec
from aumaps.data.augment import AugmentConfig, augment, flip_crop

OFF = dict(rotation=0, scale=0, translation=0, flip=0, landmark_noise=0, colour=0, grayscale=0)


def _dot_crop(point):
    crop = np.zeros((256, 256, 3), np.uint8)
    x, y = np.round(point).astype(int)
    crop[y - 1 : y + 2, x - 1 : x + 2] = 255
    return crop


def _bright_centre(crop):
    ys, xs = np.nonzero(crop[..., 0] > 60)
    w = crop[ys, xs, 0].astype(float)
    return np.array([np.average(xs, weights=w), np.average(ys, weights=w)])


def test_flip_swaps_left_and_right_landmarks_and_centres():
    crop = _dot_crop(TEMPLATE_68[48])  # left lip corner
    flipped, lm = flip_crop(crop, TEMPLATE_68)
    np.testing.assert_allclose(lm[36], [255 - TEMPLATE_68[45, 0], TEMPLATE_68[45, 1]])
    np.testing.assert_allclose(lm[54], [255 - TEMPLATE_68[48, 0], TEMPLATE_68[48, 1]])
    # the painted left corner is now the right corner, where landmark 54 says it is
    np.testing.assert_allclose(_bright_centre(flipped), lm[54], atol=0.6)
    # AU6's first centre (image-left cheek) is the mirror of the original right-cheek centre
    before = aus.centres(TEMPLATE_68, [6])[0]
    after = aus.centres(lm, [6])[0]
    np.testing.assert_allclose(after[0], [255 - before[1, 0], before[1, 1]], atol=1e-9)
    np.testing.assert_allclose(after[1], [255 - before[0, 0], before[0, 1]], atol=1e-9)


def test_flip_targets_mirror_the_maps():
    codec = AUHeatmapCodec((6, 12))
    inten = np.array([3.0, 4.0])
    _, lm = flip_crop(np.zeros((256, 256, 3), np.uint8), TEMPLATE_68)
    a, _ = codec.encode(TEMPLATE_68, inten)
    b, _ = codec.encode(lm, inten)
    # same peaks, mirrored (to within the map pixel the x/4 convention rounds to)
    for k in range(2):
        pa = np.argwhere(a[k] == a[k].max())[:, ::-1]
        pb = np.argwhere(b[k] == b[k].max())[:, ::-1]
        mirrored = sorted((63 - x, y) for x, y in pa)
        assert len(pa) == len(pb) == 2
        for (x1, y1), (x2, y2) in zip(mirrored, sorted(map(tuple, pb))):
            assert abs(x1 - x2) <= 1 and y1 == y2


@pytest.mark.parametrize("kind", ["rotation", "scale", "translation", "landmark_noise"])
def test_geometry_moves_pixels_and_landmarks_together(kind):
    cfg = AugmentConfig(
        **{**OFF, kind: {"rotation": 20, "scale": 0.2, "translation": 0.1, "landmark_noise": 0.05}[kind]}
    )
    rng = np.random.default_rng(4)
    crop = _dot_crop(TEMPLATE_68[30])
    out, lm = augment(crop, TEMPLATE_68, rng, cfg)
    assert np.abs(lm - TEMPLATE_68).max() > 0.5  # it did move
    np.testing.assert_allclose(_bright_centre(out), lm[30], atol=0.8)


def test_landmark_noise_reregisters_from_noisy_anchors():
    """With landmark noise only, the true anchors no longer land exactly on the reference points."""
    cfg = AugmentConfig(**{**OFF, "landmark_noise": 0.05})
    _, lm = augment(np.zeros((256, 256, 3), np.uint8), TEMPLATE_68, np.random.default_rng(0), cfg)
    err = np.linalg.norm(lm[[8, 36, 45]] - TEMPLATE_68[[8, 36, 45]], axis=1)
    iod = np.linalg.norm(TEMPLATE_68[45] - TEMPLATE_68[36])
    assert 0.2 < err.max() < 0.3 * iod


def test_same_seed_same_augmentation_and_colour_range():
    cfg = AugmentConfig()
    crop = (np.random.default_rng(1).random((256, 256, 3)) * 255).astype(np.uint8)
    a = augment(crop, TEMPLATE_68, np.random.default_rng([0, 3, 7]), cfg)
    b = augment(crop, TEMPLATE_68, np.random.default_rng([0, 3, 7]), cfg)
    c = augment(crop, TEMPLATE_68, np.random.default_rng([0, 4, 7]), cfg)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.uint8 and a[0].shape == crop.shape


def test_identity_when_everything_is_off():
    crop = (np.random.default_rng(2).random((256, 256, 3)) * 255).astype(np.uint8)
    out, lm = augment(crop, TEMPLATE_68, np.random.default_rng(0), AugmentConfig(**OFF))
    np.testing.assert_array_equal(out, crop)
    np.testing.assert_allclose(lm, TEMPLATE_68)
