"""The Action Unit catalogue: names, heatmap centres, AU sets and the landmark mirror map.

Every AU that aumaps supports is an :class:`ActionUnit` with its FACS name and the rule that
places its 2–3 heatmap centres from the 68 iBUG/300-W landmarks (0-indexed). A centre is the
mean of a few landmarks plus an offset given in units of the inter-ocular distance (IOD, the
distance between the outer eye corners 36 and 45), measured along the face's own axes (x from
landmark 36 towards 45, y perpendicular to it, pointing down the face), so that a centre sits
on the same spot of the face whatever the head's roll.

The placements start from the public reimplementation quoted in ``method.md`` §2 and from
FG-Net's; where that left an AU with a single centre we added a second one where the same AU
also visibly changes the face. Each rule's comment says what the AU changes there. The exact
table of the BMVC 2018 paper is not public: this one is our choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_INTENSITY",
    "ActionUnit",
    "Centre",
    "CATALOGUE",
    "AU_SETS",
    "MIRROR_68",
    "get_au",
    "resolve_aus",
    "column_name",
    "centres",
    "max_centres",
]


#: Upper end of the FACS intensity scale (levels A–E coded 1–5; 0 = absent).
MAX_INTENSITY = 5.0


@dataclass(frozen=True)
class Centre:
    """One heatmap centre: the mean of ``landmarks`` shifted by ``offset`` (dx, dy) IOD."""

    landmarks: tuple[int, ...]
    offset: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class ActionUnit:
    """An Action Unit: FACS number, FACS name and the rules that place its heatmap centres."""

    number: int
    name: str
    centres: tuple[Centre, ...]
    #: ``"upper"`` (brows, lids, cheeks: FACS's upper-face AUs and the eye AUs) or ``"lower"``
    #: (nose, lips, chin, jaw), as the FACS manual groups them; displays group AUs by it.
    region: str = "lower"

    @property
    def label(self) -> str:
        """Short display label, e.g. ``"AU06"``."""
        return f"AU{self.number:02d}"


def _c(*landmarks: int, dx: float = 0.0, dy: float = 0.0) -> Centre:
    return Centre(tuple(landmarks), (dx, dy))


_AUS = (
    ActionUnit(
        1,
        "Inner Brow Raiser",
        region="upper",
        centres=(
            _c(21, dy=-0.1),  # inner end of the brow on the image's left lifts, forehead above it creases
            _c(22, dy=-0.1),  # same on the image's right
            _c(21, 22, dy=-0.3),  # mid-forehead: horizontal wrinkles gather above the raised inner brows
        ),
    ),
    ActionUnit(
        2,
        "Outer Brow Raiser",
        region="upper",
        centres=(
            _c(18),  # outer part of the left brow arches upwards
            _c(25),  # outer part of the right brow arches upwards
        ),
    ),
    ActionUnit(
        4,
        "Brow Lowerer",
        region="upper",
        centres=(
            _c(21),  # inner brow end pulled down and in
            _c(22),  # same on the other side
            _c(21, 22, 27),  # glabella: vertical furrows between the lowered brows
        ),
    ),
    ActionUnit(
        5,
        "Upper Lid Raiser",
        region="upper",
        centres=(
            _c(37, 38),  # upper lid of the left eye retracts, more sclera shows above the iris
            _c(43, 44),  # upper lid of the right eye
        ),
    ),
    ActionUnit(
        6,
        "Cheek Raiser",
        region="upper",
        centres=(
            _c(1, 41, 31),  # left infraorbital cheek lifts, bagging under the eye and crow's feet
            _c(15, 46, 35),  # right infraorbital cheek
        ),
    ),
    ActionUnit(
        7,
        "Lid Tightener",
        region="upper",
        centres=(
            _c(40, 41),  # lower lid of the left eye tightens and rises
            _c(46, 47),  # lower lid of the right eye
        ),
    ),
    ActionUnit(
        9,
        "Nose Wrinkler",
        (
            _c(31),  # left nostril wing pulled up
            _c(35),  # right nostril wing pulled up
            _c(28),  # wrinkles across the nose bridge
        ),
    ),
    ActionUnit(
        10,
        "Upper Lip Raiser",
        (
            _c(31),  # left nasolabial furrow deepens beside the nostril
            _c(35),  # right nasolabial furrow
            _c(51),  # upper lip centre lifts
        ),
    ),
    ActionUnit(
        12,
        "Lip Corner Puller",
        (
            _c(48),  # left lip corner pulled up and out
            _c(54),  # right lip corner
        ),
    ),
    ActionUnit(
        14,
        "Dimpler",
        (
            _c(48),  # left lip corner tightened inwards, dimple beside it
            _c(54),  # right lip corner
        ),
    ),
    ActionUnit(
        15,
        "Lip Corner Depressor",
        (
            _c(48),  # left lip corner pulled down
            _c(54),  # right lip corner
        ),
    ),
    ActionUnit(
        17,
        "Chin Raiser",
        (
            _c(57, 8),  # chin boss pushed up, wrinkling the skin of the chin
            _c(57),  # lower lip pushed up and out by the chin
        ),
    ),
    ActionUnit(
        20,
        "Lip Stretcher",
        (
            _c(48),  # left lip corner pulled sideways
            _c(54),  # right lip corner
            _c(51),  # upper lip flattens as the mouth stretches
        ),
    ),
    ActionUnit(
        23,
        "Lip Tightener",
        (
            _c(51),  # upper lip red narrows
            _c(57),  # lower lip red narrows
        ),
    ),
    ActionUnit(
        24,
        "Lip Pressor",
        (
            _c(51),  # upper lip pressed down on the lower one, bulging above
            _c(57),  # lower lip pressed up, bulging below
        ),
    ),
    ActionUnit(
        25,
        "Lips Part",
        (
            _c(62),  # upper inner lip separates from the lower one
            _c(66),  # lower inner lip
        ),
    ),
    ActionUnit(
        26,
        "Jaw Drop",
        (
            _c(62, 66),  # mouth opening between the inner lips
            _c(8),  # chin tip moves down with the jaw
        ),
    ),
    ActionUnit(
        45,
        "Blink",
        region="upper",
        centres=(
            _c(37, 38, 40, 41),  # left eye: the lids meet over the iris
            _c(43, 44, 46, 47),  # right eye
        ),
    ),
)

#: Every supported AU by FACS number.
CATALOGUE: dict[int, ActionUnit] = {au.number: au for au in _AUS}

#: Named AU sets, in the order of their data set's published tables.
AU_SETS: dict[str, tuple[int, ...]] = {
    "bp4d": (6, 10, 12, 14, 17),
    "disfa": (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26),
    # OpenFace 2.2's intensity AUs, in its column order (the bundled default model's set)
    "openface": (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45),
    "all": tuple(CATALOGUE),
}


def _mirror_68() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw line
    pairs += [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    mirror = np.arange(68)
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return mirror


#: Landmark permutation for a horizontal flip: landmark ``i`` of the flipped image is landmark
#: ``MIRROR_68[i]`` of the original, with x mirrored. Self-symmetric points (nose, lip centres,
#: chin) map to themselves.
MIRROR_68: np.ndarray = _mirror_68()


def get_au(number: int) -> ActionUnit:
    """The catalogue entry of AU ``number``; a clear error for an unsupported one."""
    try:
        return CATALOGUE[int(number)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"AU {number!r} is not in the aumaps catalogue; supported AUs: " + ", ".join(str(n) for n in CATALOGUE)
        ) from None


def resolve_aus(aus: str | int | Iterable[int | str]) -> tuple[int, ...]:
    """Turn an AU set name (``"bp4d"``), ``"6,12"``, ``"AU06"`` or a list into AU numbers.

    Order is kept (it is the channel order of a model); duplicates are an error.
    """
    if isinstance(aus, str):
        key = aus.strip().lower()
        if key in AU_SETS:
            return AU_SETS[key]
        items: list = [s for s in key.replace(";", ",").split(",") if s.strip()]
    elif isinstance(aus, (int, np.integer)):
        items = [aus]
    else:
        items = list(aus)
    numbers = []
    for item in items:
        text = str(item).strip().upper()
        if text.startswith("AU"):
            text = text[2:].split("_")[0]
        try:
            number = int(text)
        except ValueError:
            raise ValueError(
                f"cannot read {item!r} as an AU; use a number (12), a label (AU12) or a set name ({', '.join(AU_SETS)})"
            ) from None
        numbers.append(get_au(number).number)
    if not numbers:
        raise ValueError("the AU list is empty")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"the AU list {numbers} names an AU twice")
    return tuple(numbers)


def column_name(au: int, kind: str = "r") -> str:
    """OpenFace's column name: ``column_name(6) == "AU06_r"`` (intensity), ``kind="c"`` for occurrence."""
    return f"AU{int(au):02d}_{kind}"


