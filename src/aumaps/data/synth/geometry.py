"""AU geometry: how each Action Unit moves the 68 landmarks.

:data:`DISPLACEMENTS` holds each AU's landmark displacements per intensity unit, in
inter-ocular distances along the face's own axes (:func:`_axes`); :func:`displace_landmarks`
adds up the displacements of several AUs and keeps lids and lips from crossing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...aus import CATALOGUE, MIRROR_68

#: Landmarks on the image-left half of a frontal face; their mirrors (``MIRROR_68``) are on
#: the right half, and the rest (nose ridge, lip and chin centres) on the midline.
_LEFT_HALF = frozenset((*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67))


def _symmetric(half: Mapping[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Expand a half-face displacement spec into both halves.

    ``half`` names image-left and midline landmarks with ``(out, dy)``: ``out`` away from the
    face's midline, ``dy`` down the face. The result holds ``(dx, dy)`` along the face's axes
    (x from landmark 36 towards 45) for every landmark moved, sorted by index.
    """
    full: dict[int, tuple[float, float]] = {}
    for index, (out, dy) in half.items():
        if index in _LEFT_HALF:
            full[index] = (-out, dy)
            full[int(MIRROR_68[index])] = (out, dy)
        elif MIRROR_68[index] == index:
            if out:
                raise ValueError(f"midline landmark {index} cannot move sideways symmetrically")
            full[index] = (0.0, dy)
        else:
            raise ValueError(f"name image-left landmarks only, got {index}")
    return dict(sorted(full.items()))


