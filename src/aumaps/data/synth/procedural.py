"""Procedural identities: faces drawn from scratch at randomly varied canonical landmarks
(:func:`procedural_face`), laid out by :class:`_FacePlan`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .canvas import _CANONICAL_68, CANVAS, _ellipse, _fill, _over, _smooth_noise, _stroke
from .geometry import _axes
from .identity import Identity, _head_polygon, _random_skin_lab, _shape_offsets
from .looks import _HAIR_COLOURS, _age, _facial_hair, _skin_texture, sample_look
from .real import _transplant

_IRIS_COLOURS = np.array([[70, 45, 25], [40, 28, 20], [90, 110, 130], [80, 100, 70], [110, 90, 60]], np.float32)


def _procedural_template() -> np.ndarray:
    """The canonical landmarks for drawn faces, with the mouth closed. dlib reads the outline
    of a drawn face about 0.06 IOD wider and 0.07 IOD higher on the sides (0.025 at the chin)
    than a real one's, so drawn faces get their jaw landmarks moved there."""
    lms = _CANONICAL_68.copy()
    ex, ey, iod = _axes(lms)
    jaw = np.arange(17)
    weight = np.clip(np.abs(jaw - 8) / 4.0, 0.35, 1.0)
    side = np.sign(jaw - 8)
    lms[jaw] += iod * (0.06 * (side * weight)[:, None] * ex - 0.07 * weight[:, None] * ey)
    meet = (lms[[61, 62, 63]] + lms[[67, 66, 65]]) / 2  # a closed mouth: the inner lips meet
    lms[[61, 62, 63]] = lms[[67, 66, 65]] = meet
    return lms


_PROCEDURAL_68 = _procedural_template()


