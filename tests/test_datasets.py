"""BP4D and DISFA readers, video-frame caches (tracking, resume, shards) and the protocol
end to end, on small fake trees laid out exactly as the distributed data sets."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from aumaps.cli import main
from aumaps.codec import AUHeatmapCodec
from aumaps.data.bp4d import BP4D_AUS, BP4D_SUBJECTS, FERA2015_DEVEL, FERA2015_TRAIN, read_bp4d
from aumaps.data.cache import CacheError, CropCache, build_cache, merge_caches
from aumaps.data.dataset import AUHeatmapDataset
from aumaps.data.disfa import DISFA_AUS, DISFA_FOLDS, read_disfa
from aumaps.data.synth import intensity_curves, neutral_faces, render_sequence, sample_nuisance
from aumaps.evaluate import evaluate_checkpoint
from aumaps.landmarks import DlibFaceDetector, FaceDetector, FaceLandmarker
from aumaps.train import load_config, train

ARRAYS = ("crops", "landmarks", "intensities", "matrices", "done", "valid")
FRAMES = 8  # per BP4D task and per DISFA video (DISFA SN003's labels have one more row)


def test_protocol_subject_lists_are_the_published_ones():
    # FERA 2015 (baseline code's train_recs / devel_recs), written out rather than generated
    assert set(FERA2015_TRAIN) == {
        "F001",
        "F003",
        "F005",
        "F007",
        "F009",
        "F011",
        "F013",
        "F015",
        "F017",
        "F019",
        "F021",
        "F023",
        "M001",
        "M003",
        "M005",
        "M007",
        "M009",
        "M011",
        "M013",
        "M015",
        "M017",
    }
    assert set(FERA2015_DEVEL) == {
        "F002",
        "F004",
        "F006",
        "F008",
        "F010",
        "F012",
        "F014",
        "F016",
        "F018",
        "F020",
        "F022",
        "M002",
        "M004",
        "M006",
        "M008",
        "M010",
        "M012",
        "M014",
        "M016",
        "M018",
    }
    assert sorted(FERA2015_TRAIN + FERA2015_DEVEL) == sorted(BP4D_SUBJECTS) and len(BP4D_SUBJECTS) == 41
    # DISFA: the 3 folds of JAA-Net and later works (27 subjects, 9 per fold)
    assert [set(f) for f in DISFA_FOLDS] == [
        {"SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"},
        {"SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"},
        {"SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"},
    ]


def test_split_and_fold_files_and_subjects_they_omit(tmp_path):
    from aumaps.data.bp4d import _apply_split
    from aumaps.data.disfa import _apply_folds
    from aumaps.data.labels import Problems
    from aumaps.data.manifest import ManifestError

    manifest = pd.DataFrame(
        {"image": list("abcd"), "subject": ["F001", "F001", "F002", "M001"], "sequence": "T1", "frame": [1, 2, 1, 1]}
    )
    (tmp_path / "split.csv").write_text("subject,split\nF001, Train\n\nF002,test\nX9\n")
    problems = Problems()
    out = _apply_split(manifest.copy(), tmp_path / "split.csv", problems)
    assert list(out.columns[:5]) == ["image", "subject", "sequence", "frame", "split"]
    assert out["split"].tolist() == ["train", "train", "test"] and "M001" not in set(out["subject"])
    assert problems.counts == {"no_split": 1} and "subject M001 is in no list of split" in problems.entries[0][2]
    (tmp_path / "bad.csv").write_text("F001,train\nF002,dev\n")
    with pytest.raises(ManifestError, match=r"bad.csv:2: split must be one of train, val, test, got 'dev'"):
        _apply_split(manifest.copy(), tmp_path / "bad.csv", Problems())

    kfold = _apply_split(manifest.copy(), "kfold:3", Problems())
    assert kfold["fold"].dtype == np.int64 and sorted(set(kfold["fold"])) == [1, 2, 3]
    assert kfold.groupby("subject")["fold"].nunique().max() == 1

    (tmp_path / "folds.csv").write_text("subject,fold\nF001,2\nM001,1\n")
    problems = Problems()
    out = _apply_folds(manifest.copy(), tmp_path / "folds.csv", problems)
    assert out["fold"].tolist() == [2, 2, 1] and problems.counts == {"no_fold": 1}
    (tmp_path / "badfold.csv").write_text("F001,one\n")
    with pytest.raises(ManifestError, match=r"badfold.csv:1: fold must be a positive integer, got 'one'"):
        _apply_folds(manifest.copy(), tmp_path / "badfold.csv", Problems())


def _sequence(index: int, n: int, aus: tuple[int, ...]) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """``n`` synthetic frames of identity ``index`` with smooth head motion, and their
    integer AU intensities (AU → ``(n,)``)."""
    identity = neutral_faces(index + 1, seed=3, procedural=0.0)[index]
    rng = np.random.default_rng(index)
    curves = intensity_curves(rng, n, keyframe_every=3)
    # a plain scene: a face dlib finds in every frame (no hand over it, no dark room, no 35° turn)
    scene = replace(sample_nuisance(rng, strength=0.4), occluder=False, low_light=1.0, downscale=1.0, motion=(0.0, 0.0))
    frames = [image for image, _ in render_sequence(identity, curves, rng, nuisance=scene)]
    return frames, {au: np.round(curves[au]).astype(int) for au in aus}


def _assert_same_cache(a: Path, b: Path) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy"), err_msg=name)
    assert (a / "meta.csv").read_bytes() == (b / "meta.csv").read_bytes()
    assert json.loads((a / "info.json").read_text()) == json.loads((b / "info.json").read_text())


def _tiny_run(cache: Path, out: Path, train_split: str, val_split: str, aus: tuple[int, ...]) -> Path:
    cfg = load_config(
        overrides={
            "data": {"cache": str(cache), "train_split": train_split, "val_split": val_split},
            "aus": list(aus),
            "model": {"width": 16, "depth": 2},
            "train": {"epochs": 1, "batch_size": 4, "amp": "none", "out_dir": str(out), "threads": 1},
        }
    )
    return train(cfg, progress=False)


def _expected_counts(cache: CropCache, rows: np.ndarray) -> list[int]:
    """Per AU, the labelled (finite) intensities among ``rows``."""
    return np.isfinite(cache.intensities[rows]).sum(axis=0).tolist()


# --- BP4D -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bp4d_root(tmp_path_factory) -> Path:
    """F001 (folder), F002 (folder, one corrupt image) and M001 (zip) with task T1, frames
    0001..0008. Labels: F001 AU06 frame 2 = 9, F001 AU12 frame 3 = 7, F002 AU10 frame 4
    listed twice, M001 AU14 file missing."""
    root = tmp_path_factory.mktemp("BP4D")
    intensity = root / "AUCoding" / "AU_INT"
    occurrence = root / "AUCoding" / "AU_OCC"
    occurrence.mkdir(parents=True)
    for index, subject in enumerate(["F001", "F002", "M001"]):
        frames, labels = _sequence(index, FRAMES, BP4D_AUS)
        encoded = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
        if subject == "M001":
            with zipfile.ZipFile(root / "M001.zip", "w") as archive:
                for t, data in enumerate(encoded, start=1):
                    archive.writestr(f"M001/T1/{t:04d}.jpg", data)
        else:
            (root / subject / "T1").mkdir(parents=True)
            for t, data in enumerate(encoded, start=1):
                (root / subject / "T1" / f"{t:04d}.jpg").write_bytes(data)
        for au in BP4D_AUS:
            rows = [[t, int(labels[au][t - 1])] for t in range(1, FRAMES + 1)]
            if (subject, au) == ("F001", 6):
                rows[1][1] = 9
            if (subject, au) == ("F001", 12):
                rows[2][1] = 7
            if (subject, au) == ("F002", 10):
                rows.insert(4, [4, 2])
            if (subject, au) == ("M001", 14):
                continue
            folder = intensity / f"AU{au:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            text = "".join(f"{t},{v}\n" for t, v in rows)
            (folder / f"{subject}_T1_AU{au:02d}.csv").write_text(text)
        occ = ["0," + ",".join(str(a) for a in BP4D_AUS)]
        occ += [
            f"{t}," + ",".join("1" if labels[a][t - 1] > 0 else "0" for a in BP4D_AUS) for t in range(1, FRAMES + 1)
        ]
        (occurrence / f"{subject}_T1.csv").write_text("\n".join(occ) + "\n")
    (root / "F002" / "T1" / "0006.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def test_bp4d_manifest_masks_and_reports(bp4d_root, capsys):
    manifest = read_bp4d(bp4d_root)
    problems = manifest.attrs["problems"]
    assert len(manifest) == 3 * FRAMES
    assert manifest["split"].tolist() == ["train"] * FRAMES + ["val"] * FRAMES + ["train"] * FRAMES
    assert manifest["image"].iloc[-1].endswith("M001.zip#M001/T1/0008.jpg")
    f001 = manifest[manifest["subject"] == "F001"].set_index("frame")
    assert np.isnan(f001.loc[2, "AU06_r"]) and np.isnan(f001.loc[3, "AU12_r"])  # 9 and 7
    assert np.isfinite(f001.drop(index=[2, 3])[["AU06_r", "AU12_r"]].to_numpy()).all()
    f002 = manifest[manifest["subject"] == "F002"].set_index("frame")
    assert np.isnan(f002.loc[4, "AU10_r"]) and np.isfinite(f002.loc[5, "AU10_r"])  # duplicated frame
    assert manifest.loc[manifest["subject"] == "M001", "AU14_r"].isna().all()  # missing file
    assert set(manifest["AU06_occ"]) <= {"0", "1"}
    assert problems.counts == {"not_coded": 1, "out_of_range": 1, "duplicate": 1, "missing_file": 1}
    files = {(Path(f).name, line) for f, line, _ in problems.entries}
    assert {("F001_T1_AU12.csv", 3), ("F002_T1_AU10.csv", 5), ("M001_T1_AU14.csv", 0)} <= files
    assert "out_of_range: 1" in capsys.readouterr().out


def test_bp4d_prepare_train_evaluate(bp4d_root, tmp_path, capsys):
    out = tmp_path / "bp4d"
    assert main(["prepare", "bp4d", str(bp4d_root), "--out", str(out)]) == 0
    cache = CropCache(out / "cache")
    assert cache.aus == BP4D_AUS
    failures = cache.info["summary"]["failures"]
    assert [(f["kind"], Path(f["image"]).name) for f in failures] == [("unreadable", "0006.jpg")]
    assert "1 with unreadable images" in capsys.readouterr().out
    assert cache.valid.sum() == 3 * FRAMES - 1
    meta = cache.meta
    nan_rows = np.flatnonzero(np.isnan(cache.intensities[:, BP4D_AUS.index(6)]))
    assert meta.loc[nan_rows, ["subject", "frame"]].values.tolist() == [["F001", 2]]
    assert cache.crops[cache.valid].reshape(cache.valid.sum(), -1).std(axis=1).min() > 5  # faces

    # masked labels never reach the loss: the dataset's mask is False exactly where NaN
    codec = AUHeatmapCodec(BP4D_AUS)
    dataset = AUHeatmapDataset(cache, cache.indices("train"), codec, None)
    for k, row in enumerate(cache.indices("train")):
        item = dataset[k]
        assert item["mask"].numpy().tolist() == np.isfinite(cache.intensities[row]).tolist()

    run = _tiny_run(out / "cache", tmp_path / "run", "train", "val", BP4D_AUS)
    report = evaluate_checkpoint(run / "model.pt", out / "cache", split="val", out_dir=tmp_path / "eval")
    assert list(report["counts"].values()) == _expected_counts(cache, cache.indices("val"))
    assert report["n_samples"] == FRAMES - 1


# --- DISFA ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disfa_root(tmp_path_factory) -> Path:
    """SN001 (fold 1), SN013 (fold 2, no AU9 file) and SN003 (fold 3, label files one row
    longer than its video): left-camera MJPG videos of FRAMES frames."""
    root = tmp_path_factory.mktemp("DISFA")
    (root / "Videos_LeftCamera").mkdir()
    for index, subject in enumerate(["SN001", "SN013", "SN003"]):
        extra = 1 if subject == "SN003" else 0
        frames, labels = _sequence(index, FRAMES + extra, DISFA_AUS)
        video = root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20, (256, 256))
        for frame in frames[:FRAMES]:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        folder = root / "ActionUnit_Labels" / subject
        folder.mkdir(parents=True)
        for au in DISFA_AUS:
            if (subject, au) == ("SN013", 9):
                continue
            text = "".join(f"{t + 1},{labels[au][t]}\n" for t in range(FRAMES + extra))
            (folder / f"{subject}_au{au}.txt").write_text(text)
    return root


@pytest.fixture(scope="module")
def disfa_prepared(disfa_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("disfa_out")
    assert main(["prepare", "disfa", str(disfa_root), "--out", str(out)]) == 0
    return out


def test_disfa_manifest_handles_lengths_and_missing_files(disfa_root):
    manifest = read_disfa(disfa_root, verbose=False)
    problems = manifest.attrs["problems"]
    assert len(manifest) == 3 * FRAMES  # SN003's extra label row dropped
    assert manifest["image"].iloc[0].endswith("Videos_LeftCamera/LeftVideoSN001_comp.avi#0")
    assert manifest.groupby("subject")["fold"].first().to_dict() == {"SN001": 1, "SN013": 2, "SN003": 3}
    assert manifest.loc[manifest["subject"] == "SN013", "AU09_r"].isna().all()
    assert manifest.drop(columns="AU09_r").filter(like="_r").notna().all().all()
    assert problems.counts == {"missing_file": 1, "length_mismatch": 1}
    mismatch = [m for f, _, m in problems.entries if f.endswith("LeftVideoSN003_comp.avi")]
    assert mismatch and "1 frame(s) of the label files dropped" in mismatch[0]
    with pytest.raises(FileNotFoundError):
        read_disfa(disfa_root / "nowhere")


def test_disfa_prepare_train_evaluate_by_fold(disfa_prepared, tmp_path):
    cache = CropCache(disfa_prepared / "cache")
    assert cache.valid.all() and cache.aus == DISFA_AUS
    assert np.isnan(cache.intensities[cache.meta["subject"] == "SN013", DISFA_AUS.index(9)]).all()
    test_rows = cache.indices("fold=1")
    assert set(cache.meta.loc[test_rows, "subject"]) == {"SN001"}
    assert set(cache.meta.loc[cache.indices("fold!=1"), "subject"]) == {"SN013", "SN003"}
    run = _tiny_run(disfa_prepared / "cache", tmp_path / "run", "fold!=1", "fold=1", DISFA_AUS)
    report = evaluate_checkpoint(run / "best.pt", disfa_prepared / "cache", split="fold=1")
    assert list(report["counts"].values()) == _expected_counts(cache, test_rows)
    fold3 = evaluate_checkpoint(run / "model.pt", disfa_prepared / "cache", split="fold=2")
    assert fold3["counts"]["AU09"] == 0  # the missing file's AU is never scored


class _CountingDetector(FaceDetector):
    """dlib's detector as preparation uses it (no small-face search), counting its runs;
    raises KeyboardInterrupt on run number ``stop``."""

    small_face_search = True

    def __init__(self, stop: int | None = None) -> None:
        self.inner = DlibFaceDetector(small_faces=False)
        self.detections = 0
        self.stop = stop

    def detect(self, image, small_faces=None):
        self.detections += 1
        if self.detections == self.stop:
            raise KeyboardInterrupt
        return self.inner.detect(image, small_faces=small_faces)


def _counting_landmarker(stop: int | None = None) -> FaceLandmarker:
    return FaceLandmarker(detector=_CountingDetector(stop))


def test_interrupted_disfa_prepare_resumes_to_the_same_cache(disfa_prepared, tmp_path):
    manifest, out = disfa_prepared / "manifest.csv", tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):  # the first video has one detection: stop in the second
        build_cache(manifest, out, DISFA_AUS, landmarker=_counting_landmarker(stop=2), progress=False)
    done = np.load(out / "done.npy")
    assert done[:FRAMES].all() and not done[FRAMES:].any()
    with pytest.raises(CacheError, match="incomplete"):
        CropCache(out)
    build_cache(manifest, out, DISFA_AUS, progress=False)
    _assert_same_cache(out, disfa_prepared / "cache")


def test_sharded_prepare_merged_equals_unsharded(disfa_prepared, tmp_path):
    manifest = disfa_prepared / "manifest.csv"
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, folder in enumerate(shards):
        build_cache(manifest, folder, DISFA_AUS, shard=(i, 2), progress=False)
    assert np.load(shards[0] / "done.npy").sum() == 2 * FRAMES  # videos 0 and 2
    with pytest.raises(CacheError, match="shard 0 of 2"):
        CropCache(shards[0])
    with pytest.raises(CacheError, match=r"shards 0..1 once each"):
        merge_caches([shards[0], shards[0]], tmp_path / "bad", progress=False)
    assert main(["prepare", "merge", *map(str, shards[::-1]), "--out", str(tmp_path / "merged")]) == 0
    _assert_same_cache(tmp_path / "merged", disfa_prepared / "cache")


def test_tracking_detects_less_and_stays_close_to_detection(disfa_prepared, tmp_path):
    manifest = disfa_prepared / "manifest.csv"
    tracked, detected = _counting_landmarker(), _counting_landmarker()
    build_cache(manifest, tmp_path / "t", DISFA_AUS, landmarker=tracked, progress=False)
    build_cache(manifest, tmp_path / "d", DISFA_AUS, landmarker=detected, progress=False, redetect_every=1)
    tracked, detected = tracked.detector, detected.detector
    assert detected.detections == 3 * FRAMES and tracked.detections < detected.detections / 2
    a, b = CropCache(tmp_path / "t"), CropCache(tmp_path / "d")
    error = np.linalg.norm(a.landmarks - b.landmarks, axis=-1).mean()
    assert error < 2.5  # crop pixels (256×256 crop, ~100 px between the eyes' outer corners)