#: Landmark displacement of each AU per intensity unit: ``DISPLACEMENTS[au][i] = (dx, dy)``
#: moves landmark ``i`` by ``I·(dx·ex + dy·ey)·IOD`` at intensity ``I``, where ``ex`` is the
#: unit vector from landmark 36 to 45, ``ey`` is ``ex`` turned 90° towards the chin and IOD is
#: the neutral face's inter-ocular distance (36–45). Displacements of several AUs add up.
#: The outer eye corners 36 and 45 never move, so the face's axes and IOD are the neutral
#: face's whatever the expression. Values at intensity 5 stay within about 0.2 IOD, in line
#: with the amplitudes of posed expressions; the directions follow the FACS descriptions
#: (comments give the appearance changes that the geometry cannot show, which
#: :func:`render` draws).
# fmt: off
DISPLACEMENTS: dict[int, dict[int, tuple[float, float]]] = {
    # Inner brow raiser: inner brow ends up, the rest of the brow less so.
    1: _symmetric({21: (0.0, -0.030), 20: (0.0, -0.022), 19: (0.0, -0.012), 18: (0.0, -0.005)}),
    # Outer brow raiser: the outer two-thirds of each brow arch up.
    2: _symmetric({17: (0.0, -0.020), 18: (0.0, -0.028), 19: (0.0, -0.022), 20: (0.0, -0.010)}),
    # Brow lowerer: brows down and drawn together; the upper lids follow a little.
    4: _symmetric({
        21: (-0.012, 0.020), 20: (-0.008, 0.018), 19: (-0.004, 0.014), 18: (0.0, 0.010),
        17: (0.0, 0.006), 37: (0.0, 0.004), 38: (0.0, 0.004),
    }),
    # Upper lid raiser: upper lids retract.
    5: _symmetric({37: (0.0, -0.012), 38: (0.0, -0.012)}),
    # Cheek raiser: cheeks lift and bulge, pushing the lower lids up; the eyes narrow and the
    # outer brows come down a little (crow's feet, infraorbital furrow and bulge drawn).
    6: _symmetric({
        40: (0.0, -0.006), 41: (0.0, -0.010), 37: (0.0, 0.003), 38: (0.0, 0.002),
        1: (0.004, -0.006), 2: (0.006, -0.006), 17: (0.0, 0.004),
    }),
    # Lid tightener: lower lids rise and straighten, upper lids come down slightly.
    7: _symmetric({40: (0.0, -0.012), 41: (0.0, -0.010), 37: (0.0, 0.004), 38: (0.0, 0.004)}),
    # Nose wrinkler: nose wings and tip up, upper lip up a little, brows pulled down
    # (nose-bridge wrinkles drawn).
    9: _symmetric({
        31: (0.003, -0.016), 32: (0.001, -0.014), 33: (0.0, -0.012), 30: (0.0, -0.006),
        29: (0.0, -0.003), 21: (-0.004, 0.010), 20: (0.0, 0.008), 19: (0.0, 0.005),
        50: (0.0, -0.008), 51: (0.0, -0.008), 61: (0.0, -0.006), 62: (0.0, -0.006),
        40: (0.0, -0.004), 41: (0.0, -0.004),
    }),
    # Upper lip raiser: the upper lip's centre rises most, the nose wings a little
    # (nasolabial furrow deepened beside the nose).
    10: _symmetric({
        51: (0.0, -0.022), 50: (0.0, -0.020), 49: (0.0, -0.014), 48: (0.0, -0.006),
        62: (0.0, -0.018), 61: (0.0, -0.016), 60: (0.0, -0.010), 31: (0.002, -0.006),
        32: (0.0, -0.004), 33: (0.0, -0.003),
    }),
    # Lip corner puller: corners pulled up and out along the zygomatic line, the lips next to
    # them partly, the lower cheek a little (nasolabial furrow, cheek bulge drawn).
    12: _symmetric({
        48: (0.018, -0.026), 60: (0.016, -0.022), 49: (0.010, -0.014), 59: (0.010, -0.016),
        61: (0.006, -0.010), 67: (0.006, -0.010), 50: (0.004, -0.006), 58: (0.004, -0.006),
        2: (0.004, -0.004), 3: (0.004, -0.004),
    }),
    # Dimpler: corners tightened inwards and slightly up (dimples beside them drawn).
    14: _symmetric({
        48: (-0.012, -0.006), 60: (-0.010, -0.004), 49: (-0.005, -0.002), 59: (-0.005, -0.002),
    }),
    # Lip corner depressor: corners pulled down, the lips next to them partly.
    15: _symmetric({
        48: (0.004, 0.022), 60: (0.002, 0.016), 59: (0.002, 0.012), 49: (0.0, 0.010),
        67: (0.0, 0.008), 61: (0.0, 0.006), 58: (0.0, 0.004),
    }),
    # Chin raiser: chin boss and lower lip pushed up, the closed mouth's inner lips with them,
    # the corners dip (chin wrinkling and the furrow under the lower lip drawn).
    17: _symmetric({
        8: (0.0, -0.016), 7: (0.0, -0.010), 6: (0.0, -0.005), 57: (0.0, -0.016),
        58: (0.0, -0.014), 59: (0.0, -0.008), 66: (0.0, -0.010), 67: (0.0, -0.010),
        62: (0.0, -0.010), 61: (0.0, -0.008), 51: (0.0, -0.006), 50: (0.0, -0.004),
        48: (0.0, 0.004),
    }),
    # Lip stretcher: corners pulled sideways and a little down, the lips lengthen and flatten
    # (stretched skin beside the corners and folds running out and down from them drawn).
    20: _symmetric({
        48: (0.030, 0.006), 60: (0.026, 0.004), 49: (0.016, 0.002), 59: (0.016, 0.002),
        61: (0.008, 0.0), 67: (0.008, 0.0), 50: (0.006, 0.004), 58: (0.006, -0.002),
        51: (0.0, 0.006), 57: (0.0, -0.004),
    }),
    # Lip tightener: the mouth narrows (the corners come in, the inner lips with them) and the
    # lip reds thin to a tight, straight line: their outer edges close on the inner lips by a
    # share of each lip's own height (:data:`_TIGHTEN`, applied by :func:`displace_landmarks`;
    # the paled, ridged border and vertical lines drawn).
    23: _symmetric({
        48: (-0.016, 0.0), 60: (-0.011, 0.0), 49: (-0.010, 0.0), 59: (-0.010, 0.0),
        61: (-0.005, 0.0), 67: (-0.005, 0.0), 50: (-0.004, 0.0), 58: (-0.004, 0.0),
    }),
    # Lip pressor: lips pressed together, the reds flattened and spread a little sideways; the
    # mouth does not narrow (bulges above and below and the pressed line drawn).
    24: _symmetric({
        51: (0.0, 0.010), 50: (0.0, 0.010), 49: (0.0, 0.006), 57: (0.0, -0.010),
        58: (0.0, -0.010), 59: (0.0, -0.006), 48: (0.004, 0.0),
    }),
    # Lips part: inner lips separate, the lower lip moves most (mouth interior drawn).
    25: _symmetric({
        62: (0.0, -0.012), 61: (0.0, -0.010), 51: (0.0, -0.006), 50: (0.0, -0.004),
        66: (0.0, 0.024), 67: (0.0, 0.020), 57: (0.0, 0.018), 58: (0.0, 0.016),
        59: (0.0, 0.010),
    }),
    # Jaw drop: the jaw swings down, carrying the chin, the lower jaw line, the lower lip and
    # the lower inner lip; the corners follow a little and come inwards. At intensity 5 the chin
    # drops 0.3 IOD (a mouth opened wide, with AU25, parts by about 0.45 IOD).
    26: _symmetric({
        8: (0.0, 0.060), 7: (0.0, 0.054), 6: (0.0, 0.042), 5: (0.0, 0.030),
        4: (0.0, 0.018), 3: (0.0, 0.008), 57: (0.0, 0.048), 58: (0.0, 0.045),
        59: (0.0, 0.032), 66: (0.0, 0.046), 67: (0.0, 0.042), 48: (-0.004, 0.014),
        60: (-0.003, 0.016),
    }),
    # Blink: the lids close over the eye. Its geometry is relative to each eye's own opening
    # (intensity 5 closes it whatever its size), so it is applied by :func:`displace_landmarks`
    # after the others (:data:`_BLINK`), not as a displacement per intensity unit.
    45: {},
}
# fmt: on

