"""Head pose from the 68 landmarks, in OpenFace 2.2's columns and conventions.

A rigid 3D mean face (:data:`MEAN_FACE_3D`, millimetres) is fitted to a face's 68 image
landmarks with OpenCV's ``solvePnP`` (SQPnP for the start, then Levenberg–Marquardt on the
reprojection error), as OpenFace's ``GetPose`` does with its own fitted shape. The result is
OpenFace's six pose numbers:

* ``pose_Tx, pose_Ty, pose_Tz``: where the face's centre (the centroid of the 68 model
  points) is relative to the camera, in millimetres; camera coordinates are image-like,
  X to the right of the image, Y down, Z away from the camera (a face in front of the camera
  has ``pose_Tz > 0``);
* ``pose_Rx, pose_Ry, pose_Rz``: the head's rotation in radians around X, Y and Z (pitch,
  yaw, roll) with the camera at the origin, ``R = Rx·Ry·Rz`` (OpenFace's
  ``Euler2RotationMatrix``) mapping model to camera coordinates. A face looking straight
  into the camera has all three near 0. With these axes a positive ``pose_Rx`` tilts the face
  down (the nose points lower in the image), a positive ``pose_Ry`` turns the nose towards
  the image's left, a positive ``pose_Rz`` rolls the face clockwise in the image. A mirrored
  image flips the signs of ``pose_Ry`` and ``pose_Rz``.

The camera (:class:`Camera`): OpenFace's default when none is known, ``fx = fy`` = the mean
of ``500 · width / 640`` and ``500 · height / 480``, principal point at the image centre
(``width / 2, height / 2``), no distortion; :func:`camera_for` takes any of ``fx, fy, cx, cy``
a user knows (``aumaps predict --fx ... --cx ...``). Rotations hardly depend on the focal
length; the distance ``pose_Tz`` scales with it.

**The mean face.** :data:`MEAN_FACE_3D` was written for aumaps, not copied from another
project: its frontal layout (x, y) is the mean of dlib's landmarks on the two public-domain
photos that ship with aumaps' dependencies (scikit-image's astronaut, NASA; matplotlib's Grace
Hopper, U.S. Navy), the astronaut's smile undone as for the synthetic faces
(:func:`aumaps.data.synth.real_faces`), made left-right symmetric and scaled to a 63 mm
distance between the eye centres (the adult mean interpupillary distance); its depths (z)
are set from adult anthropometric proportions (nose tip most forward; nasion about 20 mm,
inner eye corners 31 mm, outer ones 44 mm, mouth corners 33 mm and the cheek outline 80–92
mm behind it). ``benchmarks/pose_mean_face.py`` rebuilds the layout from the photos and
prints it beside the table. The face is rigid: expressions (an open jaw, raised brows)
move a few landmarks against it, which costs a few degrees of pitch, as OpenFace's pose does
when its shape model is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .aus import MIRROR_68
from .geometry import NUM_LANDMARKS

__all__ = [
    "MEAN_FACE_3D",
    "POSE_COLUMNS",
    "Camera",
    "camera_for",
    "euler_from_matrix",
    "head_pose",
    "matrix_from_euler",
    "project",
    "reprojection_error",
]

#: OpenFace 2.2's names of the six pose numbers, in its order.
POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")

# The image-left half and the midline of the mean face: landmark -> (x, y, z) in mm, x to the
# image's right, y down, z away from the camera, nose tip at z = 0 (see the module docstring).
_HALF_FACE = {
    # cheek and jaw outline
    0: (-67.0, 3.5, 92.0),
    1: (-65.0, 21.0, 90.0),
    2: (-62.0, 38.0, 86.0),
    3: (-59.5, 54.5, 80.0),
    4: (-53.5, 69.0, 70.0),
    5: (-44.0, 82.0, 57.0),
    6: (-30.5, 92.0, 45.0),
    7: (-16.5, 100.0, 36.0),
    8: (0.0, 102.5, 33.0),
    # brow, outer end to inner end
    17: (-57.0, -11.5, 45.0),
    18: (-49.5, -21.0, 35.0),
    19: (-37.5, -23.5, 28.0),
    20: (-25.0, -22.0, 24.0),
    21: (-14.0, -17.0, 22.0),
    # nose: bridge from the nasion to the tip, then the base
    27: (0.0, -1.0, 20.0),
    28: (0.0, 10.0, 13.0),
    29: (0.0, 21.5, 7.0),
    30: (0.0, 32.5, 0.0),
    31: (-15.0, 39.0, 21.0),
    32: (-7.5, 41.0, 17.0),
    33: (0.0, 43.0, 16.0),
    # eye: outer corner, upper lid, inner corner, lower lid
    36: (-43.0, 0.0, 44.0),
    37: (-36.0, -4.5, 36.0),
    38: (-27.0, -4.5, 32.0),
    39: (-19.0, 2.0, 31.0),
    40: (-27.5, 3.5, 33.0),
    41: (-36.5, 4.0, 37.0),
    # lips, outer contour
    48: (-27.5, 58.5, 33.0),
    49: (-17.0, 56.0, 23.0),
    50: (-6.5, 54.5, 18.0),
    51: (0.0, 56.0, 17.0),
    57: (0.0, 71.0, 20.0),
    58: (-7.5, 71.0, 21.0),
    59: (-17.5, 68.0, 25.0),
    # lips, inner contour (mouth closed)
    60: (-23.5, 59.0, 31.0),
    61: (-7.0, 62.0, 21.0),
    62: (0.0, 61.5, 20.0),
    66: (0.0, 61.5, 20.0),
    67: (-7.0, 62.0, 21.0),
}


def _mean_face() -> np.ndarray:
    points = np.full((NUM_LANDMARKS, 3), np.nan)
    for i, xyz in _HALF_FACE.items():
        points[i] = xyz
        points[MIRROR_68[i]] = (-xyz[0], xyz[1], xyz[2])
    assert not np.isnan(points).any()
    return points - points.mean(axis=0)


#: ``(68, 3)`` the rigid mean face in millimetres, centred on its centroid (the point
#: ``pose_T*`` locates), x to the image's right, y down, z away from the camera.
MEAN_FACE_3D = _mean_face()
MEAN_FACE_3D.setflags(write=False)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera without distortion: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise ValueError(f"camera {name} must be a finite number, got {value}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @classmethod
    def openface_default(cls, width: int, height: int) -> Camera:
        """OpenFace's camera when none is given: ``fx = fy`` = mean of ``500·width/640`` and
        ``500·height/480``, principal point at ``(width/2, height/2)``."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        focal = (500.0 * width / 640.0 + 500.0 * height / 480.0) / 2.0
        return cls(focal, focal, width / 2.0, height / 2.0)

    @property
    def matrix(self) -> np.ndarray:
        """``(3, 3)`` the intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def camera_for(
    width: int,
    height: int,
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
) -> Camera:
    """The camera of a ``width × height`` image: what is given, OpenFace's defaults for the
    rest (one focal length given serves for both; see :meth:`Camera.openface_default`)."""
    default = Camera.openface_default(width, height)
    fx = fy if fx is None else fx
    fy = fx if fy is None else fy
    return Camera(
        default.fx if fx is None else float(fx),
        default.fy if fy is None else float(fy),
        default.cx if cx is None else float(cx),
        default.cy if cy is None else float(cy),
    )


def matrix_from_euler(euler: np.ndarray) -> np.ndarray:
    """``(3, 3)`` ``R = Rx(pitch)·Ry(yaw)·Rz(roll)`` from ``(3,)`` radians (OpenFace's order)."""
    a, b, c = np.asarray(euler, float)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def euler_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """``(3,)`` pitch, yaw, roll (radians) with ``R = Rx·Ry·Rz``; yaw in [-π/2, π/2]."""
    r = np.asarray(rotation, float)
    return np.array(
        [np.arctan2(-r[1, 2], r[2, 2]), np.arcsin(np.clip(r[0, 2], -1.0, 1.0)), np.arctan2(-r[0, 1], r[0, 0])]
    )


def project(pose: np.ndarray, camera: Camera, points: np.ndarray = MEAN_FACE_3D) -> np.ndarray:
    """``(K, 2)`` image points of ``(K, 3)`` model ``points`` (the mean face by default) for a
    ``(6,)`` pose ``Tx, Ty, Tz, Rx, Ry, Rz``."""
    pose = np.asarray(pose, float)
    camera_points = np.asarray(points, float) @ matrix_from_euler(pose[3:]).T + pose[:3]
    return camera_points[:, :2] / camera_points[:, 2:] * [camera.fx, camera.fy] + [camera.cx, camera.cy]


def head_pose(landmarks: np.ndarray, camera: Camera) -> np.ndarray:
    """``(6,)`` ``pose_Tx, pose_Ty, pose_Tz`` (mm), ``pose_Rx, pose_Ry, pose_Rz`` (radians) of
    the face with these ``(68, 2)`` image landmarks; NaN where they do not give a pose (not
    finite, degenerate, or a fit that puts the face behind the camera)."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape (68, 2), got {points.shape}")
    if not np.isfinite(points).all() or np.ptp(points, axis=0).min() < 1e-6:
        return np.full(6, np.nan)
    k = camera.matrix
    try:
        ok, rvec, tvec = cv2.solvePnP(MEAN_FACE_3D, points, k, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            return np.full(6, np.nan)
        rvec, tvec = cv2.solvePnPRefineLM(MEAN_FACE_3D, points, k, None, rvec, tvec)
    except cv2.error:
        return np.full(6, np.nan)
    tvec = tvec.ravel()
    if not np.isfinite(tvec).all() or tvec[2] <= 0:
        return np.full(6, np.nan)
    rotation, _ = cv2.Rodrigues(rvec)
    return np.concatenate([tvec, euler_from_matrix(rotation)])


def reprojection_error(landmarks: np.ndarray, pose: np.ndarray, camera: Camera) -> float:
    """Mean distance between ``(68, 2)`` landmarks and the mean face projected at ``pose``,
    in pixels (NaN for a NaN pose)."""
    if not np.isfinite(pose).all():
        return float("nan")
    return float(np.linalg.norm(project(pose, camera) - np.asarray(landmarks, float), axis=1).mean())
