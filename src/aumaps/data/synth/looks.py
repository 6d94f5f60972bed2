"""Looks: what makes faces unlike one another beyond their shape and skin tone.

- In the identity's own image (they move with the skin when AUs act): skin texture
  (:func:`_skin_texture`: pores, blotches, freckles), age (:func:`_age`: static wrinkles,
  which are *not* AUs: a face with them and no AU active is labelled 0), stubble and beards
  (:func:`_facial_hair`).
- Drawn over the face at every rendering, on its moved landmarks (they do not stretch with
  the skin): glasses, clear or dark, and fringes of hair over the forehead (:class:`Look`,
  :func:`sample_look`, :func:`_draw_look`).
- Per image: partial occluders, a hand or an object in front of part of the face
  (:func:`_occlude`).

Sizes are in inter-ocular distances (IOD) along the face's own axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .appearance import _Shading
from .canvas import _fill, _over, _smooth_noise, _stroke
from .geometry import _axes

#: Hair colours (RGB): black, browns, blond, grey, red.
_HAIR_COLOURS = np.array(
    [[20, 16, 14], [45, 30, 22], [85, 58, 38], [140, 105, 65], [190, 160, 110], [150, 150, 148],
     [110, 45, 25]],
    np.float32,
)  # fmt: skip


@dataclass(frozen=True)
class Glasses:
    """A pair of glasses: frame colour and thickness, lens size and shape, lens tint."""

    colour: tuple[float, float, float]
    thickness: float  # IOD
    width: float  # half-width of a lens, IOD
    height: float  # half-height of a lens, IOD
    squareness: float  # 2 = elliptic lenses, up to 5 = nearly rectangular
    tint: float  # lens opacity: ~0.1 clear glass, 0.8–0.95 sunglasses
    lens_colour: tuple[float, float, float]


@dataclass(frozen=True)
class Fringe:
    """Hair over the forehead: its colour, how low it comes (IOD below the brows; negative
    is above them), how much lower on one side, and its waviness."""

    colour: tuple[float, float, float]
    drop: float
    sweep: float
    wave: float
    phase: float


@dataclass(frozen=True)
class Look:
    """What an identity wears over its face at every rendering."""

    glasses: Glasses | None = None
    fringe: Fringe | None = None


def sample_look(rng: np.random.Generator, glasses: float = 0.25, fringe: float = 0.2) -> Look:
    """A random :class:`Look`: glasses with probability ``glasses`` (a fifth of them
    sunglasses), a fringe with probability ``fringe``."""
    spec = None
    if rng.random() < glasses:
        dark = rng.random() < 0.2
        frame = rng.choice([0, 1, 2])  # dark, metal, coloured
        colour = (
            rng.uniform(10, 50, 3) if frame == 0
            else np.full(3, rng.uniform(120, 200)) if frame == 1
            else rng.uniform(40, 200, 3)
        )  # fmt: skip
        spec = Glasses(
            colour=tuple(float(c) for c in colour),
            thickness=float(rng.uniform(0.012, 0.05) if frame != 1 else rng.uniform(0.008, 0.018)),
            width=float(rng.uniform(0.22, 0.3)),
            height=float(rng.uniform(0.13, 0.21)),
            squareness=float(rng.uniform(2.0, 5.0)),
            tint=float(rng.uniform(0.8, 0.95) if dark else rng.uniform(0.04, 0.15)),
            lens_colour=tuple(float(c) for c in (rng.uniform(5, 60, 3) if dark else rng.uniform(150, 240, 3))),
        )
    hair = None
    if rng.random() < fringe:
        hair = Fringe(
            colour=tuple(float(c) for c in _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)),
            drop=float(rng.uniform(-0.3, 0.06)),
            sweep=float(rng.uniform(-0.15, 0.15)),
            wave=float(rng.uniform(0.0, 0.05)),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )
    return Look(spec, hair)


def _lens(centre: np.ndarray, ex: np.ndarray, ey: np.ndarray, iod: float, g: Glasses) -> np.ndarray:
    """``(K, 2)`` outline of a lens: a superellipse about ``centre``."""
    t = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / g.squareness
    u = np.sign(c) * np.abs(c) ** e * g.width * iod
    v = np.sign(s) * np.abs(s) ** e * g.height * iod
    return centre + u[:, None] * ex + v[:, None] * ey


def _draw_look(
    canvas: np.ndarray, lms: np.ndarray, look: Look, rng: np.random.Generator, head: np.ndarray | None = None
) -> np.ndarray:
    """``canvas`` (float ``(H, W, 3)``) with ``look``'s fringe and glasses drawn on the face
    whose landmarks are ``lms``; the fringe stays on the ``head`` (``(H, W)`` mask), if given."""
    if look.glasses is None and look.fringe is None:
        return canvas
    shape = canvas.shape[:2]
    ex, ey, iod = _axes(lms)
    if look.fringe is not None:
        f = look.fringe
        brows = lms[17:27]
        x = np.linspace(-1.0, 1.0, len(brows))
        drop = f.drop + f.sweep * x + f.wave * np.sin(9.0 * x + f.phase)
        edge = brows + (drop[:, None] * iod) * ey
        edge = np.concatenate(
            [lms[0:1] - 0.25 * iod * ey - 0.1 * iod * ex, edge, lms[16:17] - 0.25 * iod * ey + 0.1 * iod * ex]
        )
        top = edge[::-1] - 1.3 * iod * ey
        mask = cv2.GaussianBlur(_fill(shape, np.concatenate([edge, top])), (0, 0), 0.015 * iod + 0.5)
        if head is not None:
            mask *= np.clip(cv2.dilate(head, np.ones((5, 5), np.uint8)) * 1.5, 0, 1)
        strands = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (1, 0), sigmaX=0.4, sigmaY=0.08 * iod)
        colour = np.asarray(f.colour, np.float32) * (1.0 + 0.25 * strands[..., None])
        shadow = cv2.GaussianBlur(mask, (0, 0), 0.04 * iod)
        canvas = canvas * (1.0 - 0.3 * np.clip(shadow - mask, 0, 1)[..., None])
        canvas = _over(canvas, mask, colour)
    g = look.glasses
    if g is not None:
        frames = np.zeros(shape, np.float32)
        lenses = np.zeros(shape, np.float32)
        outlines = []
        for eye in (np.r_[36:42], np.r_[42:48]):
            centre = lms[eye].mean(axis=0) - 0.015 * iod * ey
            outline = _lens(centre, ex, ey, iod, g)
            outlines.append(outline)
            lenses = np.maximum(lenses, _fill(shape, outline))
            frames += _stroke(shape, np.concatenate([outline, outline[:1]]), g.thickness * iod)
        left_in = outlines[0][np.argmax(outlines[0] @ ex)]
        right_in = outlines[1][np.argmin(outlines[1] @ ex)]
        bridge = np.array([left_in, lms[27] - 0.03 * iod * ey, right_in])
        frames += _stroke(shape, bridge, g.thickness * iod)
        for outline, ear in ((outlines[0], lms[0]), (outlines[1], lms[16])):
            side = -1.0 if ear is lms[0] else 1.0
            start = outline[np.argmax(side * (outline @ ex))]
            frames += _stroke(
                shape, np.array([start, ear - 0.12 * iod * ey - side * 0.05 * iod * ex]), 0.7 * g.thickness * iod
            )
        lenses = cv2.GaussianBlur(lenses, (0, 0), 0.5)
        canvas = _over(canvas, lenses * g.tint, np.asarray(g.lens_colour, np.float32))
        # a reflection across the lenses
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        glint = np.sin((xx * 0.7 + yy * 0.7) / (0.18 * iod) + rng.uniform(0, 6)) > 0.85
        canvas = _over(canvas, lenses * glint.astype(np.float32) * rng.uniform(0.05, 0.25), 245.0)
        frames = cv2.GaussianBlur(np.clip(frames, 0, 1), (0, 0), 0.5)
        canvas = _over(canvas, frames, np.asarray(g.colour, np.float32))
    return canvas


def _skin_texture(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, iod: float) -> np.ndarray:
    """Skin detail on a drawn face (float ``(H, W, 3)``): pores, blotches and redness at a
    random strength, freckles or moles on some faces, inside ``mask``."""
    shape = image.shape[:2]
    pores = rng.normal(0.0, 1.0, shape).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), rng.uniform(0.5, 1.0)) * rng.uniform(0.02, 0.07)
    blotch = _smooth_noise(rng, shape, int(rng.integers(12, 30))) * rng.uniform(0.02, 0.06)
    redness = np.clip(_smooth_noise(rng, shape, 6), 0, 1) * rng.uniform(0.0, 0.12)
    factor = 1.0 + (pores + blotch)[..., None] * np.float32(1.0)
    out = image * (1.0 + (factor - 1.0) * mask[..., None])
    out = out * (1.0 - (redness * mask)[..., None] * np.array([0.0, 0.6, 0.5], np.float32))
    if rng.random() < 0.3:  # freckles or a few moles
        count = int(rng.integers(40, 200)) if rng.random() < 0.5 else int(rng.integers(1, 5))
        spots = np.zeros(shape, np.float32)
        ys, xs = np.nonzero(mask > 0.9)
        if len(xs):
            pick = rng.integers(len(xs), size=count)
            for x, y in zip(xs[pick], ys[pick]):
                r = max(int(round(rng.uniform(0.006, 0.015 if count > 5 else 0.03) * iod)), 1)
                cv2.circle(spots, (int(x), int(y)), r, float(rng.uniform(0.2, 0.6)), -1, cv2.LINE_AA)
        out = out * (1.0 - 0.5 * cv2.GaussianBlur(spots, (0, 0), 0.6)[..., None])
    return out


def _age(image: np.ndarray, lms: np.ndarray, age: float, rng: np.random.Generator) -> np.ndarray:
    """Static wrinkles of an older face (float ``(H, W, 3)``), ``age`` 0–1: forehead lines,
    crow's feet, bags under the eyes, nasolabial and marionette folds. They are part of the
    neutral face (AU intensity 0), so a model must read AUs from change, not from lines."""
    if age <= 0:
        return image
    p = _Shading(lms, image.shape[:2], 1.0)
    j = lambda: rng.normal(0.0, 0.01)  # noqa: E731
    a = float(age)
    for dy in (-0.2, -0.3, -0.4):
        if rng.random() < a:
            xs = np.linspace(-0.45, 0.45, 10)
            p.line([p.at([21, 22], x, dy + j() + 0.15 * x**2) for x in xs], 0.12 * a * rng.uniform(0.5, 1))
    for side, corner, lower, lip, wing in ((-1, 36, (41, 40), 48, 31), (1, 45, (46, 47), 54, 35)):
        for angle in (-0.35, 0.05, 0.4):
            if rng.random() < a:
                p.line(
                    [
                        p.at(corner, side * 0.06),
                        p.at(corner, side * (0.06 + 0.1 * np.cos(angle)), 0.1 * np.sin(angle) + j()),
                    ],
                    0.14 * a,
                )
        p.line(
            [p.at(lower[0], side * 0.02, 0.08), p.at(list(lower), 0, 0.1 + j()), p.at(lower[1], -side * 0.03, 0.07)],
            0.14 * a,
        )
        p.line(
            [p.at(wing, side * 0.06, -0.02), p.at(lip, side * 0.1, -0.1 + j()), p.at(lip, side * 0.08, 0.06)],
            0.18 * a,
            width=0.03,
        )
        if a > 0.5:
            p.line([p.at(lip, side * 0.02, 0.03), p.at(lip, side * 0.04, 0.16 + j())], 0.14 * (a - 0.4))
    return p.apply(image)


def _facial_hair(
    image: np.ndarray, lms: np.ndarray, mask: np.ndarray, rng: np.random.Generator, kind: str, colour: np.ndarray
) -> np.ndarray:
    """Stubble or a beard (``kind``) on a face (float ``(H, W, 3)``): over the jaw, chin and
    upper lip, never over the lips' red."""
    shape = image.shape[:2]
    ex, ey, iod = _axes(lms)
    jaw = lms[2:15] + 0.04 * iod * ey
    cheeks = [
        lms[14] - 0.35 * iod * ey,
        lms[35] + 0.05 * iod * ex + 0.03 * iod * ey,
        lms[33] + 0.04 * iod * ey,
        lms[31] - 0.05 * iod * ex + 0.03 * iod * ey,
        lms[2] - 0.35 * iod * ey,
    ]
    region = _fill(shape, np.concatenate([jaw, np.array(cheeks)]))
    lips = cv2.dilate(_fill(shape, lms[48:60]), np.ones((3, 3), np.uint8))
    region = cv2.GaussianBlur(region * (1.0 - lips), (0, 0), 0.04 * iod) * mask
    hairs = rng.random(shape).astype(np.float32)
    if kind == "stubble":
        dots = (hairs > rng.uniform(0.55, 0.8)).astype(np.float32)
        dots = cv2.GaussianBlur(dots, (0, 0), 0.5)
        return _over(image, region * dots * rng.uniform(0.35, 0.7), colour)
    strands = cv2.GaussianBlur(hairs - 0.5, (1, 0), sigmaX=0.4, sigmaY=0.04 * iod) * 3.0
    full = np.clip(region * rng.uniform(1.0, 1.6), 0, 1) * rng.uniform(0.75, 0.97)
    return _over(image, full, colour * (1.0 + 0.35 * strands[..., None]))