def max_centres(aus: Sequence[int]) -> int:
    """The largest number of centres among ``aus`` (the C dimension of :func:`centres`)."""
    return max(len(get_au(a).centres) for a in aus)


def centres(landmarks: np.ndarray, aus: Sequence[int]) -> np.ndarray:
    """Place the heatmap centres of ``aus`` from 68 landmarks.

    Args:
        landmarks: ``(..., 68, 2)`` x, y points (any frame: image or crop).
        aus: AU numbers, in channel order (length A).

    Returns:
        ``(..., A, C, 2)`` centres in the same frame as ``landmarks``, C = :func:`max_centres`;
        AUs with fewer than C centres are padded with NaN.
    """
    lms = np.asarray(landmarks, dtype=np.float64)
    if lms.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must have shape (..., 68, 2), got {lms.shape}")
    ex = lms[..., 45, :] - lms[..., 36, :]
    iod = np.linalg.norm(ex, axis=-1, keepdims=True)
    ex = ex / np.maximum(iod, 1e-12)
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)  # x axis turned 90° towards the chin
    n_c = max_centres(aus)
    out = np.full(lms.shape[:-2] + (len(aus), n_c, 2), np.nan)
    for a, number in enumerate(aus):
        for c, centre in enumerate(get_au(number).centres):
            point = lms[..., list(centre.landmarks), :].mean(axis=-2)
            dx, dy = centre.offset
            if dx or dy:
                point = point + iod * (dx * ex + dy * ey)
            out[..., a, c, :] = point
    return out