#: The generator's revision: what :func:`render` draws by default. Data sets record the revision
#: they were rendered with; an older one is rendered again, byte for byte, by asking for it.
#: Revision 1 (the bundled model's stages 1-4) drew AU23 almost as AU24, both thinning the
#: lip reds with the mouth's width nearly kept; revision 2 narrows the mouth for AU23
#: (:data:`DISPLACEMENTS`) and draws the two apart (:func:`~.appearance._draw_appearance`);
#: revision 3 thins AU23's reds by a share of their own height and pales them, without revision 2's dimples at the
#: corners (AU14's cue), and lengthens and flattens the lips for AU20, with stretched skin and
#: folds running out and down from the corners (not up, as AU12's furrow, nor a dimple, as AU14's).
REVISION = 3

# fmt: off
#: What revision 2 moved differently: the AUs' displacements that revision 3 replaced (AU20's
#: corners pulled out without the lips flattening, AU23's reds thinned by half as much).
_REVISION_2 = {
    20: _symmetric({
        48: (0.024, 0.004), 60: (0.020, 0.002), 49: (0.012, 0.0), 59: (0.012, 0.002),
        61: (0.006, 0.0), 67: (0.006, 0.0), 50: (0.004, 0.0), 58: (0.004, 0.0),
        51: (0.0, 0.004),
    }),
    23: _symmetric({
        48: (-0.014, 0.0), 60: (-0.010, 0.0), 49: (-0.009, 0.004), 59: (-0.009, -0.004),
        61: (-0.005, 0.0), 67: (-0.005, 0.0), 50: (-0.004, 0.008), 58: (-0.004, -0.008),
        51: (0.0, 0.008), 57: (0.0, -0.008),
    }),
}

