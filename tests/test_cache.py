"""aumaps.data: the manifest's checks, subject splits, and the resumable crop cache."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import aumaps.data.cache.build as cache_build
import aumaps.data.cache.frames as cache_frames
from aumaps import align
from aumaps.data.cache import CacheError, CropCache, build_cache
from aumaps.data.manifest import (
    LANDMARK_COLUMNS,
    ManifestError,
    assign_splits,
    landmarks_array,
    manifest_aus,
    read_manifest,
    read_manifests,
    subject_kfold,
    validate_manifest,
)
from aumaps.images import read_image

AUS = (6, 12)
ARRAYS = ("crops", "landmarks", "intensities", "matrices", "done", "valid")
#: (scale, angle in degrees, x shift, y shift) of each copy of the astronaut.
MOVES = [
    (0.6, 0, 0, 0),
    (0.5, 10, 40, 10),
    (0.7, -15, -20, 5),
    (0.55, 5, 10, -30),
    (0.65, -5, 0, 20),
    (0.5, 20, 30, 30),
]
SUBJECTS = ["007", "007", "12", "12", "3", "3"]
SPLITS = ["train", "train", "val", "val", "test", "test"]
BROKEN_ROW = 3  # the row whose image file is not an image
BLANK_AU_ROW = 1  # the row whose AU06 cell is empty


def _move(scale: float, angle: float, dx: float, dy: float) -> np.ndarray:
    """A 2×3 similarity about the astronaut's centre, which lands at (160 + dx, 160 + dy)."""
    matrix = cv2.getRotationMatrix2D((256.0, 256.0), angle, scale)
    matrix[:, 2] += (dx - 96, dy - 96)
    return matrix


def _labels(row: int) -> dict[str, object]:
    return {"AU06_r": "" if row == BLANK_AU_ROW else row % 6, "AU12_r": 5 - row % 6 / 2}


def _save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, astronaut, landmarker) -> Path:
    """Six moved copies of the astronaut (PNG, 320×320) with their landmarks moved alike,
    plus one file that is not an image (row 3), in a manifest with splits."""
    folder = tmp_path_factory.mktemp("dataset")
    (folder / "images").mkdir()
    face = landmarker(astronaut)[0].landmarks
    rows = []
    for i, move in enumerate(MOVES):
        matrix = _move(*move)
        _save(folder / "images" / f"{i}.png", cv2.warpAffine(astronaut, matrix, (320, 320)))
        points = np.round(align.transform_points(face, matrix), 3)
        rows.append(
            {
                "image": f"images/{i}.png",
                "subject": SUBJECTS[i],
                "split": SPLITS[i],
                **_labels(len(rows)),
            }
            | dict(zip(LANDMARK_COLUMNS, np.concatenate([points[:, 0], points[:, 1]])))
        )
        if len(rows) == BROKEN_ROW:
            (folder / "images" / "broken.png").write_bytes(b"this is not a PNG file")
            rows.append({**rows[2], "image": "images/broken.png", **_labels(BROKEN_ROW)})
    return _write_manifest(folder, rows)


@pytest.fixture(scope="module")
def built(dataset, tmp_path_factory) -> Path:
    """The reference cache: one process, chunks of 3 rows."""
    return build_cache(dataset, tmp_path_factory.mktemp("cache") / "c", AUS, progress=False, chunk=3)


def _assert_same_cache(a: Path, b: Path) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy"), err_msg=name)
    assert (a / "meta.csv").read_bytes() == (b / "meta.csv").read_bytes()
    assert json.loads((a / "info.json").read_text()) == json.loads((b / "info.json").read_text())


class _CountingReader:
    """Stands in for ``read_image``: records paths, raises KeyboardInterrupt on call ``stop``."""

    def __init__(self, stop: int | None = None) -> None:
        self.paths: list[str] = []
        self.stop = stop

    def __call__(self, path):
        self.paths.append(Path(path).name)
        if len(self.paths) == self.stop:
            raise KeyboardInterrupt
        return read_image(path)


