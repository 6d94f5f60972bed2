"""Head pose: OpenFace's angles and camera, recovered from projected faces and real photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from aumaps.aus import MIRROR_68
from aumaps.cli import main
from aumaps.images import read_image
from aumaps.pose import (
    MEAN_FACE_3D,
    POSE_COLUMNS,
    Camera,
    camera_for,
    euler_from_matrix,
    head_pose,
    matrix_from_euler,
    project,
    reprojection_error,
)
from aumaps.predict import AUEstimator


def test_the_mean_face_is_a_symmetric_face_in_millimetres():
    face = MEAN_FACE_3D
    np.testing.assert_allclose(face.mean(axis=0), 0, atol=1e-9)  # centred: pose_T locates its centroid
    np.testing.assert_allclose(face[MIRROR_68] * [-1, 1, 1], face, atol=1e-9)  # left-right symmetric
    pupils = np.linalg.norm(face[42:48, :2].mean(0) - face[36:42, :2].mean(0))
    assert pupils == pytest.approx(63.0, abs=0.5)  # adult mean interpupillary distance
    assert face[30, 2] == face[:, 2].min()  # the nose tip is nearest the camera
    assert face[36, 0] < face[39, 0] < face[42, 0] < face[45, 0]  # eye corners left to right in the image
    assert face[27:31, 1].tolist() == sorted(face[27:31, 1])  # y down: the nose bridge runs down to the tip


def test_rotations_follow_openface_r_equals_rx_ry_rz():
    rng = np.random.default_rng(0)
    for euler in rng.uniform(-1.2, 1.2, (50, 3)):
        expected = Rotation.from_euler("XYZ", euler).as_matrix()  # intrinsic X, Y, Z = Rx @ Ry @ Rz
        np.testing.assert_allclose(matrix_from_euler(euler), expected, atol=1e-12)
        np.testing.assert_allclose(euler_from_matrix(expected), euler, atol=1e-9)


def test_openface_default_camera_and_given_values():
    assert Camera.openface_default(640, 480) == Camera(500.0, 500.0, 320.0, 240.0)
    hd = Camera.openface_default(1280, 720)  # 500 * 1280/640 = 1000 and 500 * 720/480 = 750, averaged
    assert (hd.fx, hd.fy, hd.cx, hd.cy) == (875.0, 875.0, 640.0, 360.0)
    assert camera_for(1280, 720, fx=1400.0) == Camera(1400.0, 1400.0, 640.0, 360.0)  # one focal length: both
    assert camera_for(1280, 720, fy=900.0, cx=600.0) == Camera(900.0, 900.0, 600.0, 360.0)
    assert camera_for(640, 480, fx=800.0, fy=810.0, cx=300.0, cy=250.0) == Camera(800.0, 810.0, 300.0, 250.0)
    with pytest.raises(ValueError, match="positive"):
        camera_for(640, 480, fx=-500.0)
    with pytest.raises(ValueError, match="finite"):
        camera_for(640, 480, cx=float("nan"))


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080)])
def test_pose_of_projected_faces_is_recovered_within_2_degrees(size):
    camera = Camera.openface_default(*size)
    rng = np.random.default_rng(1)
    for _ in range(100):
        rotation = np.radians(rng.uniform([-30, -60, -40], [30, 60, 40]))
        pose = np.concatenate([rng.uniform([-150, -100, 400], [150, 100, 1500]), rotation])
        landmarks = project(pose, camera) + rng.normal(0, 0.3, (68, 2))  # a third of a pixel of noise
        found = head_pose(landmarks, camera)
        assert np.degrees(np.abs(found[3:] - pose[3:])).max() < 2.0
        assert np.abs(found[:3] - pose[:3]).max() < 0.03 * pose[2]
        assert reprojection_error(landmarks, found, camera) < 1.0


def test_signs_follow_the_axes():
    camera = Camera.openface_default(640, 480)
    front = project(np.array([0, 0, 600, 0, 0, 0]), camera)
    turned = project(np.array([0, 0, 600, 0, 0.4, 0]), camera)  # positive yaw: nose to the image's left
    assert turned[30, 0] - turned[27, 0] < -5 and abs(front[30, 0] - front[27, 0]) < 1e-9
    down = project(np.array([0, 0, 600, 0.3, 0, 0]), camera)  # positive pitch: the face tilts down
    assert down[30, 1] - down[[36, 45], 1].mean() > front[30, 1] - front[[36, 45], 1].mean() + 5  # nose tip lower
    rolled = project(np.array([0, 0, 600, 0, 0, 0.3]), camera)  # positive roll: clockwise in the image
    assert rolled[45, 1] > rolled[36, 1] + 10
    left = project(np.array([-100, 50, 600, 0, 0, 0]), camera)  # T: X right, Y down, Z away (mm)
    assert left.mean(0)[0] < 320 and left.mean(0)[1] > 240
    assert np.isnan(head_pose(np.full((68, 2), 10.0), camera)).all()  # all points in one place: no pose
    assert np.isnan(head_pose(np.full((68, 2), np.nan), camera)).all()


def test_mirrored_photos_flip_yaw_and_roll(landmarker, astronaut, grace_hopper_path):
    for image in (astronaut, read_image(grace_hopper_path)):
        height, width = image.shape[:2]
        camera = Camera.openface_default(width, height)
        pose = head_pose(landmarker(image)[0].landmarks, camera)
        mirrored = head_pose(landmarker(np.ascontiguousarray(image[:, ::-1]))[0].landmarks, camera)
        for k in (4, 5):  # pose_Ry, pose_Rz
            assert np.sign(mirrored[k]) == -np.sign(pose[k]) and abs(pose[k]) > 0.03
            assert abs(mirrored[k] + pose[k]) < 0.1
        assert abs(mirrored[3] - pose[3]) < 0.05  # pitch stays
        assert abs(mirrored[0] + pose[0]) < 0.05 * pose[2]  # across the image centre
        assert abs(np.degrees(pose[4])) < 20  # near-frontal portraits


def test_a_three_quarter_view_has_a_large_yaw(landmarker):
    """The astronaut turned 30 degrees in depth by the synthetic renderer, and its mirror."""
    from aumaps.data.synth import Nuisance, real_faces, render

    identity = next(i for i in real_faces() if i.subject == "astronaut")
    image, _ = render(identity, {}, np.random.default_rng(0), Nuisance(yaw=-30), size=384)
    camera = Camera.openface_default(384, 384)
    yaw = head_pose(landmarker(image)[0].landmarks, camera)[4]
    mirrored = head_pose(landmarker(np.ascontiguousarray(image[:, ::-1]))[0].landmarks, camera)[4]
    assert yaw < -0.3 and mirrored > 0.3


def test_rows_carry_the_pose_for_the_camera_given(tiny_weights, astronaut, tmp_path):
    default = AUEstimator(weights=tiny_weights, backend="torch").predict(astronaut)[0]
    assert np.isfinite(default.pose).all()
    np.testing.assert_allclose(default.pose, head_pose(default.landmarks, Camera.openface_default(512, 512)))
    longer = AUEstimator(weights=tiny_weights, backend="torch", camera={"fx": 1200.0}).predict(astronaut)[0]
    # a longer lens puts the same image of a face farther away (Z scales with f), and nearer the
    # optical axis: the pitch changes with the angle under which the camera sees the face
    focal = Camera.openface_default(512, 512).fx
    assert longer.pose[2] == pytest.approx(default.pose[2] * 1200.0 / focal, rel=0.02)
    above = 256.0 - default.landmarks[:, 1].mean()  # the face is above the image centre
    seen = np.arctan(above / focal) - np.arctan(above / 1200.0)
    assert default.pose[3] - longer.pose[3] == pytest.approx(seen, abs=0.03)
    assert np.abs(longer.pose[4:] - default.pose[4:]).max() < 0.05
    with pytest.raises(ValueError, match="unknown camera values"):
        AUEstimator(weights=tiny_weights, backend="torch", camera={"focal": 500.0})

    path = tmp_path / "astronaut.png"
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    out = tmp_path / "rows.csv"
    assert (
        main(
            [
                "predict",
                str(path),
                "--weights",
                str(tiny_weights),
                "--out",
                str(out),
                "--quiet",
                "--backend",
                "torch",
                "--fx",
                "1200",
            ]
        )
        == 0
    )
    row = pd.read_csv(out).iloc[0]
    np.testing.assert_allclose(row[list(POSE_COLUMNS)].to_numpy(float), longer.pose, atol=1e-3)