#: What revision 1 moved differently from revision 2: the AUs' displacements it replaced.
_REVISION_1 = {
    23: _symmetric({
        51: (0.0, 0.008), 50: (0.0, 0.008), 57: (0.0, -0.008), 58: (0.0, -0.008),
        48: (-0.008, 0.0), 49: (-0.004, 0.002), 59: (-0.004, -0.002),
    }),
    24: _symmetric({
        51: (0.0, 0.010), 50: (0.0, 0.010), 49: (0.0, 0.006), 57: (0.0, -0.010),
        58: (0.0, -0.010), 59: (0.0, -0.006), 48: (-0.004, 0.0),
    }),
}
# fmt: on

_AU_ORDER = tuple(CATALOGUE)


def _displacement_array(table: Mapping[int, Mapping[int, tuple[float, float]]]) -> np.ndarray:
    """``(A, 68, 2)`` displacements per intensity unit, AUs in catalogue order."""
    array = np.zeros((len(_AU_ORDER), 68, 2))
    for a, au in enumerate(_AU_ORDER):
        for i, d in table[au].items():
            array[a, i] = d
    return array


_DISPLACEMENT_ARRAYS = {
    1: _displacement_array({**DISPLACEMENTS, **_REVISION_2, **_REVISION_1}),
    2: _displacement_array({**DISPLACEMENTS, **_REVISION_2}),
    3: _displacement_array(DISPLACEMENTS),
}
#: Every revision the generator can render.
REVISIONS = tuple(_DISPLACEMENT_ARRAYS)


def check_revision(revision: int) -> int:
    """``revision`` if the generator has it, else a ValueError naming the ones it has."""
    if revision not in REVISIONS:
        raise ValueError(f"generator revision {revision!r} does not exist; revisions: {', '.join(map(str, REVISIONS))}")
    return int(revision)


#: Which half of the face each landmark lies on: 0 image-left, 1 image-right, 2 midline.
_SIDE = np.array([0 if i in _LEFT_HALF else 2 if MIRROR_68[i] == i else 1 for i in range(68)])

#: The blink's lids, per eye: upper-lid landmarks and the lower-lid landmarks facing them.
#: At intensity I each pair's gap shrinks to ``1 - I/5`` of what it was, the upper lid doing
#: ``_BLINK_UPPER`` of the travel (the upper lid closes the eye; the lower one barely moves).
_BLINK = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
_BLINK_UPPER = 0.85

#: AU23's thinning of the lip reds (revision 3 on), per lip: ``(outer, inner, share)``, the
#: outer edge's landmark, the inner lip's facing it and the share of the travel it takes; at
#: intensity I the outer edge closes ``_TIGHTEN_RATE · I · share`` of its distance to the inner
#: one (0.6 at intensity 5), so thin and full lips thin alike and the warp never folds.
_TIGHTEN = (
    (50, 61, 1.0), (51, 62, 1.0), (52, 63, 1.0), (49, 61, 0.5), (53, 63, 0.5),
    (58, 67, 1.0), (57, 66, 1.0), (56, 65, 1.0), (59, 67, 0.5), (55, 65, 0.5),
)  # fmt: skip
_TIGHTEN_RATE = 0.12


def _axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's axes: ``ex`` (36 → 45), ``ey`` (``ex`` turned towards the chin), IOD."""
    ex = landmarks[45] - landmarks[36]
    iod = float(np.hypot(*ex))
    ex = ex / iod
    return ex, np.array([-ex[1], ex[0]]), iod


