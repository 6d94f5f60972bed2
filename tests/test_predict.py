"""End to end on real faces shipped with the dependencies: detection, registration, network, CSV."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aumaps import align
from aumaps.cli import main
from aumaps.predict import AUEstimator
from aumaps.results import csv_columns


@pytest.fixture(scope="module")
def estimator(tiny_weights):
    return AUEstimator(weights=tiny_weights, backend="torch")


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def test_one_face_with_consistent_outputs(estimator, astronaut):
    faces = estimator.predict(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.aus == (6, 10, 12, 14, 17)
    assert f.heatmaps.shape == (5, 64, 64) and f.crop.shape == (256, 256, 3)
    lm = f.landmarks
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]  # eyes, nose, mouth, chin
    assert lm[36, 0] < lm[45, 0]
    # intensities are the clamped maxima of the maps; the crop is the registered image
    np.testing.assert_allclose(f.intensities, np.clip(f.heatmaps.reshape(5, -1).max(1), 0, 5), atol=1e-6)
    assert 0 < f.intensities.min() and f.intensities.max() < 5
    np.testing.assert_array_equal(f.crop, align.warp_to_crop(astronaut, align.registration_matrix(lm)))
    # peaks map back to image points near the face (inverse registration)
    x0, y0, x1, y1 = f.box
    w = x1 - x0
    inside = (
        (f.argmax[:, 0] > x0 - w) & (f.argmax[:, 0] < x1 + w) & (f.argmax[:, 1] > y0 - w) & (f.argmax[:, 1] < y1 + w)
    )
    assert inside.all()
    back = align.transform_points(f.argmax[None], f.matrix)[0] / 4
    for a in range(5):
        u, v = np.round(back[a]).astype(int)
        assert f.heatmaps[a, v, u] == pytest.approx(f.heatmaps[a].max(), abs=1e-6)


def test_given_landmarks_skip_detection(estimator, astronaut):
    detected = estimator.predict(astronaut)[0]
    again = estimator.predict(astronaut, landmarks=detected.landmarks)
    assert len(again) == 1
    np.testing.assert_allclose(again[0].intensities, detected.intensities, atol=1e-6)


def test_batched_faces_equal_single(estimator, astronaut):
    group = np.concatenate([astronaut, astronaut], axis=1)
    faces = estimator.predict(group)
    assert len(faces) == 2
    single = estimator.predict(np.ascontiguousarray(group[:, :512]))[0]
    left = min(faces, key=lambda f: f.box[0])
    np.testing.assert_allclose(left.intensities, single.intensities, atol=1e-5)


@pytest.mark.parametrize("variant", ["gray", "rgba", "u16", "exif"])
def test_image_variants_find_the_face(estimator, astronaut, tmp_path, variant):
    reference = estimator.predict(astronaut)[0]
    path = tmp_path / f"astronaut_{variant}.png"
    if variant == "gray":
        Image.fromarray(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)).save(path)
    elif variant == "rgba":
        Image.fromarray(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])).save(path)
    elif variant == "u16":
        cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    else:
        path = tmp_path / "astronaut_exif.jpg"
        rotated = Image.fromarray(np.rot90(astronaut, k=1))  # stored turned 90° anticlockwise
        exif = Image.Exif()
        exif[0x0112] = 6  # display: rotate 90° clockwise
        rotated.save(path, exif=exif, quality=98)
    faces = estimator.predict(path)
    assert len(faces) == 1
    tol = 6.0 if variant in ("gray", "exif") else 0.5
    assert np.abs(faces[0].landmarks - reference.landmarks).max() < tol
    if variant in ("rgba", "u16"):
        np.testing.assert_allclose(faces[0].intensities, reference.intensities, atol=1e-5)


def test_no_face_gives_no_result(estimator):
    assert estimator.predict(np.full((200, 300, 3), 127, np.uint8)) == []


def test_cli_writes_csv_and_overlays(tiny_weights, astronaut_png, grace_hopper_path, tmp_path, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")  # not an image extension: skipped in folders
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160, 3), 90, np.uint8))
    out, maps = tmp_path / "res.csv", tmp_path / "maps"
    rc = main(
        [
            "predict",
            str(astronaut_png),
            str(grace_hopper_path),
            str(folder),
            "--weights",
            str(tiny_weights),
            "--out",
            str(out),
            "--maps",
            str(maps),
            "--quiet",
            "--backend",
            "torch",
        ]
    )
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df.columns) == csv_columns((6, 10, 12, 14, 17), file_column=True)
    assert list(df["file"].map(lambda p: p.rsplit("/", 1)[-1])) == ["astronaut.png", "grace_hopper.jpg", "blank.png"]
    assert df["success"].tolist() == [1, 1, 0]
    au = df[["AU06_r", "AU10_r", "AU12_r", "AU14_r", "AU17_r"]]
    assert all(t == np.float64 for t in au.dtypes)
    assert au.iloc[:2].notna().all().all() and au.iloc[:2].ge(0).all().all() and au.iloc[:2].le(5).all().all()
    assert au.iloc[2].isna().all()  # no face: empty, never made-up numbers
    assert (df.loc[0, "box_x1"] - df.loc[0, "box_x0"]) > 50
    assert df.loc[0, "y_36"] < df.loc[0, "y_57"]
    written = sorted(p.name for p in maps.iterdir())
    assert written == ["astronaut.png", "grace_hopper.png"]
    picture = cv2.imread(str(maps / "astronaut.png"))
    assert picture.shape[0] >= 512 and picture.shape[1] > 512  # image plus legend panel
    assert "1 without a face" in capsys.readouterr().out
    assert df["AU06_c"].tolist()[:2] == [int(v >= 1.0) for v in df["AU06_r"].iloc[:2]]
    assert df["frame"].tolist() == [1, 2, 3] and df["face_id"].tolist() == [0, 0, -1]

    # the Python API gives the same table as the CSV
    table = AUEstimator(weights=tiny_weights, backend="torch").predict_images(
        [str(astronaut_png), str(grace_hopper_path), str(folder)]
    )
    assert list(table.columns) == list(df.columns)
    pd.testing.assert_frame_equal(table.drop(columns="file"), df.drop(columns="file"), check_dtype=False)


def test_cli_bad_files_reported_rest_processed(tiny_weights, astronaut_png, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_text("this is not a JPEG")
    out = tmp_path / "res.csv"
    rc = main(["predict", str(bad), str(astronaut_png), "--weights", str(tiny_weights), "--out", str(out), "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err
    df = pd.read_csv(out)
    assert len(df) == 1 and df.loc[0, "success"] == 1


def test_cli_missing_weights_is_a_clear_error(astronaut_png, tmp_path, capsys):
    rc = main(["predict", str(astronaut_png), "--weights", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "r.csv")])
    assert rc == 2
    assert "nope.pt" in capsys.readouterr().err