class _FacePlan:
    """Where the parts of a drawn face go: landmarks, face axes and the ``(H, W)`` masks of
    head, ears, neck, shoulders, hair (behind the head) and the hair's front (over it)."""

    def __init__(self, lms: np.ndarray, rng: np.random.Generator) -> None:
        self.lms = lms
        self.shape = (CANVAS, CANVAS)
        self.ex, self.ey, self.iod = _axes(lms)
        self.angle = float(np.degrees(np.arctan2(self.ex[1], self.ex[0])))
        self.head = _fill(self.shape, _head_polygon(lms, forehead=rng.uniform(0.75, 0.95)))
        ear_size = self.px(0.12, 0.24)
        self.ears = sum(
            _ellipse(self.shape, self.at(lms[[a, b]].mean(0), side * 0.06), ear_size, self.angle)
            for side, a, b in ((-1, 1, 3), (1, 15, 13))
        )
        neck = [(4, 0.12, 0.0), (12, -0.12, 0.0), (12, -0.05, 3.0), (4, 0.05, 3.0)]
        self.neck = _fill(self.shape, np.array([self.at(lms[i], dx, dy) for i, dx, dy in neck]))
        shoulders = [(-0.5, 0.45), (0.5, 0.45), (1.6, 0.75), (2.2, 3.0), (-2.2, 3.0), (-1.6, 0.75)]
        outline = np.array([self.at(lms[8], dx, dy) for dx, dy in shoulders])
        self.shoulders = cv2.GaussianBlur(_fill(self.shape, outline), (0, 0), 0.08 * self.iod)
        self.hair, self.fringe = self._hair(rng)

    def at(self, point: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """``point`` moved by ``(dx, dy)`` IOD along the face's axes."""
        return point + self.iod * (dx * self.ex + dy * self.ey)

    def px(self, *sizes: float) -> tuple[float, ...]:
        """Sizes in IOD as pixels."""
        return tuple(s * self.iod for s in sizes)

    def _hair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the hair: an ellipse over the head that falls to a random length, and its
        part above a wavy hairline, which covers the forehead."""
        centre = self.at(self.lms[[19, 24]].mean(0), dy=-0.15)
        yy, xx = np.mgrid[0 : self.shape[0], 0 : self.shape[1]].astype(np.float32)
        u = ((xx - centre[0]) * self.ex[0] + (yy - centre[1]) * self.ex[1]) / self.iod
        v = ((xx - centre[0]) * self.ey[0] + (yy - centre[1]) * self.ey[1]) / self.iod
        width, top = rng.uniform(0.95, 1.15), rng.uniform(0.85, 1.1)
        length = rng.choice([0.05, 0.3, 0.9, 1.6], p=[0.2, 0.3, 0.3, 0.2])  # cropped ... long
        below = np.maximum(v, 0.0) / length
        hair = np.where(v < 0, (u / width) ** 2 + (v / top) ** 2 < 1, (u / width) ** 4 + below**4 < 1)
        wave = 0.05 * np.sin(7 * u + rng.uniform(0, 6))
        hairline = v < -0.45 - rng.uniform(0.0, 0.15) + 0.35 * u**2 + wave
        return hair.astype(np.float32), (hair & hairline).astype(np.float32)

    def shading(self, rng: np.random.Generator) -> np.ndarray:
        """``(H, W)`` brightness factors (about 0.45–1.05) of the face's relief lit from a
        random direction: a dome over the head, brow ridges, nose, cheeks, lips and chin
        raised, eye sockets sunk."""
        lms, at, px = self.lms, self.at, self.px
        height = cv2.GaussianBlur(self.head, (0, 0), 0.35 * self.iod) * 1.2
        ridge = _stroke(self.shape, lms[27:31], 0.09 * self.iod)
        height += cv2.GaussianBlur(ridge, (0, 0), 0.05 * self.iod) * 0.5
        bumps = [
            (at(lms[30], dy=-0.01), px(0.09, 0.08), 0.6),  # nose tip
            (at(lms[57], dy=0.02), px(0.2, 0.07), 0.25),  # lower lip
            (at(lms[51], dy=-0.05), px(0.16, 0.07), 0.2),  # upper lip
            (at(lms[8], dy=-0.12), px(0.22, 0.12), 0.3),  # chin
        ]
        for eye, cheek, brow in ((np.r_[36:42], [1, 41, 31], 19), (np.r_[42:48], [15, 46, 35], 24)):
            bumps += [
                (at(lms[cheek].mean(0), dy=0.05), px(0.22, 0.15), 0.2),
                (lms[eye].mean(0), px(0.2, 0.12), -0.3),
                (at(lms[brow], dy=0.02), px(0.25, 0.06), 0.25),
            ]
        relief = sum(value * _ellipse(self.shape, c, axes) for c, axes, value in bumps)
        height += cv2.GaussianBlur(relief, (0, 0), 0.08 * self.iod)
        gy, gx = np.gradient(height * self.iod * 0.35)
        light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.1), 1.0])
        light /= np.linalg.norm(light)
        lit = (light[2] - gx * light[0] - gy * light[1]) / np.sqrt(1.0 + gx**2 + gy**2)
        return 0.45 + 0.6 * np.clip(lit, 0.0, 1.0)


def procedural_face(rng: np.random.Generator, subject: str = "procedural") -> Identity:
    """A face drawn from scratch at randomly varied canonical landmarks.

    Skin (random tone, shaded by a relief lit from a random direction, fine texture), ears,
    neck, shoulders, hair (random colour and length), eyes (sclera, iris of random colour,
    pupil, lids), brows, nostrils and lips are placed on the landmarks, which are therefore
    exact.

    Returns:
        An :class:`Identity` with ``source="procedural"``.
    """
    lms = _PROCEDURAL_68 + _shape_offsets(_PROCEDURAL_68, rng, spread=1.6)
    lms += rng.normal(0.0, 0.4, (68, 2))  # small irregularity
    plan = _FacePlan(lms, rng)
    shape, ey, iod = plan.shape, plan.ey, plan.iod
    skin_lab = _random_skin_lab(rng)[None, None].astype(np.float32)
    skin = cv2.cvtColor(skin_lab, cv2.COLOR_Lab2RGB)[0, 0] * 255.0
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    shading = plan.shading(rng)[..., None]

    image = np.empty((*shape, 3), np.float32)
    image[:] = rng.uniform(60, 200, 3)
    clothes = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * 0.3 + rng.uniform(0, 160, 3)
    image = _over(image, plan.shoulders, clothes)
    image = _over(image, plan.hair * (1 - plan.head), hair * 0.8)
    image = _over(image, np.clip(plan.neck + plan.ears, 0, 1), skin * 0.8)
    image = _over(image, plan.head, skin)
    under_jaw = _stroke(shape, lms[2:15] + 0.1 * iod * ey, 0.25 * iod)
    under_jaw = cv2.GaussianBlur(under_jaw, (0, 0), 0.06 * iod) * (1.0 - plan.head) * plan.neck
    image *= 1.0 - 0.5 * under_jaw[..., None]
    image *= shading
    texture = 0.03 * _smooth_noise(rng, shape, 48) + 0.02 * rng.normal(0, 1, shape)
    image *= 1.0 + texture[..., None].astype(np.float32)
    image = _skin_texture(image, plan.head, rng, iod)
    image = _draw_eyes(image, plan, rng)
    # brows: bands thick in the middle, thin at the tail
    for brow in (np.r_[17:22], np.r_[26:21:-1]):
        thick = iod * rng.uniform(0.035, 0.06) * np.array([0.5, 0.9, 1.0, 1.0, 0.9])[:, None]
        outline = np.concatenate([lms[brow] - thick * ey, (lms[brow] + thick * ey)[::-1]])
        band = cv2.GaussianBlur(_fill(shape, outline), (0, 0), 0.012 * iod + 0.5)
        image = _over(image, band * rng.uniform(0.6, 0.9), hair * 0.7)
    # nose: nostrils, the wings' creases, the shadow on the upper lip
    nose = np.zeros(shape, np.float32)
    for a, b, side in ((31, 32, -1), (35, 34, 1)):
        nostril = plan.at((2 * lms[a] + lms[b]) / 3, dy=-0.005)
        nose += 0.8 * _ellipse(shape, nostril, plan.px(0.035, 0.018), plan.angle)
        wing = [plan.at(lms[a], side * dx, dy) for dx, dy in ((0.01, -0.09), (0.05, -0.04), (0.03, 0.01))]
        nose += 0.35 * _stroke(shape, np.array(wing))
    image = _over(image, np.clip(cv2.GaussianBlur(nose, (0, 0), 0.8), 0, 1), skin * 0.3)
    nose_shadow = _stroke(shape, lms[31:36] + 0.03 * iod * ey, 0.04 * iod)
    image *= 1.0 - 0.3 * cv2.GaussianBlur(nose_shadow, (0, 0), 0.025 * iod)[..., None]
    # lips: upper darker than lower, a dark line between them
    lip_colour = skin * np.array([1.0, 0.7, 0.72]) * rng.uniform(0.75, 0.95) * shading
    upper = _fill(shape, np.concatenate([lms[48:55], lms[[64, 63, 62, 61, 60]]]))
    lower = _fill(shape, np.concatenate([lms[54:60], lms[[48, 60, 67, 66, 65, 64]]]))
    image = _over(image, cv2.GaussianBlur(upper, (0, 0), 0.7) * 0.85, lip_colour * 0.85)
    image = _over(image, cv2.GaussianBlur(lower, (0, 0), 0.7) * 0.85, lip_colour)
    meet = cv2.GaussianBlur(_stroke(shape, lms[[48, 60, 61, 62, 63, 64, 54]]), (0, 0), 0.7)
    image = _over(image, 0.7 * meet, lip_colour * 0.3)
    # hair over the forehead, with strands
    strands = 1.0 + 0.4 * cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (1, 15), 0)
    fringe = cv2.GaussianBlur(plan.fringe, (0, 0), 1.2)
    image = _over(image, fringe, hair * strands[..., None] * shading)
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    mask = np.clip(plan.hair + plan.head + plan.neck + plan.ears, 0, 1)
    return _finish(image, lms, plan.head, mask, hair, rng, subject, "procedural")


def _finish(
    image: np.ndarray,
    lms: np.ndarray,
    skin: np.ndarray,
    mask: np.ndarray,
    hair: np.ndarray,
    rng: np.random.Generator,
    subject: str,
    source: str,
    transplant: float = 0.5,
) -> Identity:
    """What a drawn face gets after its parts: photographic eyes, nose or mouth from the real
    photos (each with probability ``transplant``), age, stubble or a beard, and its look."""
    image = _transplant(np.clip(image + 0.5, 0, 255).astype(np.uint8), lms, rng, transplant)
    image = image.astype(np.float32)
    if rng.random() < 0.4:
        image = _age(image, lms, float(rng.uniform(0.2, 1.0)), rng)
    facial_hair = rng.choice(["none", "stubble", "beard"], p=[0.65, 0.22, 0.13])
    if facial_hair != "none":
        image = _facial_hair(image, lms, skin, rng, str(facial_hair), hair * rng.uniform(0.5, 0.9))
    return Identity(
        image=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        landmarks=lms,
        subject=subject,
        source=source,
        mask=cv2.GaussianBlur(mask, (0, 0), 1.0),
        creases=float(rng.uniform(0.7, 1.3)),
        look=sample_look(rng),
    )


def _draw_eyes(image: np.ndarray, plan: _FacePlan, rng: np.random.Generator) -> np.ndarray:
    """Sclera, iris, pupil, lid lines and lid crease of both eyes, on a float image."""
    shape, lms, ey, iod = plan.shape, plan.lms, plan.ey, plan.iod
    iris_colour = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
    white = np.array([225, 220, 212], np.float32) * rng.uniform(0.85, 1.0)
    for eye in (np.r_[36:42], np.r_[42:48]):
        sclera = _fill(shape, lms[eye])
        image = _over(image, sclera, white)
        width = float(np.linalg.norm(lms[eye[3]] - lms[eye[0]]))
        centre = lms[eye].mean(0) + rng.normal(0, 0.03 * width, 2)
        image = _over(image, _ellipse(shape, centre, (0.24 * width,) * 2) * sclera, iris_colour)
        image = _over(image, _ellipse(shape, centre, (0.1 * width,) * 2) * sclera, 12.0)
        lines = (
            _stroke(shape, lms[eye[:4]], 0.03 * iod)  # upper lid and lashes
            + 0.25 * _stroke(shape, lms[eye[:4]] - 0.06 * iod * ey)  # lid crease
            + 0.35 * _stroke(shape, lms[eye[[3, 4, 5, 0]]])  # lower lid
        )
        image = _over(image, cv2.GaussianBlur(lines, (0, 0), 0.6), np.array([25, 18, 15], np.float32))
    return image