#: ``(upper, lower)`` landmarks that strong AU combinations must not make cross: the lids
#: of each eye and the two edges of each lip. They keep at least ``_MIN_GAP`` of their
#: neutral distance (eyes close to a slit, lips thin to a line).
_NO_CROSSING = (
    (37, 41), (38, 40), (43, 47), (44, 46),
    (50, 61), (51, 62), (52, 63), (67, 58), (66, 57), (65, 56),
)  # fmt: skip
_MIN_GAP = 0.25


def displace_landmarks(
    landmarks: np.ndarray,
    intensities: Mapping[int, float],
    sides: Mapping[int, tuple[float, float]] | None = None,
    revision: int = REVISION,
) -> np.ndarray:
    """Move neutral landmarks as the AUs at ``intensities`` do (:data:`DISPLACEMENTS`).

    The AUs' displacements add up; where a strong combination would make an eye's lids or a
    lip's edges cross (AU6 + AU7 + AU9 on the lower lids, AU23 + AU24 on the lips), the two
    are pushed apart symmetrically to a quarter of their neutral distance. From revision 3,
    AU23 then thins the lip reds by a share of their height (:data:`_TIGHTEN`); a blink (AU45)
    then closes each eye by the fraction ``I/5`` of its remaining opening.

    Args:
        landmarks: ``(68, 2)`` neutral landmarks, x, y in pixels.
        intensities: AU number → intensity in [0, 5] (absent AUs are 0).
        sides: AU number → ``(left, right)`` factors in [0, 1] for an asymmetric action: the
            image-left half of the face moves ``left`` times as far, the right half ``right``
            times, the midline their mean (absent AUs act fully on both sides).
        revision: The generator's revision (:data:`REVISION`) whose displacements to use.

    Returns:
        ``(68, 2)`` float64 deformed landmarks.
    """
    neutral = np.asarray(landmarks, dtype=np.float64)
    levels = np.array([float(intensities.get(au, 0.0)) for au in _AU_ORDER])
    unknown = (set(intensities) | set(sides or {})) - set(_AU_ORDER)
    if unknown:
        raise ValueError(f"AUs {sorted(unknown)} are not in the catalogue")
    factors = np.ones((len(_AU_ORDER), 3))  # per AU: left, right, midline
    for au, (left, right) in (sides or {}).items():
        factors[_AU_ORDER.index(au)] = (left, right, 0.5 * (left + right))
    weights = levels[:, None] * factors[:, _SIDE]  # (A, 68)
    offsets = np.einsum("ai,aij->ij", weights, _DISPLACEMENT_ARRAYS[check_revision(revision)])  # (68, 2) in face units
    ex, ey, iod = _axes(neutral)
    lms = neutral + iod * (offsets[:, :1] * ex + offsets[:, 1:] * ey)
    for upper, lower in _NO_CROSSING:
        floor = _MIN_GAP * max(float((neutral[lower] - neutral[upper]) @ ey), 0.0)
        short = floor - float((lms[lower] - lms[upper]) @ ey)
        if short > 0:
            lms[upper] -= 0.5 * short * ey
            lms[lower] += 0.5 * short * ey
    tighten = float(intensities.get(23, 0.0)) * _TIGHTEN_RATE
    if tighten > 0 and revision >= 3:
        left, right = (sides or {}).get(23, (1.0, 1.0))
        for outer, inner, share in _TIGHTEN:
            side = (left, right, 0.5 * (left + right))[_SIDE[outer]]
            lms[outer] += min(tighten * share * side, 1.0) * (lms[inner] - lms[outer])
    blink = float(intensities.get(45, 0.0)) / 5.0
    if blink > 0:
        left, right = (sides or {}).get(45, (1.0, 1.0))
        for eye, side in zip(_BLINK, (left, right)):
            closure = float(np.clip(blink * side, 0.0, 1.0))
            for upper, lower in eye:
                gap = lms[lower] - lms[upper]
                lms[upper] += _BLINK_UPPER * closure * gap
                lms[lower] -= (1.0 - _BLINK_UPPER) * closure * gap
    return lms
