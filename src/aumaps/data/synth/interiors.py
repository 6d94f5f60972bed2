"""What shows between the lids and between the lips: the eyeballs (:func:`_eyes`) and the
mouth's interior with teeth and tongue (:func:`_mouth_interior`).

A thin-plate-spline warp carries the skin along with the landmarks, which is right for lids,
lips and cheeks but wrong for what lies behind them: an eyeball does not stretch when the
upper lid rises (AU5 shows the white above the iris), it disappears behind the lids when they
close (AU7, AU45), and a mouth that opens shows teeth, a tongue and a dark cavity instead of
stretched lips (AU25, AU26, and the teeth of a broad AU10/AU12). So after the warp, the
inside of each eye is drawn again from the neutral face, unstretched, with newly uncovered
sclera and iris painted in, and the inside of the mouth is painted where the lips have parted.
"""

from __future__ import annotations

import cv2
import numpy as np

from .canvas import _fill, _over, _stroke
from .geometry import _axes

#: The six landmarks of each eye (outer corner, upper lid ×2, inner corner, lower lid ×2) in
#: drawing order, image-left eye first.
_EYES = ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46))


def _closed_curve(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A smooth closed curve through ``(K, 2)`` points (centripetal-free Catmull-Rom), as
    ``(K·per_segment, 2)`` points: the almond of an eye or the opening of a mouth instead of
    a polygon."""
    p = np.asarray(points, dtype=np.float64)
    k = len(p)
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(k):
        p0, p1, p2, p3 = p[i - 1], p[i], p[(i + 1) % k], p[(i + 2) % k]
        out.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    return np.concatenate(out)


def _eye_colours(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sclera's and the iris's colours in a neutral eye: the means of the brightest and
    darkest thirds of its visible pixels."""
    pixels = image[mask > 0.5].reshape(-1, 3).astype(np.float32)
    if len(pixels) < 6:
        return np.array([215, 210, 200], np.float32), np.array([60, 45, 35], np.float32)
    order = np.argsort(pixels.sum(axis=1))
    third = max(len(order) // 3, 1)
    bright, dark = pixels[order[-third:]].mean(axis=0), pixels[order[:third]].mean(axis=0)
    # the brightest third still holds lid shadow and skin: the white is whiter than that
    white = np.array([232, 228, 222], np.float32) * min(float(bright.max()) / 200.0, 1.0)
    return 0.4 * bright + 0.6 * white, dark


def _eyes(
    warped: np.ndarray,
    neutral_image: np.ndarray,
    neutral: np.ndarray,
    lms: np.ndarray,
    warp_lms: np.ndarray | None = None,
) -> np.ndarray:
    """Draw each eyeball again between its moved lids.

    Inside the new opening, the neutral eye is copied unstretched, moved only as the eye's
    corners moved; where the opening now uncovers what the neutral lids hid, the iris
    continues as a disc (its centre and size estimated from the eye's width and lower lid)
    and the rest is sclera, shaded under the upper lid. Where the lids close further than
    the warp could take them (a warp cannot fold two lids onto one line), the upper lid's
    skin is extended over the eye, mirrored about its margin. The upper lid margin gets its
    dark line of lashes, wherever it now lies.

    Args:
        warped: ``(H, W, 3)`` float32 image after the warp.
        neutral_image: ``(H, W, 3)`` the image before the warp (the neutral face).
        neutral, lms: ``(68, 2)`` landmarks before and after the AUs.
        warp_lms: ``(68, 2)`` landmarks the warp moved the image to, where they differ from
            ``lms`` (lids held apart in a blink).

    Returns:
        The image with both eyes redrawn.
    """
    _, _, iod = _axes(lms)
    warp_lms = lms if warp_lms is None else warp_lms
    out = warped
    h, w = warped.shape[:2]
    for eye in _EYES:
        idx = list(eye)
        if np.allclose(lms[idx], neutral[idx]):
            continue
        # work in a box around the eye: everything here is local
        both = np.concatenate([lms[idx], neutral[idx]])
        pad = 0.25 * iod
        x0, y0 = (int(max(v, 0)) for v in both.min(axis=0) - pad)
        x1, y1 = int(min(both[:, 0].max() + pad, w)), int(min(both[:, 1].max() + pad, h))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        offset = np.array([x0, y0], np.float64)
        box = out[y0:y1, x0:x1]
        redrawn = _eyeball(
            box, neutral_image[y0:y1, x0:x1], neutral[idx] - offset, lms[idx] - offset, warp_lms[idx] - offset, iod
        )
        out = out.copy() if out is warped else out
        out[y0:y1, x0:x1] = redrawn
    return out


def _eyeball(
    box: np.ndarray, neutral_box: np.ndarray, old_pts: np.ndarray, new_pts: np.ndarray, warp_pts: np.ndarray, iod: float
) -> np.ndarray:
    """:func:`_eyes` for one eye, in a box around it: ``old_pts``/``new_pts``/``warp_pts`` are
    the eye's six landmarks (:data:`_EYES` order) before, after, and where the warp took them,
    in the box's pixels."""
    shape = box.shape[:2]
    src = neutral_box.astype(np.float32)
    old = _fill(shape, _closed_curve(old_pts))
    new = _fill(shape, _closed_curve(new_pts))
    # the neutral eye's content without its lid margins (the warp moved those with the lids)
    inner = cv2.erode(old, np.ones((3, 3), np.uint8), iterations=max(int(round(0.012 * iod)), 1))
    sclera, iris = _eye_colours(src, old)
    # the eyeball moves with the eye's corners, never with the lids
    shift = (new_pts[[0, 3]] - old_pts[[0, 3]]).mean(axis=0)
    move = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    moved = cv2.warpAffine(src, move, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    old_moved = cv2.warpAffine(inner, move, shape[::-1])
    # what the neutral lids hid: an iris disc and sclera
    width = float(np.linalg.norm(old_pts[3] - old_pts[0]))
    lower = old_pts[[4, 5]].mean(axis=0)
    ys, xs = np.nonzero(old > 0.5)
    if len(xs):
        weight = np.clip(765.0 - src[ys, xs].sum(axis=1), 0, None) ** 2 + 1e-6
        cx = float((xs * weight).sum() / weight.sum())
    else:
        cx = float(lower[0])
    radius = 0.2 * width
    centre = np.array([cx, lower[1] - 0.95 * radius]) + shift
    hidden = np.empty((*shape, 3), np.float32)
    hidden[:] = sclera
    at = tuple(int(v * 16) for v in centre)
    disc = cv2.circle(np.zeros(shape, np.float32), at, int(radius * 16), 1.0, -1, cv2.LINE_AA, 4)
    hidden = _over(hidden, cv2.GaussianBlur(disc, (0, 0), 0.6), iris)
    pupil = cv2.circle(np.zeros(shape, np.float32), at, int(0.4 * radius * 16), 1.0, -1, cv2.LINE_AA, 4)
    hidden = _over(hidden, pupil * 0.8, np.float32(15.0))
    ball = _over(hidden, np.clip(old_moved, 0, 1), moved)
    # the upper lid's shadow on the eyeball, the eyeball under the lids, the lashes' line
    upper = _stroke(shape, new_pts[:4], 0.06 * iod)
    ball = ball * (1.0 - 0.35 * cv2.GaussianBlur(upper, (0, 0), 0.02 * iod + 0.5)[..., None])
    out = box
    if not np.allclose(warp_pts, new_pts):
        # lid skin over what the warp left open: the upper lid mirrored about its margin
        opened = _fill(shape, _closed_curve(warp_pts))
        margin = float(warp_pts[1:3, 1].mean())
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        lid = cv2.remap(
            box.astype(np.float32),
            xx,
            np.float32(2.0 * margin - 2.0) - yy,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        out = _over(out, cv2.GaussianBlur(np.clip(opened - new, 0, 1), (0, 0), 0.6), lid)
    out = _over(out, cv2.GaussianBlur(new, (0, 0), 0.5), ball)
    lashes = cv2.GaussianBlur(_stroke(shape, new_pts[:4], 0.015 * iod + 0.5), (0, 0), 0.5)
    return _over(out, lashes * 0.5, np.array([30, 22, 18], np.float32))


def _lip_gap(landmarks: np.ndarray, down: np.ndarray) -> float:
    """Mean distance between the inner lips (61–63 to 67–65) along the unit vector ``down``."""
    return float(np.mean((landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]]) @ down))


def _mouth_interior(image: np.ndarray, neutral: np.ndarray, lms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint the mouth's interior where the inner lips have parted: a dark cavity, the upper
    teeth hanging from the upper lip, the lower teeth rising from the lower one once the jaw
    opens, and the tongue at the bottom of a wide-open mouth.

    Args:
        image: ``(H, W, 3)`` float32 image, warped.
        neutral: ``(68, 2)`` neutral landmarks; lms: ``(68, 2)`` deformed ones.
        rng: Colours and the teeth's look.

    Returns:
        The image with the interior painted, in proportion to how far the lips parted.
    """
    ex, ey, iod = _axes(lms)
    gap = _lip_gap(lms, ey)
    opened = (gap - max(_lip_gap(neutral, ey), 0.0)) / iod
    alpha = float(np.clip(opened / 0.03, 0.0, 1.0))
    if alpha <= 0:
        return image
    shape = image.shape[:2]
    opening = _closed_curve(lms[60:68], 5)
    cavity = cv2.GaussianBlur(_fill(shape, opening), (0, 0), 0.6)
    throat = np.array([62, 20, 26], np.float32) * rng.uniform(0.5, 1.2)
    image = _over(image, cavity * alpha, throat)
    # deeper inside, darker
    centre = lms[[62, 66]].mean(axis=0)
    depth = _fill(shape, centre + 0.55 * (opening - centre))
    image = _over(image, cv2.GaussianBlur(depth, (0, 0), 0.04 * iod + 0.5) * cavity * alpha * 0.6, throat * 0.35)
    gap_px = max(gap, 0.0)
    # tongue: a rounded mass on the floor of an open mouth
    if opened > 0.08:
        tongue_centre = lms[[66, 57]].mean(axis=0) * 0.35 + lms[66] * 0.65 - 0.08 * iod * ey
        width = 0.55 * float(np.linalg.norm(lms[64] - lms[60]))
        tongue = cv2.ellipse(
            np.zeros(shape, np.float32),
            tuple(int(v * 16) for v in tongue_centre),
            (int(width * 0.5 * 16), int(min(0.12 * iod, 0.35 * gap_px) * 16)),
            float(np.degrees(np.arctan2(ex[1], ex[0]))),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
            4,
        )
        tongue = cv2.GaussianBlur(tongue, (0, 0), 0.03 * iod + 0.5) * cavity
        colour = np.array([170, 70, 75], np.float32) * rng.uniform(0.75, 1.05)
        image = _over(image, tongue * alpha * min(1.0, (opened - 0.08) / 0.08), colour)
    teeth_colour = np.array([240, 234, 218], np.float32) * rng.uniform(0.85, 1.02)
    teeth_colour *= np.array([1.0, 1.0, rng.uniform(0.85, 1.0)], np.float32)  # some are yellower
    mouth_width = float(np.linalg.norm(lms[64] - lms[60]))

    def row(edge: np.ndarray, height: float, direction: float) -> np.ndarray:
        """A row of teeth along the lip ``edge`` (inner lip points), ``height`` px deep,
        narrower than the mouth (the dark corners are the cheeks' insides)."""
        middle = edge.mean(axis=0)
        inset = middle + 0.8 * (edge - middle)
        band = np.concatenate([inset, (inset + direction * height * ey)[::-1]])
        mask = _fill(shape, band) * cavity
        # the gaps between the front teeth: faint dark lines across the row
        lines = np.zeros(shape, np.float32)
        tooth = 0.085 * mouth_width
        for k in range(-3, 4):
            x = middle + (k * tooth + (0.5 * tooth if k else 0.0)) * ex
            lines += _stroke(shape, np.array([x, x + direction * height * ey]), 1.0)
        shading = 1.0 - 0.12 * cv2.GaussianBlur(lines, (0, 0), 0.7)
        fade = (
            1.0
            - 0.2
            * np.clip(
                np.abs((np.mgrid[0 : shape[0], 0 : shape[1]][::-1].transpose(1, 2, 0) - middle) @ ex)
                / (0.5 * mouth_width),
                0.0,
                1.0,
            )
            ** 2
        )
        return cv2.GaussianBlur(mask, (0, 0), 0.6) * shading * fade

    upper_h = min(0.10 * iod, 0.7 * gap_px + 0.02 * iod)
    upper = row(lms[[60, 61, 62, 63, 64]], upper_h, 1.0)
    image = _over(image, np.clip(upper * alpha * 1.05, 0, 1), teeth_colour)
    if opened > 0.015:
        lower_h = min(0.05 * iod, 0.25 * gap_px)
        lower = row(lms[[60, 67, 66, 65, 64]], lower_h, -1.0)
        image = _over(image, lower * alpha * 0.6, teeth_colour * 0.85)
    return image
