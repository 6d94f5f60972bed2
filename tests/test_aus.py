import numpy as np
import pytest

from aumaps import aus
from aumaps.align import TEMPLATE_68


def test_required_aus_and_sets():
    for number in (1, 2, 4, 5, 6, 9, 10, 12, 14, 15, 17, 20, 25, 26):
        au = aus.get_au(number)
        assert au.name and 2 <= len(au.centres) <= 3
        for centre in au.centres:
            assert all(0 <= i < 68 for i in centre.landmarks)
    assert aus.AU_SETS["bp4d"] == (6, 10, 12, 14, 17)
    assert aus.AU_SETS["disfa"] == (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
    assert aus.get_au(12).name == "Lip Corner Puller"


def test_resolve_aus_forms_and_errors():
    assert aus.resolve_aus("BP4D") == (6, 10, 12, 14, 17)
    assert aus.resolve_aus("6, AU12,au17_r") == (6, 12, 17)
    assert aus.resolve_aus([12, "AU06"]) == (12, 6)
    with pytest.raises(ValueError, match="not in the aumaps catalogue"):
        aus.resolve_aus([3])
    with pytest.raises(ValueError, match="twice"):
        aus.resolve_aus("6,6")
    with pytest.raises(ValueError, match="cannot read"):
        aus.resolve_aus("smile")


def test_column_names_follow_openface():
    assert aus.column_name(6) == "AU06_r"
    assert aus.column_name(25, "c") == "AU25_c"


def test_mirror_map_is_an_involution_with_known_pairs():
    m = aus.MIRROR_68
    assert sorted(m.tolist()) == list(range(68))
    np.testing.assert_array_equal(m[m], np.arange(68))
    assert m[36] == 45 and m[48] == 54 and m[0] == 16 and m[21] == 22 and m[40] == 47
    for fixed in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert m[fixed] == fixed


def test_centres_follow_rules():
    lm = TEMPLATE_68
    c = aus.centres(lm, [12, 6, 17])
    assert c.shape == (3, 2, 2)
    np.testing.assert_allclose(c[0, 0], lm[48])
    np.testing.assert_allclose(c[0, 1], lm[54])
    np.testing.assert_allclose(c[1, 0], lm[[1, 41, 31]].mean(0))
    np.testing.assert_allclose(c[2, 0], (lm[57] + lm[8]) / 2)
    # AU1's forehead centre sits 0.3 IOD above the mid-brow, along the face's own axis.
    iod = np.linalg.norm(lm[45] - lm[36])
    c1 = aus.centres(lm, [1])[0]
    assert c1.shape == (3, 2)
    ex = (lm[45] - lm[36]) / iod
    ey = np.array([-ex[1], ex[0]])
    np.testing.assert_allclose(c1[2], lm[[21, 22]].mean(0) - 0.3 * iod * ey)


def test_centres_pad_with_nan_and_batch():
    batch = np.stack([TEMPLATE_68, TEMPLATE_68 + 5.0])
    c = aus.centres(batch, [12, 10])
    assert c.shape == (2, 2, 3, 2)
    assert np.isnan(c[:, 0, 2]).all() and np.isfinite(c[:, 1]).all()
    np.testing.assert_allclose(c[1, 1, 2], c[0, 1, 2] + 5.0)


def test_centres_rotate_with_the_face():
    theta = np.deg2rad(25)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    origin = np.array([128.0, 128.0])
    turned = (TEMPLATE_68 - origin) @ rot.T + origin
    expected = (aus.centres(TEMPLATE_68, [1]) - origin) @ rot.T + origin
    np.testing.assert_allclose(aus.centres(turned, [1]), expected, atol=1e-9)


@pytest.mark.parametrize("number", sorted(aus.CATALOGUE))
def test_every_au_centre_set_is_mirror_symmetric(number):
    """Flipping the face maps each AU's centre set onto itself (needed for flip augmentation)."""
    width = 256
    lm = TEMPLATE_68
    flipped = lm[aus.MIRROR_68].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    original = aus.centres(lm, [number])[0]
    mirrored = aus.centres(flipped, [number])[0]
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    key = lambda pts: sorted(map(tuple, np.round(pts, 6)))  # noqa: E731
    assert key(original) == key(mirrored)


def test_openface_set_is_openfaces_17_in_its_order():
    assert aus.AU_SETS["openface"] == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
    assert aus.resolve_aus("OpenFace") == aus.AU_SETS["openface"]
    assert [aus.column_name(a) for a in aus.AU_SETS["openface"]][-1] == "AU45_r"


def test_au45_blink_centres_sit_between_the_lids():
    au45 = aus.get_au(45)
    assert au45.name == "Blink" and au45.region == "upper"
    c = aus.centres(TEMPLATE_68, [45])[0]
    np.testing.assert_allclose(c[0], TEMPLATE_68[[37, 38, 40, 41]].mean(0))
    np.testing.assert_allclose(c[1], TEMPLATE_68[[43, 44, 46, 47]].mean(0))
    # between the lids: below the upper lid, above the lower one, between the corners
    assert TEMPLATE_68[37, 1] < c[0, 1] < TEMPLATE_68[41, 1]
    assert TEMPLATE_68[36, 0] < c[0, 0] < TEMPLATE_68[39, 0]


def test_regions_group_the_upper_and_lower_face():
    upper = {a for a, au in aus.CATALOGUE.items() if au.region == "upper"}
    assert upper == {1, 2, 4, 5, 6, 7, 45}
    assert all(au.region in ("upper", "lower") for au in aus.CATALOGUE.values())
