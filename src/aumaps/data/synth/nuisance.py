"""Nuisances: what a camera and a scene change in an image on top of the face
(:class:`Nuisance`, :func:`sample_nuisance`): background, partial occluders, the light's
direction (the face's relief relit, :mod:`.head`), lighting gradient, colour cast, contrast
and gamma, head pose (yaw and pitch turn the head in depth, :mod:`.head`; roll, scale and
shift move the image), and a camera's faults: small faces (resolution loss), blur, motion
blur, low light with its noise, sensor noise and JPEG compression.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .canvas import CANVAS, _smooth_noise


@dataclass(frozen=True, eq=False)
class Nuisance:
    """What a camera and a scene change in an image, on top of the face.

    Photometric values act in the canvas before the pose; ``blur``, ``noise``, ``jpeg`` and
    ``downscale`` act on the final image.

    Attributes:
        background: ``(CANVAS, CANVAS, 3)`` uint8 image put behind the head, or None to keep
            the identity's own.
        light: ``(gain, angle)``: brightness changes linearly by ``gain`` across the image
            along direction ``angle`` (radians).
        cast: ``(3,)`` per-channel gains.
        contrast, brightness, gamma: ``out = 255·((c·(x − m) + m + b)/255)^γ`` with m the mean.
        occluder: Whether a hand or an object covers part of the face.
        relight: ``(x, y, z, strength)``: the face's relief lit from direction (x, y, z)
            (image axes, z towards the camera; ``y < 0`` is light from above), mixed in at
            ``strength``; ``strength`` 0 keeps the photo's own light.
        roll: In-plane rotation in degrees.
        yaw, pitch: Head turn in depth, degrees (:func:`~.head._turn_maps`).
        scale: Face size factor.
        shift: ``(2,)`` translation as a fraction of the image size.
        blur: Gaussian σ in output pixels (0 = none).
        noise: Gaussian noise σ in grey levels.
        jpeg: JPEG quality, 0 = no compression.
        downscale: Resolution lost and restored (1 = none): a face this much smaller.
        motion: ``(length, angle)`` of a linear motion blur in output pixels (0 = none).
        low_light: Exposure of a dark scene (1 = normal); below 1 the image darkens and its
            shot noise grows as a phone's or webcam's does, then its denoiser smooths it.
    """

    background: np.ndarray | None = None
    occluder: bool = False
    relight: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 0.0)
    light: tuple[float, float] = (0.0, 0.0)
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0
    downscale: float = 1.0
    motion: tuple[float, float] = (0.0, 0.0)
    low_light: float = 1.0


#: The face-free photos and textures of scikit-image's bundled data used as backgrounds and
#: occluders, with the licence scikit-image's documentation states for each (images whose
#: documentation states none are not used: anything the bundled model trains on must be
#: public domain or permissively licensed).
_BACKGROUNDS = {
    "brick": "CC0 (CC0Textures, Bricks25)",
    "grass": "CC0 (DeviantArt, linolafett)",
    "gravel": "CC0 (CC0Textures, Gravel04)",
    "coffee": "CC0 (Rachel Michetti)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "rocket": "public domain (SpaceX)",
    "hubble_deep_field": "public domain (NASA)",
    "clock": "public domain (Stefan van der Walt)",
    "text": "public domain (Wikipedia, Corner.png)",
    "cell": "CC0 (Paul Müller et al.)",
}


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """Face-free photos and textures of scikit-image's bundled data, for backgrounds
    (:data:`_BACKGROUNDS`)."""
    try:
        from skimage import data
    except ImportError:
        return ()
    names = tuple(_BACKGROUNDS)
    photos = []
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception:
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos.append(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return tuple(photos)


def _background(rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """A random ``(size, size, 3)`` uint8 background: flat, gradient, smooth colour noise,
    stripes, or a random crop of a bundled photo."""
    shape = (size, size)
    kind = rng.choice(["flat", "gradient", "noise", "stripes", "photo"], p=[0.15, 0.2, 0.2, 0.1, 0.35])
    photos = _photos()
    if kind == "photo" and photos:
        photo = photos[rng.integers(len(photos))]
        side = int(rng.uniform(0.3, 1.0) * min(photo.shape[:2]))
        y0 = rng.integers(0, photo.shape[0] - side + 1)
        x0 = rng.integers(0, photo.shape[1] - side + 1)
        crop = photo[y0 : y0 + side, x0 : x0 + side]
        crop = cv2.resize(crop, shape, interpolation=cv2.INTER_AREA)
        tint = rng.uniform(0.7, 1.3, 3)
        return np.clip(crop * tint, 0, 255).astype(np.uint8)
    base = rng.uniform(20, 235, 3).astype(np.float32)
    if kind == "gradient":
        other = rng.uniform(20, 235, 3).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / size
        t = np.clip((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + 0.5, 0, 1)[..., None]
        out = base * (1 - t) + other * t
    elif kind == "noise":
        out = base + 60.0 * _smooth_noise(rng, shape, int(rng.integers(3, 10)), 3)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
        yy, xx = np.mgrid[0:size, 0:size]
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)[..., None]
        out = base + rng.uniform(15, 60) * wave * rng.uniform(0.5, 1.0, 3)
    else:
        out = np.broadcast_to(base, (*shape, 3))
    out = out + rng.normal(0, 3, (*shape, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def sample_nuisance(rng: np.random.Generator, strength: float = 1.0) -> Nuisance:
    """Random nuisances; ``strength`` (0–1) scales the size of every one.

    Ranges at ``strength=1``: background replaced 85% of the time; an occluder 12%; the face
    relit half of the time (light mostly from above, mixed in at 0.3–0.9); light gain ±0.5;
    colour cast ±12%; contrast 0.75–1.2; brightness ±20; gamma 0.75–1.35; roll N(0, 8°)
    clipped to ±20°; yaw N(0, 10°) or, a third of the time, uniform in ±35°; pitch N(0, 8°)
    or, a fifth of the time, uniform in ±28°; scale 0.9–1.1; shift ±5%; blur σ up to 1.2 (half
    the time); motion blur of 3–9 px (8%); low light at 0.25–0.6 of the exposure (12%); noise
    σ up to 6; JPEG quality 25–95 (half the time); faces 0.35–1 times as large (a quarter of
    the time: faces down to about 30 px wide).
    """
    s = float(strength)
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    relight = (0.0, 0.0, 1.0, 0.0)
    if rng.random() < 0.5 * s:
        direction = np.array([u(-0.8, 0.8), u(-1.0, 0.35), u(0.35, 1.0)])
        direction /= np.linalg.norm(direction)
        relight = (*(float(v) for v in direction), u(0.3, 0.9) * s)
    yaw = rng.normal(0, 10) if rng.random() < 0.67 else u(-35, 35)
    pitch = rng.normal(0, 8) if rng.random() < 0.8 else u(-28, 28)
    return Nuisance(
        background=_background(rng) if rng.random() < 0.85 * min(1.0, 2 * s) else None,
        occluder=bool(rng.random() < 0.12 * s),
        relight=relight,
        light=(u(-0.5, 0.5) * s, u(0, 2 * np.pi)),
        cast=tuple(1.0 + rng.uniform(-0.12, 0.12, 3) * s),
        contrast=1.0 + u(-0.25, 0.2) * s,
        brightness=u(-20, 20) * s,
        gamma=float(np.exp(u(np.log(0.75), np.log(1.35)) * s)),
        roll=float(np.clip(rng.normal(0, 8), -20, 20)) * s,
        yaw=float(np.clip(yaw, -38, 38)) * s,
        pitch=float(np.clip(pitch, -30, 30)) * s,
        scale=1.0 + u(-0.1, 0.1) * s,
        shift=tuple(rng.uniform(-0.05, 0.05, 2) * s),
        blur=u(0.0, 1.2) * s if rng.random() < 0.5 else 0.0,
        noise=u(0.0, 6.0) * s,
        jpeg=int(rng.integers(25, 96)) if rng.random() < 0.5 * s else 0,
        downscale=1.0 - u(0.0, 0.65) * s if rng.random() < 0.25 else 1.0,
        motion=(u(3.0, 9.0) * s, u(0, 180)) if rng.random() < 0.08 else (0.0, 0.0),
        low_light=1.0 - u(0.4, 0.75) * s if rng.random() < 0.12 else 1.0,
    )


def _photometric(image: np.ndarray, nz: Nuisance) -> np.ndarray:
    """Lighting gradient, colour cast, contrast, brightness and gamma on a float image."""
    h, w = image.shape[:2]
    gain, angle = nz.light
    if gain:
        x = np.linspace(-0.5, 0.5, w, dtype=np.float32) * np.float32(np.cos(angle) * gain)
        y = np.linspace(-0.5, 0.5, h, dtype=np.float32) * np.float32(np.sin(angle) * gain)
        image = image * (1.0 + x[None, :] + y[:, None])[..., None]
    image = image * np.asarray(nz.cast, np.float32)
    mean = float(image.mean())
    image = nz.contrast * (image - mean) + mean + nz.brightness
    if nz.gamma != 1.0:
        image = 255.0 * np.power(np.clip(image, 0, 255) / 255.0, nz.gamma)
    return image


def _pose_matrix(nz: Nuisance, centre: np.ndarray, size: int) -> np.ndarray:
    """``(3, 3)`` similarity from the canvas to a ``size`` image: rolled about ``centre``,
    scaled, shifted (the turn in depth is :func:`~.head._turn_maps`', applied before)."""
    c, s = np.cos(np.radians(nz.roll)) * nz.scale, np.sin(np.radians(nz.roll)) * nz.scale
    similarity = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    to_centre = np.array([[1.0, 0, -centre[0]], [0, 1.0, -centre[1]], [0, 0, 1.0]])
    back = np.array(
        [
            [1.0, 0, centre[0] + nz.shift[0] * CANVAS],
            [0, 1.0, centre[1] + nz.shift[1] * CANVAS],
            [0, 0, 1.0],
        ]
    )
    out_scale = np.diag([size / CANVAS, size / CANVAS, 1.0])
    return out_scale @ back @ similarity @ to_centre


def _project(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(K, 2)`` points through a ``(3, 3)`` homography."""
    h = points @ matrix[:, :2].T + matrix[:, 2]
    return h[:, :2] / h[:, 2:]


def _degrade(image: np.ndarray, nz: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """A camera's faults on a uint8 image: resolution loss, blur, motion blur, low light with
    its shot noise and denoising, sensor noise and JPEG compression."""
    h, w = image.shape[:2]
    if nz.downscale < 1.0:
        small = cv2.resize(
            image,
            (max(int(w * nz.downscale), 8), max(int(h * nz.downscale), 8)),
            interpolation=cv2.INTER_AREA,
        )
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if nz.blur > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), nz.blur)
    length, angle = nz.motion
    if length >= 2:
        k = int(np.ceil(length)) | 1
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        dx, dy = np.cos(np.radians(angle)) * length / 2, np.sin(np.radians(angle)) * length / 2
        cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0)
        image = cv2.filter2D(image, -1, kernel / kernel.sum())
    if nz.low_light < 1.0:
        dark = image.astype(np.float32) * nz.low_light
        # shot noise grows with the signal (photons are counted), plus the read noise
        sigma = np.sqrt(np.maximum(dark, 0.0) * 0.6 + 4.0)
        dark = dark + rng.normal(0.0, 1.0, dark.shape).astype(np.float32) * sigma
        dark = cv2.GaussianBlur(np.clip(dark, 0, 255), (0, 0), 0.8)  # the camera's denoiser
        image = np.clip(dark + 0.5, 0, 255).astype(np.uint8)
    if nz.noise > 0:
        image = np.clip(image + rng.normal(0.0, nz.noise, image.shape), 0, 255).astype(np.uint8)
    if nz.jpeg:
        _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(nz.jpeg)])
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # channel order is kept as given
    return image