# --- the cache's contents -------------------------------------------------------------------


def test_crops_are_the_registered_faces(built, dataset):
    cache = CropCache(built)
    manifest = read_manifest(dataset)
    points = landmarks_array(manifest)
    assert len(cache) == len(manifest) == 7
    assert cache.crops.shape == (7, 256, 256, 3) and cache.crops.dtype == np.uint8
    assert not cache.crops.flags.writeable
    for i in np.flatnonzero(cache.valid):
        matrix = align.registration_matrix(points[i])
        np.testing.assert_array_equal(cache.matrices[i], matrix)
        np.testing.assert_array_equal(cache.crops[i], align.warp_to_crop(read_image(manifest.image[i]), matrix))
        np.testing.assert_array_equal(cache.landmarks[i], align.transform_points(points[i], matrix).astype(np.float32))
        np.testing.assert_allclose(cache.landmarks[i][list(align.ANCHORS)], align.REFERENCE_POINTS, atol=1e-3)


def test_labels_invalid_rows_and_summary(built):
    cache = CropCache(built)
    assert cache.aus == AUS
    labels = [_labels(i) for i in range(7)]
    expected = np.array([[np.nan if a["AU06_r"] == "" else a["AU06_r"], a["AU12_r"]] for a in labels], np.float32)
    np.testing.assert_array_equal(cache.intensities, expected)  # equal_nan: the empty cell stays NaN
    assert np.isnan(cache.intensities[BLANK_AU_ROW, 0])
    assert cache.valid.tolist() == [i != BROKEN_ROW for i in range(7)]
    assert not cache.crops[BROKEN_ROW].any() and np.isnan(cache.landmarks[BROKEN_ROW]).all()
    summary = cache.info["summary"]
    assert (summary["rows"], summary["kept"], summary["unreadable"], summary["no_face"]) == (
        7,
        6,
        1,
        0,
    )
    (failure,) = summary["failures"]
    assert failure["row"] == BROKEN_ROW and failure["kind"] == "unreadable"
    assert failure["image"].endswith("broken.png") and failure["reason"]
    assert cache.info["complete"] is True
    assert cache.meta["subject"].tolist()[:2] == ["007", "007"]  # ids stay text
    assert cache.meta.columns.tolist() == ["image", "subject", "sequence", "frame", "split"]


def test_indices_by_split(built):
    cache = CropCache(built)
    assert cache.indices().tolist() == [0, 1, 2, 4, 5, 6]
    assert cache.indices(valid_only=False).tolist() == list(range(7))
    assert cache.indices("train").tolist() == [0, 1]
    assert cache.indices("val").tolist() == [2, 4]  # row 3 (val) is invalid
    assert cache.indices("val", valid_only=False).tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="split"):
        cache.indices("training")


# --- resuming, parallel building ------------------------------------------------------------


def test_interrupted_build_resumes_without_redoing_rows(dataset, built, tmp_path, monkeypatch, capsys):
    out = tmp_path / "c"
    first = _CountingReader(stop=5)  # chunks of 3: rows 0-2 are saved, row 4 is being read
    monkeypatch.setattr(cache_frames, "read_image", first)
    with pytest.raises(KeyboardInterrupt):
        build_cache(dataset, out, AUS, progress=False, chunk=3)
    assert "run build_cache again" in capsys.readouterr().err
    assert np.load(out / "done.npy").tolist() == [True] * 3 + [False] * 4
    with pytest.raises(CacheError, match=r"incomplete.*run build_cache again to resume"):
        CropCache(out)

    second = _CountingReader()
    monkeypatch.setattr(cache_frames, "read_image", second)
    build_cache(dataset, out, AUS, progress=False, chunk=3)
    assert second.paths == ["broken.png", "3.png", "4.png", "5.png"]  # rows 3-6 only
    _assert_same_cache(out, built)

    third = _CountingReader()
    monkeypatch.setattr(cache_frames, "read_image", third)
    build_cache(dataset, out, AUS, progress=False, chunk=3)  # complete: nothing to do
    assert third.paths == []


