"""Studies: a folder tree of small videos end to end, resume after SIGKILL, shards and torchrun
ranks that cover every video once, worker processes, per-person baselines, summaries."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from aumaps.cli import main
from aumaps.predict import AUEstimator
from aumaps.results import csv_columns
from aumaps.study import (
    EmptyStudyError,
    StudyOptions,
    discover_study,
    launcher_shard,
    read_logs,
    run_study,
    select_shard,
    summarize,
)
from aumaps.study.baseline import (
    DEFAULT_MIN_FRAMES,
    MapStore,
    correct_csv,
    min_frames,
    neutral_map,
    scalar_neutral,
    subtract_map,
    subtract_scalar,
)

AUS = (6, 10, 12, 14, 17)
RAW = [f"AU{a:02d}_r" for a in AUS]
CORR = [f"AU{a:02d}_r_corr" for a in AUS]
FPS = 10.0
SIZE = 160


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The tests here run the tiny network on one thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def estimator(tiny_weights) -> AUEstimator:
    return AUEstimator(weights=tiny_weights, batch_size=8, backend="torch")


def write_video(path: Path, frames: int, astronaut: np.ndarray | None) -> Path:
    """A 160×160 MJPG clip at 10 fps: the astronaut's face (about 90 px) swaying a little,
    or grey noise without a face when ``astronaut`` is None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE))
    for i in range(frames):
        if astronaut is None:
            image = np.random.default_rng(i).integers(60, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        else:
            matrix = cv2.getRotationMatrix2D((215.0, 115.0), 2.0 * np.sin(i / 3), 0.9)
            matrix[:, 2] += [SIZE / 2 - 215.0 + i % 4, SIZE / 2.2 - 115.0]
            image = cv2.warpAffine(astronaut, matrix, (SIZE, SIZE), borderValue=(90, 90, 90))
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory, astronaut) -> Path:
    """s1/a.avi (a face, 12 frames), s1/b.avi (no face, 8), s2/deep/c.avi (a face, 10),
    s2/broken.mp4 (not a video), s2/portrait.png (an image)."""
    root = tmp_path_factory.mktemp("study")
    write_video(root / "s1" / "a.avi", 12, astronaut)
    write_video(root / "s1" / "b.avi", 8, None)
    write_video(root / "s2" / "deep" / "c.avi", 10, astronaut)
    (root / "s2" / "broken.mp4").write_bytes(b"not a video at all " * 200)
    cv2.imwrite(str(root / "s2" / "portrait.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return root


def _statuses(out: Path) -> dict[str, str]:
    return {key: entry["status"] for log in read_logs(out) for key, entry in log["items"].items()}


# -- what a study holds ------------------------------------------------------------------


def test_discovery_mirrors_the_tree(tmp_path):
    root = tmp_path / "study"
    for name in (
        "x/clip.mp4",
        "x/clip.avi",
        "x/images.mov",
        "x/p1.png",
        "x/p10.png",
        "x/p2.png",
        "y/z/talk.MKV",
        "y/notes.txt",
        ".hidden/v.mp4",
        "out/old.mp4",
        "top.webm",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    items = discover_study(root, out_dir=root / "out")
    assert [(i.name, i.kind, i.csv) for i in items] == [
        ("top.webm", "video", "top.csv"),
        ("x/", "images", "x/images.csv"),
        ("x/clip.avi", "video", "x/clip.avi.csv"),  # two clips: both keep their suffix
        ("x/clip.mp4", "video", "x/clip.mp4.csv"),
        ("x/images.mov", "video", "x/images.mov.csv"),  # beside the folder's images.csv
        ("y/z/talk.MKV", "video", "y/z/talk.csv"),
    ]
    assert [f.name for f in items[1].files] == ["p1.png", "p2.png", "p10.png"]
    assert items[0].report == "top_report"

    frames = tmp_path / "frames"
    for name in ("a/f1.png", "a/f2.png", "b/c/f1.png", "d.mp4"):
        (frames / name).parent.mkdir(parents=True, exist_ok=True)
        (frames / name).write_bytes(b"")
    items = discover_study(frames, sequence=True)
    assert [(i.name, i.kind, i.csv) for i in items] == [
        ("a/", "sequence", "a.csv"),
        ("b/c/", "sequence", "b/c.csv"),
        ("d.mp4", "video", "d.csv"),
    ]
    # several paths: each folder under its name, files at the top
    items = discover_study([frames, root / "top.webm"], sequence=True)
    assert [i.csv for i in items] == ["frames/a.csv", "frames/b/c.csv", "frames/d.csv", "top.csv"]


def test_shards_cover_every_video_exactly_once(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(23):
        path = tmp_path / f"p{rng.integers(5)}" / f"v{k}.mp4"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    items = discover_study(tmp_path)
    for n in (1, 2, 3, 5, 30):
        shards = [select_shard(items, i, n) for i in range(n)]
        names = [item.name for shard in shards for item in shard]
        assert sorted(names) == sorted(i.name for i in items) and len(set(names)) == len(items)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        # the same split whatever order the items come in
        assert select_shard(list(reversed(items)), n - 1, n) == shards[-1]
    assert launcher_shard({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert launcher_shard({"WORLD_SIZE": "1"}) is None and launcher_shard({}) is None
    with pytest.raises(ValueError):
        select_shard(items, 2, 2)


def test_a_folder_with_nothing_to_read_is_an_error_naming_it(tmp_path, tiny_weights, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no media here")
    # the plain image mode used to say "0 image(s)" and exit 0
    assert main(["predict", str(empty), "--weights", str(tiny_weights), "--out", str(tmp_path / "r.csv")]) == 2
    assert f"'{empty}' holds no image or video" in capsys.readouterr().err
    assert main(["predict", str(empty), "--out-dir", str(tmp_path / "res"), "--weights", str(tiny_weights)]) == 2
    assert f"'{empty}' holds no video" in capsys.readouterr().err
    with pytest.raises(EmptyStudyError, match="empty"):
        discover_study(empty)


# -- a study end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed(study, tiny_weights, tmp_path_factory):
    """The study through the CLI with reports and the baseline, then run again."""
    out = tmp_path_factory.mktemp("results")
    args = [
        "predict",
        str(study),
        "--out-dir",
        str(out),
        "--weights",
        str(tiny_weights),
        "--backend",
        "torch",
        "--quiet",
        "--report",
        "--baseline",
    ]
    first = main(args)
    log = json.loads((out / "run.json").read_text())
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")}
    second = main(args)
    return out, first, log, stamps, second


def test_study_writes_a_csv_per_video_mirroring_the_tree(analysed):
    out, first, _, _, _ = analysed
    assert first == 1  # the broken video failed; the others went on
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == [
        "s1/a.csv",
        "s1/b.csv",
        "s2/deep/c.csv",
        "s2/images.csv",
    ]
    a = pd.read_csv(out / "s1" / "a.csv")
    assert list(a.columns) == csv_columns(AUS) + CORR  # corrected columns after the schema's
    assert a["frame"].tolist() == list(range(1, 13)) and (a["success"] == 1).all()
    b = pd.read_csv(out / "s1" / "b.csv")
    assert len(b) == 8 and (b["success"] == 0).all() and b[CORR].isna().all().all()
    images = pd.read_csv(out / "s2" / "images.csv")
    assert images["file"].str.endswith("portrait.png").all() and images["success"].sum() == 1
    assert not list(out.rglob(".*.part"))  # no temporary file left


def test_run_log_says_what_became_of_each_item(analysed):
    out, _, log, _, _ = analysed
    assert log["status"] == "failed" and log["counts"] == {"done": 4, "failed": 1}
    assert log["model"]["aus"] == list(AUS) and log["model"]["card"]["name"] == "tiny random test model"
    assert log["versions"]["aumaps"] and log["versions"]["torch"] and log["engine"]
    assert log["options"]["results"]["baseline"] == "scalar"
    items = log["items"]
    assert items["s2/broken.csv"]["status"] == "failed" and "broken.mp4" in items["s2/broken.csv"]["error"]
    a = items["s1/a.csv"]
    assert (a["status"], a["frames"], a["frames_with_face"], a["tracks"]) == ("done", 12, 12, 1)
    assert items["s2/deep/c.csv"]["frames"] == 10 and items["s2/images.csv"]["frames"] == 1
    # the baseline estimate is logged: a 12-frame track is too short for a neutral (30 frames),
    # so the log says why and its corrected cells stay empty (the subtraction itself:
    # test_baseline_removes_a_constant_offset_from_a_synthetic_video)
    table = pd.read_csv(out / "s1" / "a.csv")
    estimate = a["baseline"]["tracks"]["0"]
    assert estimate["frames"] == 12 and not estimate["corrected"] and "fewer than the 30" in estimate["reason"]
    assert table[CORR].isna().all().all() and table[RAW].notna().all().all()


def test_rerun_skips_what_is_complete_and_retries_what_failed(analysed):
    out, _, _, stamps, second = analysed
    assert second == 1  # the broken video is tried again and fails again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")} == stamps  # nothing rewritten
    log = json.loads((out / "run.json").read_text())
    assert log["counts"] == {"complete": 4, "failed": 1}
    # a complete item keeps what the run that made it said
    assert log["items"]["s1/a.csv"]["frames"] == 12 and "baseline" in log["items"]["s1/a.csv"]


def test_reports_and_study_page(analysed):
    out = analysed[0]
    assert (out / "s1" / "a_report" / "index.html").is_file()
    page = (out / "index.html").read_text()
    assert page.count('<tr><td class="name">') == 3  # one row per video CSV
    assert 'href="s1/a_report/index.html"' in page and 'href="s2/deep/c.csv"' in page
    assert page.count("<polyline") == 2 * len(AUS)  # a sparkline per AU for the two videos with a face
    assert "broken.mp4" in page  # the failed item is listed


def test_resuming_with_other_options_is_refused(analysed, study, tiny_weights, capsys):
    out = analysed[0]
    rc = main(
        ["predict", str(study), "--out-dir", str(out), "--weights", str(tiny_weights), "--backend", "torch", "--quiet"]
    )
    assert rc == 2 and "baseline" in capsys.readouterr().err


def test_workers_give_the_same_csvs(analysed, study, tiny_weights, tmp_path):
    out = tmp_path / "two"
    rc = main(
        [
            "predict",
            str(study),
            "--out-dir",
            str(out),
            "--weights",
            str(tiny_weights),
            "--backend",
            "torch",
            "--quiet",
            "--baseline",
            "--workers",
            "2",
        ]
    )
    assert rc == 1
    log = json.loads((out / "run.json").read_text())
    assert log["workers"] == 2 and log["threads_per_worker"] >= 1
    assert log["counts"] == {"done": 4, "failed": 1}
    for name in ("s1/a.csv", "s1/b.csv", "s2/deep/c.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(analysed[0] / name), atol=2e-3)


# -- kill it at any moment ---------------------------------------------------------------


def test_resume_after_sigkill_mid_video(tmp_path, astronaut, tiny_weights):
    root = tmp_path / "study"
    for k in range(4):
        write_video(root / f"v{k}.avi", 40, astronaut)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "aumaps",
        "predict",
        str(root),
        "--out-dir",
        str(out),
        "--weights",
        str(tiny_weights),
        "--backend",
        "torch",
        "--quiet",
    ]
    process = subprocess.Popen(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            done = list(out.glob("v*.csv"))
            half = [p for p in out.glob(".v*.csv.*.part") if p.stat().st_size and len(p.read_bytes().splitlines()) > 3]
            if done and half:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    finished = sorted(out.glob("v*.csv"))
    parts = sorted(out.glob(".v*.csv.*.part"))
    assert finished and parts, "the run was not caught in the middle of a video"
    half_done = {p.name.split(".csv.")[0][1:] + ".csv" for p in parts}
    assert not half_done & {p.name for p in finished}  # the video being analysed has no final CSV
    for path in finished:  # every CSV under its final name is complete
        assert len(pd.read_csv(path)) == 40
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}

    assert main(cmd[3:]) == 0
    assert sorted(p.name for p in out.glob("v*.csv")) == [f"v{k}.csv" for k in range(4)]
    for path in out.glob("v*.csv"):
        table = pd.read_csv(path)
        assert table["frame"].tolist() == list(range(1, 41))
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps  # complete ones skipped
    assert not list(out.glob(".*.part"))  # the killed run's leftovers are gone
    log = json.loads((out / "run.json").read_text())
    assert log["counts"] == {"complete": len(finished), "done": 4 - len(finished)}


def test_ctrl_c_keeps_what_is_complete_and_nothing_half_done(tmp_path, astronaut, tiny_weights):
    root = tmp_path / "study"
    for k in range(2):
        write_video(root / f"v{k}.avi", 40, astronaut)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aumaps",
            "predict",
            str(root),
            "--out-dir",
            str(out),
            "--weights",
            str(tiny_weights),
            "--backend",
            "torch",
            "--quiet",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if any(len(p.read_bytes().splitlines()) > 3 for p in out.glob(".v0.csv.*.part")):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert not list(out.glob("*.csv")) and not list(out.glob(".*.part"))  # v0 stopped: nothing kept
    log = json.loads((out / "run.json").read_text())
    assert log["status"] == "interrupted" and log["items"]["v0.csv"]["status"] == "interrupted"
    assert log["items"]["v1.csv"]["status"] == "pending"


def test_folders_of_frames_are_videos_with_sequence(tmp_path, astronaut, estimator):
    for k in range(4):
        frame = np.roll(astronaut, 3 * k, axis=1)
        (tmp_path / "study" / "take1").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "study" / "take1" / f"f{k + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    run = run_study(
        tmp_path / "study", tmp_path / "out", StudyOptions(sequence=True, fps=5.0, progress=False), estimator=estimator
    )
    assert run.exit_status == 0 and [i.csv for i in run.items] == ["take1.csv"]
    table = pd.read_csv(tmp_path / "out" / "take1.csv")
    assert table["frame"].tolist() == [1, 2, 3, 4] and table["timestamp"].tolist() == [0.0, 0.2, 0.4, 0.6]


# -- many processes, many machines -------------------------------------------------------


def test_shards_and_torchrun_ranks_split_the_study_the_same_way(study, tiny_weights, tmp_path):
    common = ["--weights", str(tiny_weights), "--backend", "torch", "--quiet"]
    sharded = tmp_path / "sharded"
    codes = [main(["predict", str(study), "--out-dir", str(sharded), "--shard", f"{i}/2", *common]) for i in (0, 1)]
    items = discover_study(study)
    expected = [{item.csv for item in select_shard(items, i, 2)} for i in (0, 1)]
    logs = {log["file"]: log for log in read_logs(sharded)}
    assert sorted(logs) == ["run.shard-0-of-2.json", "run.shard-1-of-2.json"]
    assert [set(logs[f"run.shard-{i}-of-2.json"]["items"]) for i in (0, 1)] == expected
    assert codes == [1 if "s2/broken.csv" in shard else 0 for shard in expected]

    ranks = tmp_path / "torchrun"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "aumaps",
        "predict",
        str(study),
        "--out-dir",
        str(ranks),
        *common,
    ]
    done = subprocess.run(
        cmd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # the broken video makes the study exit with 1, once both ranks are done (neither stopped midway)
    assert done.returncode == 1, done.stderr[-3000:]
    logs = {log["file"]: log for log in read_logs(ranks)}
    assert sorted(logs) == ["run.shard-0-of-2.json", "run.shard-1-of-2.json"]
    assert [set(logs[f"run.shard-{i}-of-2.json"]["items"]) for i in (0, 1)] == expected
    assert all(log["launcher"] == "torchrun" and log["status"] in ("complete", "failed") for log in logs.values())
    csvs = sorted(p.relative_to(ranks).as_posix() for p in ranks.rglob("*.csv"))
    assert csvs == sorted(p.relative_to(sharded).as_posix() for p in sharded.rglob("*.csv"))
    for name in csvs:
        pd.testing.assert_frame_equal(pd.read_csv(ranks / name), pd.read_csv(sharded / name), atol=2e-3)


# -- per-person baseline -----------------------------------------------------------------


def test_both_baselines_remove_a_known_offset_from_a_known_curve():
    rng = np.random.default_rng(0)
    curve = np.clip(rng.normal(0, 1.5, (200, 2)), 0, None)  # at rest (0) in about half the frames
    rest = np.array([1.0, 0.3])
    np.testing.assert_allclose(subtract_scalar(curve + rest, scalar_neutral(curve + rest)), curve, atol=1e-9)

    # maps: the expression a Gaussian of height curve(t) at the AU's centre; the person's neutral a bump
    yy, xx = np.mgrid[:32, :32]
    centre = np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 8.0)
    beside = np.exp(-((xx - 6) ** 2 + (yy - 24) ** 2) / 8.0)
    expression = curve[:, :, None, None] * centre  # (T, A, H, W)
    for bump in (centre, beside):  # a neutral where the AU shows, and one elsewhere in its map
        maps = expression + rest[None, :, None, None] * bump
        corrected_map = subtract_map(maps, neutral_map(maps))
        np.testing.assert_allclose(corrected_map, curve, atol=1e-6)
    # the scalar form cannot see an expression weaker than a neutral bump elsewhere in the map
    raw = maps.reshape(200, 2, -1).max(-1)
    scalar = subtract_scalar(raw, scalar_neutral(raw))
    weak = (curve[:, 0] > 0) & (curve[:, 0] < rest[0])
    assert weak.any() and np.allclose(scalar[weak, 0], 0.0)


def _synthetic_video(path: Path, frames: int = 16) -> Path:
    """A synthetic identity whose AU12 rises and falls, rendered at 160 px (no nuisances)."""
    from aumaps.data.synth import neutral_faces, render_sequence

    identity = neutral_faces(1, seed=1, procedural=0.0)[0]
    curve = np.concatenate([np.zeros(frames // 2), np.linspace(0, 3, frames - frames // 2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE))
    for image, _ in render_sequence(identity, {12: curve}, nuisance=False, size=SIZE):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


class _Offset:
    """An engine whose maps are another's plus a constant: a person who reads higher at rest."""

    def __init__(self, engine, offset: float) -> None:
        self.engine, self.offset = engine, offset

    def __call__(self, crops):
        return self.engine(crops) + self.offset

    def describe(self) -> str:
        return f"{self.engine.describe()} + {self.offset}"


@pytest.mark.parametrize("form", ["scalar", "map"])
def test_baseline_removes_a_constant_offset_from_a_synthetic_video(form, estimator, tmp_path):
    video = _synthetic_video(tmp_path / "study" / "smile.avi", frames=32)  # a neutral needs 30 frames
    shifted = copy.copy(estimator)
    shifted.engine = _Offset(estimator.engine, 0.75)
    tables = []
    for name, est in (("plain", estimator), ("shifted", shifted)):
        run = run_study(video.parent, tmp_path / name, StudyOptions(baseline=form, progress=False), estimator=est)
        assert run.exit_status == 0
        tables.append(pd.read_csv(tmp_path / name / "smile.csv"))
        estimate = run.entries["smile.csv"]["baseline"]
        assert estimate["form"] == form and "0" in estimate["tracks"]
    plain, offset = tables
    assert plain["success"].mean() > 0.5 and (plain["success"] == offset["success"]).all()
    faces = plain["success"] == 1
    below = (plain.loc[faces, RAW] + 0.75 < 5).to_numpy()
    np.testing.assert_allclose(
        offset.loc[faces, RAW].to_numpy()[below], plain.loc[faces, RAW].to_numpy()[below] + 0.75, atol=2e-4
    )
    # the offset is gone from the corrected intensities (the map form keeps float16 maps)
    np.testing.assert_allclose(offset.loc[faces, CORR], plain.loc[faces, CORR], atol=2e-4 if form == "scalar" else 5e-3)
    assert (offset.loc[faces, CORR].quantile(0.05) < 0.05).all()


def test_map_store_keeps_maps_in_row_order(tmp_path):
    from aumaps.results import FaceResult

    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 4, (6, 2, 8, 8)).astype(np.float32)

    def face(k, face_id):
        return FaceResult(face_id, (6, 12), maps[k].max((1, 2)), maps[k], None, None, None, None, 1.0, None, None)

    rows = ["frame,face_id,timestamp,success,AU06_r,AU12_r"]
    with MapStore(tmp_path) as store:
        for k, face_id in enumerate([0, 1, 0, 1, 0, 1]):
            store.add([face(k, face_id)])
            rows.append(f"{k // 2 + 1},{face_id},0,1,{maps[k, 0].max():.4f},{maps[k, 1].max():.4f}")
        rows.append("4,-1,0,0,,")
        (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
        estimates = correct_csv(
            tmp_path / "in.csv", tmp_path / "out.csv", (6, 12), "map", 0.0, store, least_frames=1
        )  # 3 frames a track: the minimum on purpose (percentile 0)
    table = pd.read_csv(tmp_path / "out.csv")
    for face_id in (0, 1):
        own = maps[face_id::2]
        expected = subtract_map(own, neutral_map(own, 0.0))
        got = table.loc[table["face_id"] == face_id, ["AU06_r_corr", "AU12_r_corr"]].to_numpy()
        np.testing.assert_allclose(got, expected, atol=5e-3)
        assert estimates[str(face_id)]["frames"] == 3
    assert table["AU06_r_corr"].isna().tolist() == [False] * 6 + [True]


# -- baselines people can trust: minimum length, one neutral per participant ----------------


def _face_rows(values: np.ndarray, face_id: int = 0, start: int = 1) -> list[dict]:
    """One face row per frame: ``values`` ``(T, 2)`` as AU06 and AU12."""
    return [
        {
            "frame": start + k,
            "face_id": face_id,
            "timestamp": (start + k - 1) / FPS,
            "success": 1,
            "AU06_r": round(float(a), 4),
            "AU12_r": round(float(b), 4),
        }
        for k, (a, b) in enumerate(values)
    ]


def test_min_frames_keeps_the_percentile_off_the_minimum():
    assert min_frames() == DEFAULT_MIN_FRAMES == 30  # 5th percentile of 30 frames: rank 1.45, above the lowest
    assert min_frames(1.0) == 101 and min_frames(10.0, least=5) == 11 and min_frames(0.0, least=5) == 5
    values = np.array([[2.0], [3.0], [4.0]])
    assert scalar_neutral(values)[0] == pytest.approx(2.1)  # a 3-frame track's 5th percentile: its minimum, nearly
    with pytest.raises(ValueError):
        min_frames(5.0, least=0)


def test_a_track_too_short_for_a_neutral_is_not_corrected_and_says_so(tmp_path):
    rng = np.random.default_rng(3)
    long = np.clip(rng.normal(0.0, 1.0, (40, 2)), 0, None) + [1.0, 0.5]  # at rest (1.0, 0.5) half the time
    short = np.array([[2.0, 3.0], [2.5, 3.5], [3.0, 4.0]])  # 3 frames, all expressive
    rows = _face_rows(long) + _face_rows(short, face_id=1, start=41)
    pd.DataFrame(rows).to_csv(tmp_path / "in.csv", index=False)
    estimates = correct_csv(tmp_path / "in.csv", tmp_path / "out.csv", (6, 12))
    out = pd.read_csv(tmp_path / "out.csv")
    track0, track1 = out[out["face_id"] == 0], out[out["face_id"] == 1]
    np.testing.assert_allclose(
        track0[["AU06_r_corr", "AU12_r_corr"]], np.clip(long - np.percentile(long, 5, axis=0), 0, 5), atol=1e-4
    )
    assert track1[["AU06_r_corr", "AU12_r_corr"]].isna().all().all()  # not made zero: left empty
    assert estimates["0"]["corrected"] and estimates["0"]["frames"] == 40
    assert not estimates["1"]["corrected"] and "AU06" not in estimates["1"]
    assert "3 frames, fewer than the 30" in estimates["1"]["reason"]
    # without the minimum, the short track's expression is taken for its neutral: its lowest
    # frame corrected to 0 (asked for on purpose: the minimum, 1 frame enough)
    correct_csv(tmp_path / "in.csv", tmp_path / "all.csv", (6, 12), percentile=0.0, least_frames=1)
    forced = pd.read_csv(tmp_path / "all.csv")
    assert forced.loc[forced["face_id"] == 1, "AU12_r_corr"].iloc[0] == 0.0


def _participant_study(results: Path) -> dict[str, np.ndarray]:
    """P1 rests at AU12 1.0 in v1 and smiles through v2 (never resting: per-video baselines
    would take the smile for the neutral); P2 rests at 0.2 in v3 (two tracks); P3's v4 is 10
    frames long (too few for a neutral). Returns each video's AU12 values."""
    rng = np.random.default_rng(5)
    v1 = np.stack([np.full(60, 0.4), 1.0 + np.clip(rng.normal(0, 1, 60), 0, None)], axis=1)
    v2 = np.stack([np.full(50, 0.4), 3.0 + rng.uniform(0, 0.5, 50)], axis=1)
    v3 = np.stack([np.full(80, 0.1), 0.2 + np.clip(rng.normal(0, 1, 80), 0, None)], axis=1)
    v4 = np.stack([np.full(10, 0.0), np.full(10, 2.0)], axis=1)
    (results / "s1").mkdir(parents=True)
    (results / "s2").mkdir()
    pd.DataFrame(_face_rows(v1)).to_csv(results / "s1" / "v1.csv", index=False)
    pd.DataFrame(_face_rows(v2)).to_csv(results / "s1" / "v2.csv", index=False)
    pd.DataFrame(_face_rows(v3[:40]) + _face_rows(v3[40:], face_id=1, start=41)).to_csv(
        results / "s2" / "v3.csv", index=False
    )
    pd.DataFrame(_face_rows(v4)).to_csv(results / "s2" / "v4.csv", index=False)
    return {"v1": v1[:, 1], "v2": v2[:, 1], "v3": v3[:, 1], "v4": v4[:, 1]}


def test_one_neutral_per_participant_across_their_videos(tmp_path, capsys):
    results = tmp_path / "results"
    au12 = _participant_study(results)
    sheet = tmp_path / "sheet.csv"
    pd.DataFrame(
        {
            "video": ["v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4"],
            "participant": ["P1", "P1", "P2", "P3"],
            "session": [1, 2, 1, 1],
        }
    ).to_csv(sheet, index=False)
    table = summarize(results, by=sheet, key="video", baseline_by="participant").set_index(["name", "face_id"])
    p1 = np.percentile(np.concatenate([au12["v1"], au12["v2"]]), 5)  # pooled over both of P1's videos
    p2 = np.percentile(au12["v3"], 5)  # over both of v3's tracks
    # the same neutral for every video of a participant, and every track
    assert (
        table.loc[("v1", 0), "AU12_r_neutral"] == table.loc[("v2", 0), "AU12_r_neutral"] == pytest.approx(p1, abs=1e-4)
    )
    assert (
        table.loc[("v3", 0), "AU12_r_neutral"] == table.loc[("v3", 1), "AU12_r_neutral"] == pytest.approx(p2, abs=1e-4)
    )
    assert p1 == pytest.approx(1.0, abs=0.05) and p2 == pytest.approx(0.2, abs=0.05)
    assert table.loc[("v1", 0), "baseline"] == "P1" and table.loc[("v1", 0), "baseline_videos"] == 2
    assert table.loc[("v2", 0), "baseline_frames"] == 110
    # v2's smile survives: corrected against P1's rest, not against itself
    assert table.loc[("v2", 0), "AU12_r_corr_mean"] == pytest.approx(au12["v2"].mean() - p1, abs=1e-3)
    per_video = np.clip(au12["v2"] - np.percentile(au12["v2"], 5), 0, 5).mean()
    assert per_video < 0.3 < 2.0 < table.loc[("v2", 0), "AU12_r_corr_mean"]
    # too few frames: no neutral, no corrected statistics, and it says so
    assert np.isnan(table.loc[("v4", 0), "AU12_r_neutral"]) and np.isnan(table.loc[("v4", 0), "AU12_r_corr_mean"])
    assert table.loc[("v4", 0), "baseline_frames"] == 10
    # the CLI gives the same table
    out = tmp_path / "summary.csv"
    assert main(["summarize", str(results), "--out", str(out), "--by", str(sheet), "--baseline-by", "participant"]) == 0
    cli = pd.read_csv(out).set_index(["name", "face_id"])
    assert cli.loc[("v2", 0), "AU12_r_neutral"] == pytest.approx(p1, abs=1e-4)
    assert main(["summarize", str(results), "--out", str(out), "--baseline-by", "participant"]) == 2  # no sheet
    assert "participant sheet" in capsys.readouterr().err
    assert main(["summarize", str(results), "--out", str(out), "--by", str(sheet), "--baseline-by", "who"]) == 2
    assert "no column 'who'" in capsys.readouterr().err


# -- summaries ---------------------------------------------------------------------------


def _hand_made(out: Path) -> None:
    """v1: face 0 in 12 frames, AU06 = 0 0 1.2 1.5 0 0 2 2 2 0 0.5 1.0 (3 episodes of 2, 3 and 1
    frames); face 1 in frames 1-6 but 4, AU06 1 throughout (2 episodes: the gap splits them).
    v2 (in a sub-folder): no face at all."""
    au06 = [0, 0, 1.2, 1.5, 0, 0, 2, 2, 2, 0, 0.5, 1.0]
    rows = [
        {"frame": f, "face_id": 0, "timestamp": (f - 1) / 10, "success": 1, "AU06_r": v, "AU12_r": 0.5}
        for f, v in enumerate(au06, start=1)
    ]
    rows += [
        {"frame": f, "face_id": 1, "timestamp": (f - 1) / 10, "success": 1, "AU06_r": 1.0, "AU12_r": 3.0}
        for f in (1, 2, 3, 5, 6)
    ]
    pd.DataFrame(rows).sort_values(["frame", "face_id"]).to_csv(out / "v1.csv", index=False)
    (out / "sub").mkdir()
    pd.DataFrame(
        {
            "frame": [1, 2],
            "face_id": [-1, -1],
            "timestamp": [0.0, 0.1],
            "success": [0, 0],
            "AU06_r": [np.nan] * 2,
            "AU12_r": [np.nan] * 2,
        }
    ).to_csv(out / "sub" / "v2.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(out / "summary.csv", index=False)  # not a result CSV: skipped


def test_summary_counts_episodes_on_hand_made_curves(tmp_path):
    _hand_made(tmp_path)
    table = summarize(tmp_path)
    assert table[["video", "name", "face_id"]].values.tolist() == [
        ["sub/v2", "v2", -1],
        ["v1", "v1", 0],
        ["v1", "v1", 1],
    ]
    none, zero, one = (table.iloc[i] for i in range(3))
    assert (zero["frames"], zero["frames_with_face"], one["frames_with_face"]) == (12, 12, 5)
    assert zero["AU06_r_episodes"] == 3 and zero["AU06_r_episode_s"] == pytest.approx(0.2)  # (2 + 3 + 1) / 3 frames
    assert zero["AU06_r_active"] == pytest.approx(6 / 12) and zero["AU06_r_max"] == 2.0
    au06 = np.array([0, 0, 1.2, 1.5, 0, 0, 2, 2, 2, 0, 0.5, 1.0])
    assert zero["AU06_r_mean"] == pytest.approx(au06.mean()) and zero["AU06_r_std"] == pytest.approx(au06.std())
    assert zero["AU06_r_median"] == pytest.approx(np.median(au06))
    assert one["AU06_r_episodes"] == 2 and one["AU06_r_episode_s"] == pytest.approx(0.25)
    assert one["AU12_r_active"] == 1.0 and zero["AU12_r_episodes"] == 0 and np.isnan(zero["AU12_r_episode_s"])
    assert none["frames"] == 2 and none["frames_with_face"] == 0 and np.isnan(none["AU06_r_mean"])


def test_summarize_cli_joins_a_sheet_by_video_name(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    _hand_made(results)
    sheet = tmp_path / "participants.csv"
    pd.DataFrame(
        {
            "recording": ["v1.mp4", "v2", "v9"],
            "participant": ["P1", "P2", "P9"],
            "condition": ["stress", "rest", "rest"],
        }
    ).to_csv(sheet, index=False)
    out = tmp_path / "summary.csv"
    assert main(["summarize", str(results), "--out", str(out), "--by", str(sheet), "--key", "recording", "--page"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["video", "name", "participant", "condition", "face_id"]
    assert table.set_index(["video", "face_id"])["participant"].to_dict() == {
        ("sub/v2", -1): "P2",
        ("v1", 0): "P1",
        ("v1", 1): "P1",
    }
    assert (results / "index.html").is_file()
    assert main(["summarize", str(results), "--out", str(out), "--by", str(sheet), "--key", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
