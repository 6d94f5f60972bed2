"""Where the frontal layout of aumaps' 3D mean face comes from (:data:`aumaps.pose.MEAN_FACE_3D`).

    python benchmarks/pose_mean_face.py

The x, y of the mean face are the mean of dlib's 68 landmarks on the two public-domain photos
that ship with aumaps' dependencies (scikit-image's astronaut, matplotlib's Grace Hopper), as
:func:`aumaps.data.synth.real_faces` holds them (the astronaut's smile undone), each brought to
a frame where the eye centres (means of landmarks 36-41 and 42-47) are level, 63 mm apart
(the adult mean interpupillary distance) and centred on the origin; the mean is made
left-right symmetric (averaged with its mirror image) and rounded to 0.5 mm. This script
rebuilds that layout and prints it beside the table in ``aumaps/pose.py``, with how well the
mean face, posed by solvePnP, fits each photo's own landmarks. The depths (z) come from
anthropometric proportions, not from the photos (see ``aumaps/pose.py``).
"""

from __future__ import annotations

import numpy as np

from aumaps.aus import MIRROR_68
from aumaps.data.synth import real_faces
from aumaps.geometry import interocular_distance
from aumaps.hardware import describe_machine
from aumaps.pose import MEAN_FACE_3D, Camera, head_pose, reprojection_error

PUPILS_MM = 63.0


def frontal_layout(landmarks: np.ndarray) -> np.ndarray:
    """``(68, 2)`` landmarks in mm: eye centres level, ``PUPILS_MM`` apart, their midpoint at 0."""
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    along = right - left
    angle = -np.arctan2(along[1], along[0])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (landmarks - (left + right) / 2) @ turn.T * (PUPILS_MM / np.linalg.norm(along))


def main() -> None:
    print(describe_machine())
    faces = real_faces()
    layouts = [frontal_layout(face.landmarks) for face in faces]
    mean = np.mean(layouts, axis=0)
    symmetric = (mean + mean[MIRROR_68] * [-1, 1]) / 2
    rebuilt = np.round(symmetric * 2) / 2
    shipped = MEAN_FACE_3D[:, :2] - (MEAN_FACE_3D[36:42, :2].mean(0) + MEAN_FACE_3D[42:48, :2].mean(0)) / 2
    print(f"photos: {', '.join(face.subject for face in faces)}")
    print(" i   rebuilt x, y (mm)   shipped x, y (mm)")
    for i in range(68):
        print(f"{i:2d}   {rebuilt[i, 0]:7.1f} {rebuilt[i, 1]:7.1f}     {shipped[i, 0]:7.1f} {shipped[i, 1]:7.1f}")
    print(f"largest difference: {np.abs(rebuilt - shipped).max():.2f} mm")
    for face in faces:
        size = face.image.shape[1], face.image.shape[0]
        camera = Camera.openface_default(*size)
        pose = head_pose(face.landmarks, camera)
        error = reprojection_error(face.landmarks, pose, camera) / interocular_distance(face.landmarks)
        print(
            f"{face.subject}: mean face posed by solvePnP, reprojection error {error:.3f} IOD; "
            f"pose_R (deg) {np.round(np.degrees(pose[3:]), 1)}"
        )


if __name__ == "__main__":
    main()