def test_a_kill_between_info_and_done_leaves_no_stale_rows(dataset, tmp_path, monkeypatch):
    """Killed after chunk 2's (rows 3-5) failures reached info.json but before done.npy marked
    them; the images change before the resume, so all of rows 3-5 must be taken afresh."""
    folder = tmp_path / "dataset"
    shutil.copytree(dataset.parent, folder)
    write_info, calls = cache_build.write_info, []

    def write_then_die(*args):
        write_info(*args)
        calls.append(args)
        if len(calls) == 2:  # chunk 1, chunk 2 (the empty layout is written by format.create)
            raise KeyboardInterrupt

    monkeypatch.setattr(cache_build, "write_info", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_cache(folder / "manifest.csv", tmp_path / "c", AUS, progress=False, chunk=3)
    assert [f["row"] for f in json.loads((tmp_path / "c" / "info.json").read_text())["summary"]["failures"]] == [3]
    monkeypatch.undo()
    shutil.copy(folder / "images" / "2.png", folder / "images" / "broken.png")  # row 3 repaired
    (folder / "images" / "4.png").write_bytes(b"")  # row 5 spoiled
    cache = CropCache(build_cache(folder / "manifest.csv", tmp_path / "c", AUS, progress=False, chunk=3))
    assert cache.valid.tolist() == [True] * 5 + [False, True]
    assert not cache.crops[5].any() and np.isnan(cache.matrices[5]).all()
    assert [(f["row"], f["reason"]) for f in cache.info["summary"]["failures"]] == [(5, "the file is empty")]


def test_two_workers_build_the_same_cache(dataset, built, tmp_path):
    _assert_same_cache(build_cache(dataset, tmp_path / "c", AUS, workers=2, progress=False, chunk=2), built)


def test_a_cache_of_other_inputs_is_not_resumed(dataset, built, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(built, out)
    with pytest.raises(CacheError, match=r"aus.*resume=False"):
        build_cache(dataset, out, (6,), progress=False)
    fewer = read_manifest(dataset).iloc[:4]
    with pytest.raises(CacheError, match="n: 7 there, 4 now"):
        build_cache(fewer, out, AUS, progress=False)
    rebuilt = CropCache(build_cache(dataset, out, (6,), progress=False, resume=False))
    assert rebuilt.aus == (6,) and rebuilt.intensities.shape == (7, 1)


def test_rows_without_landmarks_are_detected(tmp_path, astronaut, landmarker):
    shifted = np.zeros_like(astronaut)
    shifted[20:, 30:] = astronaut[:-20, :-30]
    images = {
        "astronaut.png": astronaut,
        "shifted.png": shifted,
        "blank.png": np.zeros((120, 120, 3), np.uint8),
    }
    for name, image in images.items():
        _save(tmp_path / name, image)
    manifest = _write_manifest(tmp_path, [{"image": name, "subject": "a", "AU12_r": 1} for name in images])
    cache = CropCache(build_cache(manifest, tmp_path / "c", "12", landmarker=landmarker, progress=False))
    assert cache.valid.tolist() == [True, True, False]
    assert cache.info["summary"]["no_face"] == 1
    with pytest.raises(ValueError, match="no split column"):
        cache.indices("train")
    for i, image in enumerate(list(images.values())[:2]):
        face = max(landmarker(image), key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        matrix = align.registration_matrix(face.landmarks)
        np.testing.assert_array_equal(cache.crops[i], align.warp_to_crop(image, matrix))
        np.testing.assert_allclose(cache.landmarks[i][list(align.ANCHORS)], align.REFERENCE_POINTS, atol=1e-3)


def test_unopenable_video_frame_is_an_invalid_row_named_in_the_summary(tmp_path):
    (tmp_path / "clip.avi").write_bytes(b"")
    manifest = _write_manifest(tmp_path, [{"image": "clip.avi#3", "subject": "a", "AU12_r": 1}])
    out = build_cache(manifest, tmp_path / "c", (12,), progress=False)
    info = json.loads((out / "info.json").read_text())
    assert not CropCache(out).valid.any()
    (failure,) = info["summary"]["failures"]
    assert failure["kind"] == "unreadable" and "clip.avi" in failure["image"]


# --- text a spreadsheet would run as a formula --------------------------------------------------


def _formula_like(cell: str) -> bool:
    if not cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def test_manifest_and_meta_csv_neutralise_formula_text_and_read_it_back_exactly(dataset, built, tmp_path):
    from aumaps.data.prepare import write_manifest

    folder = tmp_path / "d"
    shutil.copytree(dataset.parent, folder)
    table = pd.read_csv(folder / "manifest.csv", dtype={"subject": str, "image": str})
    renamed = {
        "images/0.png": "=HYPERLINK(x).png",
        "images/1.png": "-rf.png",
        "images/2.png": "'=quoted.png",
        "images/4.png": "images/=in-a-folder.png",
    }
    for old, new in renamed.items():
        (folder / old).rename(folder / new)
        table.loc[table["image"] == old, "image"] = new
    table = table.copy()
    table["subject"] = table["subject"].map({"007": "=1+1", "12": "-12", "3": "@3"})
    table["note"] = ["+cmd", "-0.5", "'=x", "", "plain", "@", "-"]
    manifest = write_manifest(table, folder / "manifest.csv")
    with open(manifest, newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert {"'=HYPERLINK(x).png", "'-rf.png", "''=quoted.png", "images/=in-a-folder.png"} <= set(cells)
    assert {"'=1+1", "-12", "'@3", "'+cmd", "''=x", "'@", "'-", "-0.5"} <= set(cells)  # numbers stay numbers
    assert not [cell for cell in cells if _formula_like(cell)]

    read = read_manifest(manifest)
    assert read["image"].tolist() == [str(folder / image) for image in table["image"]]
    assert read["subject"].tolist() == table["subject"].tolist()
    assert read["note"].tolist() == table["note"].tolist()  # "-0.5" stays the text it was

    # the cache's meta.csv: neutralised on disk, read back as the manifest says
    cache = CropCache(build_cache(manifest, tmp_path / "c", AUS, progress=False))
    with open(cache.path / "meta.csv", newline="") as fh:
        meta_cells = [cell for row in csv.reader(fh) for cell in row]
    assert {"'=1+1", "-12", "'@3", "'+cmd", "''=x"} <= set(meta_cells)  # image paths are absolute there
    assert not [cell for cell in meta_cells if _formula_like(cell)]
    for column in ("image", "subject", "note", "split"):
        assert cache.meta[column].tolist() == read[column].tolist(), column
    assert cache.meta["frame"].tolist() == read["frame"].tolist()
    assert cache.indices("subject=-12", valid_only=False).tolist() == [2, 3, 4]
    assert cache.indices("note=+cmd").tolist() == [0]
    reference = CropCache(built)  # the same faces as the reference build
    np.testing.assert_array_equal(cache.crops, reference.crops)
    np.testing.assert_array_equal(cache.valid, reference.valid)


# --- the manifest -----------------------------------------------------------------------------


@pytest.fixture
def small_manifest(tmp_path) -> Path:
    (tmp_path / "sub").mkdir()
    rows = [
        {"image": "a.png", "subject": "007", "AU06_r": 1, "AU12_r": 0, "note": "x"},
        {"image": "/data/b.png", "subject": "007", "AU06_r": "", "AU12_r": 2.5, "note": ""},
        {"image": "c.png", "subject": "8", "AU06_r": 3, "AU12_r": 4, "note": "z"},
    ]
    return _write_manifest(tmp_path / "sub", rows)


def test_manifest_is_normalised(small_manifest):
    table = read_manifest(small_manifest, aus="6,12")
    assert table["image"].tolist()[:2] == [str(small_manifest.parent / "a.png"), "/data/b.png"]
    assert table["subject"].tolist() == ["007", "007", "8"]
    assert table["frame"].tolist() == [0, 1, 0] and table["sequence"].tolist() == ["", "", ""]
    assert table.columns.tolist() == [
        "image",
        "subject",
        "sequence",
        "frame",
        "AU06_r",
        "AU12_r",
        "note",
    ]
    assert np.isnan(table["AU06_r"][1])
    pd.testing.assert_frame_equal(validate_manifest(table), table)


def test_out_of_range_intensity_names_line_and_column(small_manifest):
    table = pd.read_csv(small_manifest, dtype=str)
    table.loc[2, "AU12_r"] = "7"
    table.to_csv(small_manifest, index=False)
    with pytest.raises(ManifestError, match=r"manifest\.csv.*line 4, column AU12_r = 7"):
        read_manifest(small_manifest)
    with pytest.warns(UserWarning, match="line 4, column AU12_r"):
        table = read_manifest(small_manifest, on_bad="mask")
    assert np.isnan(table["AU12_r"][2]) and table["AU06_r"][2] == 3


def test_missing_au_column_is_named(small_manifest):
    with pytest.raises(ManifestError, match=r"manifest\.csv.*AU10_r, AU14_r, AU17_r"):
        read_manifest(small_manifest, aus="bp4d")


def test_landmark_columns_are_all_or_none(dataset, tmp_path):
    table = pd.read_csv(dataset).drop(columns=["y_67"])
    with pytest.raises(ManifestError, match=r"135 of the 136 landmark columns.*y_67"):
        read_manifest(_write_manifest(tmp_path, table.to_dict("records")))
    table = pd.read_csv(dataset)
    table.loc[2, "x_5"] = np.nan
    with pytest.raises(ManifestError, match=r"all 136 landmark values or none.*line 4"):
        read_manifest(_write_manifest(tmp_path, table.to_dict("records")))


def test_assign_splits_is_subject_disjoint_and_seeded():
    table = pd.DataFrame(
        {
            "image": [f"{i}.png" for i in range(40)],
            "subject": [f"s{i % 20}" for i in range(40)],
            "AU12_r": 1,
        }
    )
    split = assign_splits(table, seed=1)
    assert split.groupby("subject")["split"].nunique().max() == 1
    assert split.drop_duplicates("subject")["split"].value_counts().to_dict() == {
        "train": 14,
        "val": 3,
        "test": 3,
    }
    assert split["split"].tolist() == assign_splits(table, seed=1)["split"].tolist()
    assert split["split"].tolist() != assign_splits(table, seed=2)["split"].tolist()
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(table, (0.5, 0.6, 0.1))


def test_subject_kfold_partitions_subjects():
    folds = subject_kfold([f"s{i}" for i in range(10)] * 3, k=3, seed=0)
    tests = [set(test) for _, test in folds]
    assert sorted(len(t) for t in tests) == [3, 3, 4]
    assert set().union(*tests) == {f"s{i}" for i in range(10)}
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 10
    assert folds == subject_kfold([f"s{i}" for i in range(10)], k=3, seed=0)


def test_several_manifests_make_one_data_set(dataset, built, tmp_path):
    # a second data set in another folder: AU12 and AU17 labelled, no landmarks, other subjects
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    shutil.copy(dataset.parent / "images" / "0.png", other / "images" / "a.png")
    pd.DataFrame([{"image": "images/a.png", "subject": "X1", "split": "train", "AU12_r": 2, "AU17_r": 4}]).to_csv(
        other / "m.csv", index=False
    )
    both = read_manifests([dataset, other / "m.csv"])
    first = read_manifest(dataset)
    assert len(both) == len(first) + 1 and both["image"].iloc[-1] == str(other / "images" / "a.png")
    assert manifest_aus([dataset, other / "m.csv"]) == (6, 12, 17)
    assert np.isnan(both["AU06_r"].iloc[-1]) and both["AU17_r"].iloc[-1] == 4
    assert both["AU17_r"].iloc[: len(first)].isna().all()
    assert both[list(LANDMARK_COLUMNS)].iloc[-1].isna().all()

    from aumaps.cli import main

    out = tmp_path / "cache"
    assert main(["prepare", "manifest", str(dataset), str(other / "m.csv"), "--out", str(out)]) == 0
    merged = CropCache(out)
    assert merged.aus == (6, 12, 17) and len(merged.intensities) == len(first) + 1
    alone = CropCache(built)  # the first data set's rows are registered as on their own
    np.testing.assert_array_equal(np.asarray(merged.crops[: len(first)]), np.asarray(alone.crops))
    np.testing.assert_array_equal(merged.intensities[-1], [np.nan, 2, 4])

    pd.DataFrame([{"image": "images/a.png", "subject": "12", "split": "train", "AU12_r": 2}]).to_csv(
        other / "clash.csv", index=False
    )
    with pytest.raises(ManifestError, match="subject '12' appears in both"):
        read_manifests([dataset, other / "clash.csv"])
    pd.DataFrame([{"image": "images/a.png", "subject": "X2", "AU12_r": 2}]).to_csv(other / "nosplit.csv", index=False)
    with pytest.raises(ManifestError, match="split column"):
        read_manifests([dataset, other / "nosplit.csv"])


def _peak_bytes_of(call):
    """(result, peak bytes Python allocated) of ``call()``."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_member_is_refused_unread(tmp_path, monkeypatch):
    """A member that inflates to 64 MB (64 kB in the archive) when the pixel cap allows images
    of at most 8 * 1000 + 16 MB bytes: refused from its declared size, nothing read."""
    import zipfile

    monkeypatch.setenv("AUMAPS_MAX_PIXELS", "1000")
    archive = tmp_path / "S001.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("S001/0001.png", bytes(64 * 2**20))
    assert zipfile.ZipFile(archive).getinfo("S001/0001.png").file_size == 64 * 2**20 > cache_frames.max_member_bytes()
    assert archive.stat().st_size < 2**20
    invalid, peak = _peak_bytes_of(lambda: cache_frames.RowImages().read(f"{archive}#S001/0001.png"))
    assert isinstance(invalid, cache_frames.InvalidRow) and invalid.kind == "unreadable"
    assert "'S001/0001.png'" in invalid.reason and str(archive) in invalid.reason
    assert f"declares {64 * 2**20:,} bytes" in invalid.reason and "AUMAPS_MAX_PIXELS" in invalid.reason
    assert peak < 2 * 2**20  # the member was never inflated


def test_a_zip_member_over_the_pixel_cap_is_refused_from_its_header(tmp_path, monkeypatch):
    """A 20 MB PNG member (within the size bound) declaring 3000 x 3000 pixels over a 1-megapixel
    cap: refused after its first 256 kB; an image within the cap in the same archive is read."""
    import zipfile

    from test_images import grey_png

    monkeypatch.setenv("AUMAPS_MAX_PIXELS", "1000000")
    big = grey_png(tmp_path / "big.png", 3000, 3000)
    with open(big, "ab") as out:  # bytes after IEND: the member is 20 MB whatever its pixels
        out.write(bytes(20 * 2**20))
    small = grey_png(tmp_path / "small.png", 40, 30, value=77)
    archive = tmp_path / "S002.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(big, "S002/big.png")
        out.write(small, "S002/small.png")
    assert 20 * 2**20 < zipfile.ZipFile(archive).getinfo("S002/big.png").file_size < cache_frames.max_member_bytes()
    rows = cache_frames.RowImages()
    invalid, peak = _peak_bytes_of(lambda: rows.read(f"{archive}#S002/big.png"))
    assert isinstance(invalid, cache_frames.InvalidRow) and invalid.kind == "unreadable"
    assert "3000x3000 pixels" in invalid.reason and "'S002/big.png'" in invalid.reason
    assert peak < 4 * 2**20  # the head only, not the 20 MB
    image = rows.read(f"{archive}#S002/small.png")
    assert isinstance(image, np.ndarray) and image.shape == (30, 40, 3) and (image == 77).all()