def _occlude(
    canvas: np.ndarray, lms: np.ndarray, rng: np.random.Generator, textures: tuple[np.ndarray, ...] = ()
) -> np.ndarray:
    """A partial occluder in front of the face (float ``(H, W, 3)``): a hand (skin-coloured
    palm and fingers) over the chin, mouth or a cheek, or an object (a textured rounded shape)
    over a lower corner of the face; it covers up to about a third of the face."""
    shape = canvas.shape[:2]
    ex, ey, iod = _axes(lms)
    if rng.random() < 0.6:  # a hand
        target = lms[[8, 57, 48, 54, 3, 13][int(rng.integers(6))]]
        angle = rng.uniform(-1.2, 1.2) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
        ux = np.cos(angle) * ex + np.sin(angle) * ey
        uy = -np.sin(angle) * ex + np.cos(angle) * ey
        palm_centre = target + 0.35 * iod * uy
        mask = cv2.ellipse(
            np.zeros(shape, np.float32),
            tuple(int(v * 16) for v in palm_centre),
            (int(0.3 * iod * 16), int(0.36 * iod * 16)),
            float(np.degrees(np.arctan2(ux[1], ux[0]))),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
            4,
        )
        for k in range(4):
            base = palm_centre + (-0.21 + 0.14 * k) * iod * ux - 0.2 * iod * uy
            tip = base - rng.uniform(0.25, 0.4) * iod * uy
            mask += _stroke(shape, np.array([base, tip]), 0.11 * iod)
        face = canvas[int(lms[29, 1]), int(lms[29, 0])]
        colour = face * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        shading = 1.0 + 0.08 * _smooth_noise(rng, shape, 12)
        fill = colour * shading[..., None]
    else:  # an object
        corner = lms[[5, 11, 8][int(rng.integers(3))]] + rng.normal(0, 0.1, 2) * iod
        axes = (int(rng.uniform(0.2, 0.45) * iod * 16), int(rng.uniform(0.3, 0.7) * iod * 16))
        mask = cv2.ellipse(
            np.zeros(shape, np.float32),
            tuple(int(v * 16) for v in corner),
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
            4,
        )
        if textures:
            tex = textures[int(rng.integers(len(textures)))]
            fill = cv2.resize(tex, shape[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
        else:
            fill = np.broadcast_to(rng.uniform(20, 230, 3).astype(np.float32), (*shape, 3))
    mask = cv2.GaussianBlur(np.clip(mask, 0, 1), (0, 0), 0.7)
    shadow = cv2.GaussianBlur(mask, (0, 0), 0.08 * iod)
    canvas = canvas * (1.0 - 0.35 * np.clip(shadow - mask, 0, 1)[..., None])
    return _over(canvas, mask, fill)
