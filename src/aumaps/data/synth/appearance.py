"""AU appearance: what the landmarks' geometry cannot show. Furrows, wrinkles, dimples and
bulges as blurred dark and light strokes whose strength grows with the intensity
(:class:`_Shading`, :func:`_draw_appearance`). What shows between the lids and the lips is
:mod:`.interiors`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from .canvas import _ellipse, _fill, _stroke
from .geometry import REVISION, _axes


class _Shading:
    """Dark and light strokes on a face, accumulated, blurred and multiplied into an image.

    Sizes are in IOD along the face's axes (``dx`` across, ``dy`` down); amplitudes are the
    fraction of brightness removed (dark) or of the distance to white added (light), scaled
    by the face's ``strength`` (:attr:`Identity.creases`). ``fine`` layers are blurred little
    (lines, wrinkles), ``broad`` ones much (bulges, shadows).
    """

    LAYERS = ("dark_fine", "dark_broad", "light_fine", "light_broad")

    def __init__(self, landmarks: np.ndarray, shape: tuple[int, int], strength: float) -> None:
        self.lms = landmarks
        self.shape = shape
        self.ex, self.ey, self.iod = _axes(landmarks)
        self.angle = float(np.degrees(np.arctan2(self.ex[1], self.ex[0])))
        self.strength = strength
        self.layers = {key: np.zeros(shape, np.float32) for key in self.LAYERS}

    def at(self, base: int | Sequence[int] | np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """A point ``(dx, dy)`` IOD from landmark ``base`` (or the mean of several, or a point)."""
        if isinstance(base, np.ndarray) and base.shape == (2,):
            point = base
        else:
            point = self.lms[np.atleast_1d(base)].mean(axis=0)
        return point + self.iod * (dx * self.ex + dy * self.ey)

    def line(
        self,
        points: Sequence[np.ndarray],
        amp: float,
        width: float = 0.02,
        layer: str = "dark_fine",
    ) -> None:
        """A polyline through ``points`` (``(2,)`` each), ``width`` IOD thick."""
        if amp > 0:
            stroke = _stroke(self.shape, np.array(points), width * self.iod)
            self.layers[layer] += (amp * self.strength) * stroke

    def spot(self, centre: np.ndarray, rx: float, ry: float, amp: float, layer: str = "dark_broad") -> None:
        """An ellipse of half-axes ``rx``, ``ry`` IOD along the face's axes."""
        if amp > 0:
            blob = _ellipse(self.shape, centre, (rx * self.iod, ry * self.iod), self.angle)
            self.layers[layer] += (amp * self.strength) * blob

    def area(self, polygon: Sequence[np.ndarray], amp: float, layer: str = "light_fine") -> None:
        """The inside of ``polygon`` (points ``(2,)`` each), evenly."""
        if amp > 0:
            self.layers[layer] += (amp * self.strength) * _fill(self.shape, np.array(polygon))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (float32 ``(H, W, 3)``) with the strokes blurred and applied."""
        sigma = {"fine": 0.012 * self.iod + 0.3, "broad": 0.05 * self.iod}
        blurred = {key: cv2.GaussianBlur(layer, (0, 0), sigma[key.split("_")[1]]) for key, layer in self.layers.items()}
        dark = np.clip(blurred["dark_fine"] + blurred["dark_broad"], 0.0, 0.9)
        light = np.clip(blurred["light_fine"] + blurred["light_broad"], 0.0, 0.6)
        tint = np.array([0.85, 1.0, 1.05], np.float32)  # creases look reddish-brown
        image = image * (1.0 - dark[..., None] * tint)
        return image + (255.0 - image) * light[..., None]


def _draw_appearance(
    paint: _Shading,
    levels: Mapping[int, float],
    rng: np.random.Generator,
    sides: Mapping[int, tuple[float, float]] | None = None,
    revision: int = REVISION,
) -> None:
    """Draw the appearance changes of the AUs at ``levels`` (intensity / 5) onto ``paint``;
    an AU named in ``sides`` (``(left, right)`` factors) acts that much on each half of the
    face, and its midline changes take the mean. ``revision`` is the generator's
    (:data:`~.geometry.REVISION`): revision 1 drew AU23 as faint lines over the upper lip only,
    revision 2 with dimples at the narrowed corners and AU20 with a single fold."""
    sides = sides or {}

    def lv(au: int, side: int = 0) -> float:
        """The level of ``au`` on the image-left (-1) or right (1) half, or the midline (0)."""
        left, right = sides.get(au, (1.0, 1.0))
        factor = left if side < 0 else right if side > 0 else 0.5 * (left + right)
        return levels.get(au, 0.0) * factor

    j = lambda: rng.normal(0.0, 0.006)  # noqa: E731 - small jitter of stroke placement, IOD
    p = paint
    # forehead: horizontal wrinkles, central for AU1, lateral for AU2
    if lv(1) or lv(2):
        mid = p.at([21, 22])
        for dy in (-0.16, -0.27, -0.38):
            xs = np.linspace(-0.55, 0.55, 12)
            pts = [p.at(mid, x, dy + j() - 0.06 + 0.2 * x**2) for x in xs]  # arched
            outer = np.where(xs < 0, lv(2, -1), lv(2, 1))  # the outer forehead, per side
            weight = lv(1) * np.exp(-((xs / 0.22) ** 2)) + outer * np.exp(-(((np.abs(xs) - 0.38) / 0.14) ** 2))
            for k in range(len(xs) - 1):
                p.line(pts[k : k + 2], 0.28 * (weight[k] + weight[k + 1]) / 2)
    # glabella: vertical furrows between the lowered brows
    if lv(4):
        for side in (-1, 1):
            p.line(
                [p.at([21, 22], side * 0.05 + j(), 0.02), p.at([21, 22], side * 0.06, -0.14)],
                0.38 * lv(4, side),
            )
        p.spot(p.at([21, 22, 27], 0, -0.02), 0.12, 0.06, 0.10 * lv(4))
        p.line([p.at(27, -0.06, 0.02), p.at(27, 0.06, 0.02)], 0.15 * lv(4))
    for side, _eye, _upper, lower, corner, cheek in (
        (-1, np.r_[36:42], (37, 38), (41, 40), 36, (1, 41, 31)),
        (1, np.r_[42:48], (43, 44), (46, 47), 45, (15, 46, 35)),
    ):
        # AU5 (sclera above the iris) and AU45 (the lids meeting) are drawn by .interiors
        # AU6: crow's feet, infraorbital furrow, cheek bulge
        if lv(6, side):
            for angle in (-0.45, 0.0, 0.4):
                start = p.at(corner, side * 0.07, 0.0)
                end = p.at(corner, side * (0.07 + 0.13 * np.cos(angle)), 0.13 * np.sin(angle) + j())
                p.line([start, end], 0.32 * lv(6, side))
            p.line(
                [
                    p.at(lower[0], side * 0.03, 0.09),
                    p.at(list(lower), 0, 0.11 + j()),
                    p.at(lower[1], -side * 0.04, 0.08),
                ],
                0.3 * lv(6, side),
            )
            p.spot(p.at(list(cheek), 0, -0.02), 0.16, 0.10, 0.18 * lv(6, side), "light_broad")
            p.spot(p.at(list(cheek), 0, 0.14), 0.14, 0.05, 0.12 * lv(6, side))
        # AU7 (and AU6): the tense lower lid bulges
        tense = max(lv(7, side), 0.5 * lv(6, side))
        if tense:
            p.line([p.at(lower[0], 0, 0.035), p.at(lower[1], 0, 0.035)], 0.28 * tense)
            p.line(
                [p.at(lower[0], 0, 0.015), p.at(lower[1], 0, 0.015)],
                0.15 * tense,
                layer="light_fine",
            )
        # AU9: wrinkles on the side of the nose
        if lv(9, side):
            for dy in (-0.02, 0.03):
                p.line([p.at(29, side * 0.03, dy + j()), p.at(29, side * 0.11, dy - 0.05)], 0.3 * lv(9, side))
        # nasolabial furrow: AU9 and AU10 deepen its upper part, AU12 all of it
        upper_part, whole = max(lv(10, side), 0.6 * lv(9, side)), lv(12, side)
        lip_corner, nose_wing = (48, 31) if side < 0 else (54, 35)
        wing = p.at(nose_wing, side * 0.05, -0.02)
        mid = p.at(lip_corner, side * (0.12 + 0.04 * whole), -0.12 + j())
        end = p.at(lip_corner, side * (0.09 + 0.03 * whole), 0.08)
        if upper_part:
            p.line([wing, (wing + mid) / 2, mid], 0.38 * upper_part, width=0.025)
        if whole:
            p.line([wing, mid, end], 0.34 * whole, width=0.025)
            p.spot(p.at(lip_corner, side * 0.2, -0.14), 0.11, 0.08, 0.16 * whole, "light_broad")
            p.line(
                [p.at(lip_corner, side * 0.015), p.at(lip_corner, side * 0.05, -0.035)],
                0.25 * whole,
            )
        # AU14: dimple beside the corner, a short vertical fold at the corner
        if lv(14, side):
            p.spot(p.at(lip_corner, side * 0.07, -0.01 + j()), 0.022, 0.04, 0.55 * lv(14, side), "dark_fine")
            p.line(
                [p.at(lip_corner, side * 0.025, -0.04), p.at(lip_corner, side * 0.03, 0.035)],
                0.35 * lv(14, side),
            )
            p.spot(p.at(lip_corner, -side * 0.01, -0.03), 0.03, 0.02, 0.15 * lv(14, side), "light_fine")
        # AU15: a fold from the corner down
        if lv(15, side):
            p.line(
                [
                    p.at(lip_corner, side * 0.02, 0.01),
                    p.at(lip_corner, side * 0.06, 0.09),
                    p.at(lip_corner, side * 0.07, 0.16),
                ],
                0.3 * lv(15, side),
            )
        # AU20: stretch folds sideways from the corner; from revision 3 two folds running out
        # and down, and the skin beside the corner stretched pale
        if lv(20, side) and revision < 3:
            p.line(
                [p.at(lip_corner, side * 0.04, 0.02), p.at(lip_corner, side * 0.15, 0.07 + j())],
                0.25 * lv(20, side),
            )
        elif lv(20, side):
            for dy in (0.0, 0.05):
                p.line(
                    [p.at(lip_corner, side * 0.03, 0.01 + dy), p.at(lip_corner, side * 0.16, 0.09 + dy + j())],
                    0.3 * lv(20, side),
                )
            p.spot(p.at(lip_corner, side * 0.08, -0.03), 0.06, 0.04, 0.12 * lv(20, side), "light_broad")
    # AU9: across the nose bridge
    if lv(9):
        for dy in (-0.04, 0.0, 0.04):
            p.line(
                [p.at(28, -0.07, dy + j()), p.at(28, 0.0, dy - 0.01), p.at(28, 0.07, dy + j())],
                0.3 * lv(9),
            )
    # AU17: chin boss wrinkling (dimpled texture) and the furrow under the lower lip
    if lv(17):
        chin = p.at([57, 8], 0, 0.03)
        for _ in range(22):
            offset = rng.uniform(-1, 1, 2) * (0.15, 0.07)
            p.spot(p.at(chin, *offset), 0.012, 0.012, 0.35 * lv(17), "dark_fine")
        p.spot(chin, 0.14, 0.06, 0.12 * lv(17), "light_broad")
        p.line(
            [p.at(57, -0.13, 0.07), p.at(57, 0, 0.1 + j()), p.at(57, 0.13, 0.07)],
            0.35 * lv(17),
            width=0.025,
        )
    # AU23: vertical lines above the narrowed upper lip; AU24: bulges above and below
    if lv(23) and revision == 1:
        for x in (-0.07, -0.03, 0.03, 0.07):
            p.line([p.at(51, x, -0.05), p.at(51, x + j(), -0.005)], 0.25 * lv(23))
    elif lv(23) and revision >= 3:
        # revision 3: the tightened reds pale, their border stands out as a pale ridge over a
        # dark rim, and both crease vertically
        upper, lower = (48, 49, 50, 51, 52, 53, 54), (54, 55, 56, 57, 58, 59, 48)
        p.area([p.at(i) for i in range(48, 60)], 0.06 * lv(23))
        p.line([p.at(i, 0, -0.012) for i in upper], 0.35 * lv(23), width=0.015, layer="light_fine")
        p.line([p.at(i, 0, 0.012) for i in lower], 0.3 * lv(23), width=0.015, layer="light_fine")
        p.line([p.at(i) for i in upper], 0.3 * lv(23), width=0.012)
        p.line([p.at(i) for i in lower], 0.25 * lv(23), width=0.012)
        for x in (-0.07, -0.035, 0.0, 0.035, 0.07):
            p.line([p.at(51, x, 0.0), p.at(62, x + j(), 0.0)], 0.35 * lv(23), width=0.012)
            p.line([p.at(66, x, 0.0), p.at(57, x + j(), 0.0)], 0.35 * lv(23), width=0.012)
    elif lv(23):
        # revision 2: the tightened reds' border stands out as a pale ridge over a dark rim,
        # both reds crease vertically, and the narrowed corners dimple a little
        upper, lower = (48, 49, 50, 51, 52, 53, 54), (54, 55, 56, 57, 58, 59, 48)
        p.line([p.at(i, 0, -0.012) for i in upper], 0.35 * lv(23), width=0.015, layer="light_fine")
        p.line([p.at(i, 0, 0.012) for i in lower], 0.3 * lv(23), width=0.015, layer="light_fine")
        p.line([p.at(i) for i in upper], 0.3 * lv(23), width=0.012)
        p.line([p.at(i) for i in lower], 0.25 * lv(23), width=0.012)
        for x in (-0.09, -0.05, -0.015, 0.02, 0.055, 0.09):
            p.line([p.at(51, x, 0.0), p.at(62, x + j(), 0.0)], 0.3 * lv(23), width=0.012)
            p.line([p.at(66, x, 0.0), p.at(57, x + j(), 0.0)], 0.3 * lv(23), width=0.012)
        for side, corner in ((-1, 48), (1, 54)):
            p.spot(p.at(corner, side * 0.025, 0.0), 0.02, 0.03, 0.3 * lv(23))
    if lv(24):
        p.spot(p.at(51, 0, -0.07), 0.14, 0.04, 0.18 * lv(24), "light_broad")
        p.spot(p.at(57, 0, 0.06), 0.12, 0.03, 0.15 * lv(24), "light_broad")
        p.line([p.at(i) for i in (60, 61, 62, 63, 64)], 0.35 * lv(24))
