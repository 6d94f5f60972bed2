"""Studies under faults: a worker killed as the out-of-memory killer does, SIGTERM from a job
scheduler, videos replaced and models changed between runs, --force, reports of interrupted
videos, file names that a spreadsheet would run as formulas."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from aumaps.cli import main
from aumaps.predict import AUEstimator
from aumaps.study import StudyOptions, run_study, write_study_page
from aumaps.study import fingerprint as fingerprints
from aumaps.study import run as study_run

SIZE = 160


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The tests here run the tiny network on one thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def estimator(tiny_weights) -> AUEstimator:
    return AUEstimator(weights=tiny_weights, batch_size=8, backend="torch")


def write_video(path: Path, frames: int, astronaut: np.ndarray, shift: int = 0) -> Path:
    """A 160×160 MJPG clip at 10 fps of the astronaut's face, swaying a little (``shift``
    moves it: another recording)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (SIZE, SIZE))
    for i in range(frames):
        matrix = cv2.getRotationMatrix2D((215.0, 115.0), 2.0 * np.sin(i / 3), 0.9)
        matrix[:, 2] += [SIZE / 2 - 215.0 + i % 4 + shift, SIZE / 2.2 - 115.0]
        image = cv2.warpAffine(astronaut, matrix, (SIZE, SIZE), borderValue=(90, 90, 90))
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _stamps(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*.csv")}


def _command(study: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aumaps",
        "predict",
        str(study),
        "--out-dir",
        str(out),
        "--weights",
        str(weights),
        "--backend",
        "torch",
        "--quiet",
        *extra,
    ]


def _wait_for(condition, process: subprocess.Popen, seconds: float = 180):
    """``condition()``'s first true value, polled while ``process`` runs (None: it never came)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    return None


def _half_written(out: Path) -> list[Path]:
    """Temporary CSVs with a few rows already: videos being analysed."""
    return [p for p in out.rglob(".*.csv.*.part") if p.is_file() and len(p.read_bytes().splitlines()) > 3]


# -- a worker killed, a run terminated ---------------------------------------------------


def test_a_killed_worker_fails_only_its_video_and_a_rerun_completes(tmp_path, astronaut, tiny_weights):
    study = tmp_path / "study"
    for k in range(6):
        write_video(study / f"p{k // 3}" / f"v{k}.avi", 30, astronaut)
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(study, out, tiny_weights, "--workers", "2"),
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the temporary CSV's name carries the pid of the worker writing it: kill that one, as the OOM killer would
        part = _wait_for(lambda: next(iter(_half_written(out)), None), process)
        assert part is not None, "no video was caught half-way"
        pid = int(part.name.split(".part")[0].rsplit(".", 1)[1].split("-")[0])
        assert pid != process.pid
        lost = part.relative_to(out).parent / (part.name[1:].split(".csv.")[0] + ".csv")
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stderr[-3000:]
    log = json.loads((out / "run.json").read_text())
    assert log["status"] == "failed" and log["finished"]  # a final state, with the counts
    assert log["counts"] == {"done": 5, "failed": 1}
    entry = log["items"][lost.as_posix()]
    assert entry["status"] == "failed" and "SIGKILL" in entry["error"] and "worker" in entry["error"]
    assert f"{entry['source']}: the worker process analysing it died: killed by SIGKILL" in stderr  # named
    csvs = _stamps(out)
    assert len(csvs) == 5 and lost.as_posix() not in csvs  # the other five were analysed, the pool rebuilt
    for name in csvs:
        assert pd.read_csv(out / name)["frame"].tolist() == list(range(1, 31))
    assert not list(out.rglob(".*.part"))

    rerun = subprocess.run(
        _command(study, out, tiny_weights, "--workers", "2"),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(_stamps(out)) == 6 and {k: v for k, v in _stamps(out).items() if k in csvs} == csvs
    log = json.loads((out / "run.json").read_text())
    assert log["status"] == "complete" and log["counts"] == {"complete": 5, "done": 1}


def test_sigterm_ends_the_study_interrupted_with_nothing_half_done(tmp_path, astronaut, tiny_weights):
    study = tmp_path / "study"
    for k in range(3):
        write_video(study / f"v{k}.avi", 40, astronaut)
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(study, out, tiny_weights, "--workers", "2"),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for(lambda: _half_written(out), process), "no video was caught half-way"
    process.send_signal(signal.SIGTERM)  # a job scheduler's time limit
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    log = json.loads((out / "run.json").read_text())
    assert log["status"] == "interrupted" and log["finished"] and sum(log["counts"].values()) == 3
    assert "interrupted" in log["counts"]
    assert not list(out.rglob(".*.part"))  # the videos being analysed left nothing
    for name, entry in log["items"].items():
        assert (entry["status"] == "done") == (out / name).is_file()


def test_the_parent_frees_its_model_before_the_workers_start(tmp_path, astronaut, tiny_weights, monkeypatch):
    for k in range(2):
        write_video(tmp_path / "study" / f"v{k}.avi", 2, astronaut)
    refs = []
    build = study_run.build_estimator

    def building(options, device):
        est = build(options, device)
        refs.append(weakref.ref(est.checkpoint.model))
        return est

    seen = []

    def workers(todo, *args, **kwargs):
        seen.append([ref() for ref in refs])  # what the parent still holds when the workers would start
        return False

    monkeypatch.setattr(study_run, "build_estimator", building)
    monkeypatch.setattr(study_run, "analyse_in_workers", workers)
    run_study(
        tmp_path / "study",
        tmp_path / "out",
        StudyOptions(weights=str(tiny_weights), backend="torch", workers=2, progress=False),
    )
    assert len(refs) == 1 and seen == [[None]]


# -- what a resumed run redoes -----------------------------------------------------------


def test_a_replaced_video_is_analysed_again_a_touched_one_is_not(tmp_path, astronaut, estimator):
    study = tmp_path / "study"
    for k in range(3):
        write_video(study / f"v{k}.avi", 6, astronaut)
    out = tmp_path / "out"
    options = StudyOptions(report=True, progress=False)
    assert run_study(study, out, options, estimator=estimator).exit_status == 0
    before = _stamps(out)
    assert (out / "v0_report" / "index.html").is_file()

    write_video(study / "v0.avi", 9, astronaut, shift=5)  # re-recorded: another video under the same name
    copy = tmp_path / "v1.avi"
    shutil.copy(study / "v1.avi", copy)
    os.replace(copy, study / "v1.avi")  # copied back: new times, same contents
    run = run_study(study, out, StudyOptions(progress=False), estimator=estimator)
    assert run.exit_status == 0 and run.redone == {"v0.csv": "the input changed since it was analysed"}
    assert {k: e["status"] for k, e in run.entries.items()} == {
        "v0.csv": "done",
        "v1.csv": "complete",
        "v2.csv": "complete",
    }
    assert pd.read_csv(out / "v0.csv")["frame"].tolist() == list(range(1, 10))  # the new video's frames
    unchanged = {k: v for k, v in before.items() if k != "v0.csv"}
    assert {k: v for k, v in _stamps(out).items() if k != "v0.csv"} == unchanged
    # the old report described the old video: gone (this run wrote none); the others keep theirs
    assert not (out / "v0_report").exists() and (out / "v1_report" / "index.html").is_file()
    page = write_study_page(out).read_text()
    assert 'href="v0_report/index.html"' not in page and 'href="v1_report/index.html"' in page

    # a third run finds everything complete
    again = run_study(study, out, StudyOptions(progress=False), estimator=estimator)
    assert again.redone == {} and set(again.counts) == {"complete"}


def test_a_changed_model_or_aumaps_version_analyses_again_and_force_redoes_everything(
    tmp_path, astronaut, tiny_weights, monkeypatch
):
    import torch

    from aumaps.weights import load_checkpoint, save_checkpoint

    study = tmp_path / "study"
    for k in range(2):
        write_video(study / f"v{k}.avi", 4, astronaut)
    weights = tmp_path / "model.pt"
    shutil.copy(tiny_weights, weights)
    out = tmp_path / "out"
    options = StudyOptions(weights=str(weights), backend="torch", progress=False)
    assert run_study(study, out, options).exit_status == 0
    assert set(run_study(study, out, options).counts) == {"complete"}

    ckpt = load_checkpoint(weights)  # retrained in place: the same path, other weights
    with torch.no_grad():
        ckpt.model.l0.bias.add_(0.5)
    save_checkpoint(weights, ckpt.model, aus=ckpt.aus, codec=ckpt.codec.to_dict(), card=ckpt.card)
    run = run_study(study, out, options)
    assert run.redone == {f"v{k}.csv": "the model changed (another weights file SHA-256)" for k in range(2)}
    assert set(run.counts) == {"done"}
    log = json.loads((out / "run.json").read_text())
    assert log["made_with"]["weights_sha256"] == fingerprints.weights_digest(weights)[0]
    assert log["items"]["v0.csv"]["made_with"]["weights_sha256"] == log["made_with"]["weights_sha256"]

    monkeypatch.setattr(fingerprints, "__version__", "99.0")  # aumaps upgraded
    run = run_study(study, out, options)
    assert set(run.redone.values()) == {f"made by aumaps {log['made_with']['aumaps']}, this is aumaps 99.0"}

    stamps = _stamps(out)
    forced = StudyOptions(weights=str(weights), backend="torch", progress=False, force=True, smooth="ema")
    run = run_study(study, out, forced)  # --force: everything again, other options allowed
    assert set(run.redone.values()) == {"--force"} and set(run.counts) == {"done"}
    assert all(_stamps(out)[k] != v for k, v in stamps.items())


def test_force_on_the_command_line(tmp_path, astronaut, tiny_weights, capsys):
    write_video(tmp_path / "study" / "v0.avi", 3, astronaut)
    args = [
        "predict",
        str(tmp_path / "study"),
        "--out-dir",
        str(tmp_path / "out"),
        "--weights",
        str(tiny_weights),
        "--backend",
        "torch",
        "--quiet",
    ]
    assert main(args) == 0
    stamp = (tmp_path / "out" / "v0.csv").stat().st_mtime_ns
    assert main(args) == 0 and (tmp_path / "out" / "v0.csv").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main([*args, "--force"]) == 0 and (tmp_path / "out" / "v0.csv").stat().st_mtime_ns != stamp
    assert "analysed again: 1 item(s) whose CSV existed: --force (1)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "study" / "v0.avi"), "--force", "--weights", str(tiny_weights)]) == 2


def test_a_resumed_run_that_finds_everything_complete_imports_no_pytorch(tmp_path, astronaut, tiny_weights):
    write_video(tmp_path / "study" / "v0.avi", 3, astronaut)
    args = [
        "predict",
        str(tmp_path / "study"),
        "--out-dir",
        str(tmp_path / "out"),
        "--weights",
        str(tiny_weights),
        "--backend",
        "torch",
        "--quiet",
    ]
    assert main(args) == 0
    script = (
        "import sys, time; start = time.perf_counter(); from aumaps.cli import main; "
        f"rc = main({args!r}); print(rc, 'torch' in sys.modules, time.perf_counter() - start)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    rc, torch_imported, _ = done.stdout.split()[-3:]
    assert (rc, torch_imported) == ("0", "False"), done.stderr[-2000:]
    log = json.loads((tmp_path / "out" / "run.json").read_text())
    assert log["counts"] == {"complete": 1} and log["status"] == "complete"


# -- reports of interrupted videos -------------------------------------------------------


class _InterruptAfter:
    """An engine that presses Ctrl-C (SIGINT to this process) at its ``calls``-th call."""

    def __init__(self, engine, calls: int) -> None:
        self.engine, self.calls = engine, calls

    def __call__(self, crops):
        self.calls -= 1
        if self.calls == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return self.engine(crops)

    def describe(self) -> str:
        return self.engine.describe()


def test_an_interrupted_video_leaves_no_report_for_the_study_page_to_link(tmp_path, astronaut, estimator):
    import copy

    study = tmp_path / "study"
    for k in range(2):
        write_video(study / f"v{k}.avi", 24, astronaut)
    out = tmp_path / "out"
    stopping = copy.copy(estimator)
    stopping.batch_size = 1
    stopping.engine = _InterruptAfter(estimator.engine, 30)  # in the second video
    run = run_study(study, out, StudyOptions(report=True, progress=False), estimator=stopping)
    assert run.interrupted and run.exit_status == 130
    assert run.entries["v0.csv"]["status"] == "done" and run.entries["v1.csv"]["status"] == "interrupted"
    assert (out / "v0_report" / "index.html").is_file()
    assert not (out / "v1_report").exists() and not list(out.glob(".*"))  # nor half a report, nor a temporary
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"

    # finished later without reports: the study page links no report of the interrupted run's
    assert run_study(study, out, StudyOptions(progress=False), estimator=estimator).exit_status == 0
    page = write_study_page(out).read_text()
    assert 'href="v0_report/index.html"' in page and "v1_report" not in page


def test_a_video_that_fails_half_way_leaves_no_overlay(tmp_path, astronaut, estimator):
    import copy

    from aumaps.video import VideoFileSource, process_video

    class Failing:
        def __init__(self, engine):
            self.engine, self.calls = engine, 0

        def __call__(self, crops):
            self.calls += 1
            if self.calls > 5:
                raise RuntimeError("the engine broke")
            return self.engine(crops)

    video = write_video(tmp_path / "v.avi", 20, astronaut)
    broken = copy.copy(estimator)
    broken.batch_size = 1
    broken.engine = Failing(estimator.engine)
    with pytest.raises(RuntimeError, match="broke"):
        process_video(
            broken, VideoFileSource(video), tmp_path / "v.csv", overlay=tmp_path / "overlay.avi", progress=False
        )
    assert not (tmp_path / "overlay.avi").exists() and not list(tmp_path.glob(".overlay*"))
    summary = process_video(
        estimator,
        VideoFileSource(video),
        tmp_path / "v.csv",
        overlay=tmp_path / "overlay.avi",
        plot=tmp_path / "plot.png",
        progress=False,
    )
    capture = cv2.VideoCapture(str(summary.outputs["overlay"]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    capture.release()
    assert cv2.imread(str(tmp_path / "plot.png")) is not None and not list(tmp_path.glob(".*"))


# -- file names a spreadsheet would run --------------------------------------------------


def test_study_csvs_and_summaries_neutralise_formula_names(tmp_path, astronaut, estimator, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["=HYPERLINK(1).png", "-rf.png", "@x.png", "plain.png"]
    for name in names:
        cv2.imwrite(str(photos / name), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    monkeypatch.chdir(photos)  # the study given as '.': its images.csv names the files as they are
    run = run_study(".", tmp_path / "photo-results", StudyOptions(progress=False), estimator=estimator)
    assert run.exit_status == 0
    images = pd.read_csv(tmp_path / "photo-results" / "images.csv")
    assert sorted(images["file"]) == sorted(["'=HYPERLINK(1).png", "'-rf.png", "'@x.png", "plain.png"])
    assert images["x_0"].dtype == float and images["success"].tolist() == [1, 1, 1, 1]

    study = tmp_path / "study"
    write_video(study / "=cmd.avi", 3, astronaut)
    out = tmp_path / "out"
    assert run_study(study, out, StudyOptions(progress=False), estimator=estimator).exit_status == 0
    sheet = tmp_path / "sheet.csv"
    pd.DataFrame({"video": ["=cmd"], "participant": ["=1+1"], "offset": ["-3"], "group": ["@g"]}).to_csv(
        sheet, index=False
    )
    assert main(["summarize", str(out), "--out", str(tmp_path / "summary.csv"), "--by", str(sheet)]) == 0
    table = pd.read_csv(tmp_path / "summary.csv")
    row = table.iloc[0]
    assert (row["video"], row["name"], row["participant"], row["group"]) == ("'=cmd", "'=cmd", "'=1+1", "'@g")
    assert row["offset"] == -3 and table["offset"].dtype.kind == "i"  # a number stays a number
    assert table["AU06_r_mean"].dtype == float and (table["face_id"] >= 0).all()
    # the summary written, reused as the next sheet (as people add columns to it): read back as it was
    pd.read_csv(tmp_path / "summary.csv", dtype=str)[["video", "participant"]].to_csv(
        tmp_path / "again.csv", index=False
    )
    assert (
        main(["summarize", str(out), "--out", str(tmp_path / "again-summary.csv"), "--by", str(tmp_path / "again.csv")])
        == 0
    )
    again = pd.read_csv(tmp_path / "again-summary.csv").iloc[0]
    assert (again["video"], again["participant"]) == ("'=cmd", "'=1+1")  # joined on '=cmd', one quote each
