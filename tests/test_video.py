"""Videos end to end: a clip written here from a real face (moving, vanishing, leaving and
coming back) through tracking, the batched network, CSV, overlay, plot and report."""

from __future__ import annotations

import html.parser
import importlib.util
import logging
import os
import re
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from aumaps import align
from aumaps.cli import main
from aumaps.codec import AUHeatmapCodec
from aumaps.model import AUHourglass
from aumaps.predict import AUEstimator
from aumaps.report import au_statistics, load_series
from aumaps.results import FaceResult, FrameResult, csv_columns
from aumaps.tracking import FaceTracker
from aumaps.video import (
    Frame,
    FrameSource,
    ImageSequenceSource,
    IntensitySmoother,
    VideoAnalyser,
    VideoFileSource,
    VideoOpenError,
    WebcamSource,
    process_video,
)

AUS = (6, 10, 12, 14, 17)
AU_COLUMNS = [f"AU{a:02d}_r" for a in AUS]
FPS = 10.0
SIZE = (400, 300)  # width, height
#: Per frame: the face's horizontal offset in pixels, or None for a frame without a face.
#: Frames 10-12 show no face; in 17-20 the face slides out to the right and is gone in
#: 19-20; it is back from 21.
SCRIPT = [0, 2, 4, 6, 8, 6, 4, 2, 0, -2, None, None, None, 0, 2, 4, 6, 120, 300, 420, 420, 0, -2, -4, -2, 0]
NO_FACE = [i for i, dx in enumerate(SCRIPT) if dx is None or dx >= 300]


def _frame(astronaut: np.ndarray, dx: int | None, index: int) -> np.ndarray:
    """A 400×300 RGB frame: the astronaut's face (about 100 px) shifted by ``dx`` and turned
    a little, or grey noise without a face."""
    if dx is None:
        return np.random.default_rng(index).integers(60, 120, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    matrix = cv2.getRotationMatrix2D((215.0, 115.0), 2.0 * np.sin(index / 3), 1.0)
    matrix[:, 2] += [SIZE[0] / 2 - 215.0 + dx, SIZE[1] / 2.4 - 115.0 + (index % 3)]
    return cv2.warpAffine(astronaut, matrix, SIZE, borderValue=(90, 90, 90))


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _decoded(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The tests here run the tiny network on one thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def estimator(tiny_weights) -> AUEstimator:
    return AUEstimator(weights=tiny_weights, batch_size=8, backend="torch")


@pytest.fixture(scope="module")
def clip_frames(astronaut) -> list[np.ndarray]:
    return [_frame(astronaut, dx, i) for i, dx in enumerate(SCRIPT)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clip_frames) -> Path:
    """The scripted clip as an MJPG AVI."""
    return _write_video(tmp_path_factory.mktemp("clip") / "clip.avi", clip_frames, "MJPG")


@pytest.fixture(scope="module")
def processed(estimator, clip, tmp_path_factory):
    """The clip through process_video with every output; (summary, folder)."""
    out = tmp_path_factory.mktemp("out")
    summary = process_video(
        estimator,
        VideoFileSource(clip),
        out / "clip.csv",
        overlay=out / "overlay.mp4",
        plot=out / "plot.png",
        report=out / "report",
        progress=False,
    )
    return summary, out


def test_python_api_gives_the_csv_as_a_data_frame(estimator, processed, clip):
    _, out = processed
    table = estimator.predict_video(clip)
    pd.testing.assert_frame_equal(table, pd.read_csv(out / "clip.csv"), check_dtype=False)
    live = list(estimator.stream(str(clip)))  # the iterator form, as for a webcam
    assert [r.index for r in live] == list(range(len(SCRIPT)))
    assert all(r.image is not None for r in live)
    first = next(r for r in live if r.faces)
    np.testing.assert_allclose(
        first.faces[0].intensities, table.loc[table["frame"] == first.index + 1, AU_COLUMNS].to_numpy()[0], atol=1e-4
    )


def test_csv_has_one_row_per_frame(processed):
    summary, out = processed
    df = pd.read_csv(out / "clip.csv")
    assert list(df.columns) == csv_columns(AUS)
    assert df["frame"].tolist() == list(range(1, len(SCRIPT) + 1))  # one face: one row per frame
    np.testing.assert_allclose(df["timestamp"], (df["frame"] - 1) / FPS, atol=1e-3)
    gone = df["frame"].isin([i + 1 for i in NO_FACE])
    assert (df.loc[gone, "success"] == 0).all() and (df.loc[gone, "face_id"] == -1).all()
    assert df.loc[gone, AU_COLUMNS].isna().all().all()  # never made-up numbers
    present = df["frame"].isin([i + 1 for i, dx in enumerate(SCRIPT) if dx is not None and abs(dx) <= 8])
    assert (df.loc[present, "success"] == 1).all()
    au = df.loc[df["success"] == 1, AU_COLUMNS]
    assert au.notna().all().all() and au.ge(0).all().all() and au.le(5).all().all()
    # a track keeps its id; a face that vanished comes back as a new track
    ids = df.loc[present, "face_id"]
    assert ids[df["frame"] <= 10].nunique() == 1 and ids[df["frame"] >= 22].nunique() == 1
    assert ids[df["frame"] <= 10].iloc[0] != ids[df["frame"] >= 22].iloc[0]
    first = df[df["success"] == 1].iloc[0]
    assert first["box_x1"] - first["box_x0"] > 60 and first["y_36"] < first["y_57"]
    assert summary.frames == len(SCRIPT) and summary.unreadable == 0 and not summary.problems
    assert summary.detections < len(SCRIPT)  # tracking saved detections
    assert set(summary.times) >= {"decode", "detect", "landmarks", "register", "network", "write"}


def test_fp32_pipeline_equals_per_image_prediction(estimator, clip):
    results = list(VideoAnalyser(estimator).run(VideoFileSource(clip).frames()))
    frames = _decoded(clip)
    assert len(results) == len(frames) == len(SCRIPT)
    compared = 0
    for result, frame in zip(results, frames, strict=True):
        np.testing.assert_array_equal(result.image, frame)
        for face in result.faces:
            (alone,) = estimator.predict(frame, landmarks=face.landmarks)
            np.testing.assert_array_equal(face.heatmaps, alone.heatmaps)
            np.testing.assert_array_equal(face.intensities, alone.intensities)
            np.testing.assert_array_equal(face.matrix, alone.matrix)
            compared += 1
    assert compared >= len(SCRIPT) - len(NO_FACE)


def test_tracking_gives_the_detectors_landmarks(estimator, clip):
    tracker = FaceTracker(estimator.landmarker, redetect_every=1000)
    errors = []
    for frame in _decoded(clip):
        tracked = tracker.update(frame)
        detected = estimator.landmarker(frame)
        assert bool(tracked) == bool(detected)
        if tracked and not tracked[0].detected:
            errors.append(np.abs(tracked[0].landmarks - detected[0].landmarks))
    errors = np.array(errors)
    assert len(errors) >= 12  # most frames were tracked, not detected
    assert errors.mean() < 1.0 and errors.max() <= 4.0  # pixels; the face is about 100 px wide


def test_tracker_keeps_two_faces_apart(estimator, astronaut):
    tracker = FaceTracker(estimator.landmarker, redetect_every=3)
    seen = []
    for i in range(7):
        frame = _frame(astronaut, 2 * (i % 3), i)
        faces = tracker.update(np.ascontiguousarray(np.concatenate([frame, frame[:, ::-1]], axis=1)))
        seen.append([(f.face_id, f.box[0] < SIZE[0]) for f in faces])
    assert all(len(s) == 2 for s in seen)
    assert all(s == seen[0] for s in seen)  # same ids, same sides, through re-detections


def test_fast_path_within_0_05_of_fp32(astronaut, clip_frames):
    """The paper-sized network: bfloat16 error grows with depth and width."""
    torch.manual_seed(1)
    model = AUHourglass().eval()
    with torch.no_grad():
        model.l0.bias.fill_(2.5)
    reference = AUEstimator(_checkpoint(model), backend="torch")
    fast = AUEstimator(_checkpoint(model), backend="fast")
    (face,) = reference.predict(astronaut)
    crops = []
    for frame in clip_frames[:4]:
        (f,) = reference.landmarker(frame)
        crops.append(align.warp_to_crop(frame, align.registration_matrix(f.landmarks)))
    crops = np.stack(crops + [face.crop])
    want, got = reference.heatmaps(crops), fast.heatmaps(crops)
    assert np.abs(got - want).max() <= 0.1
    intensities = [est.codec.decode(maps).intensities for est, maps in ((reference, want), (fast, got))]
    assert np.abs(intensities[0] - intensities[1]).max() <= 0.05


def _checkpoint(model):
    from aumaps.weights import Checkpoint

    return Checkpoint(model, AUS, AUHeatmapCodec(AUS).to_dict(), {"name": "paper-sized random"}, Path("x"), "aumaps")


def test_fast_pipeline_csv_within_0_05(tiny_weights, clip, processed, tmp_path):
    fast = AUEstimator(weights=tiny_weights, batch_size=8, backend="fast")
    process_video(fast, VideoFileSource(clip), tmp_path / "fast.csv", progress=False)
    a, b = pd.read_csv(processed[1] / "clip.csv"), pd.read_csv(tmp_path / "fast.csv")
    assert a["success"].tolist() == b["success"].tolist()
    assert np.nanmax(np.abs(a[AU_COLUMNS].to_numpy() - b[AU_COLUMNS].to_numpy())) <= 0.05


def test_overlay_plot_and_report(processed):
    summary, out = processed
    capture = cv2.VideoCapture(str(out / "overlay.mp4"))
    frames = []
    while (item := capture.read())[0]:
        frames.append(item[1])
    assert len(frames) == len(SCRIPT)
    assert frames[0].shape[0] == SIZE[1] and frames[0].shape[1] > SIZE[0]  # frame + intensity bars
    assert frames[0].std() > 20
    assert cv2.imread(str(out / "plot.png")).shape[0] > 400
    page = (out / "report" / "index.html").read_text()
    assert summary.outputs["report"] == out / "report" / "index.html"
    assert '<table id="au-statistics">' in page and page.count("<tr>") == 1 + len(AUS) * summary.face_ids
    assert page.count("data:image/png;base64,") == 1 + len(AUS)  # the plot and one peak per AU
    assert 'src="http' not in page and "src='http" not in page  # self-contained
    _check_html(page)


def _check_html(page: str) -> None:
    """Every opened element is closed, in order (void elements aside)."""

    class Checker(html.parser.HTMLParser):
        void = frozenset({"meta", "img", "br", "link", "hr", "input"})

        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack.pop() == tag, f"misplaced </{tag}>"

    checker = Checker()
    checker.feed(page)
    assert checker.stack == []


def test_statistics(processed):
    summary, out = processed
    table = load_series(out / "clip.csv", AUS)
    stats = au_statistics(table, AUS)
    assert len(stats) == len(AUS) * summary.face_ids
    first = stats.iloc[0]
    values = table.loc[(table["success"] == 1) & (table["face_id"] == first["face_id"]), "AU06_r"]
    assert first["frames"] == len(values)
    assert first["mean"] == pytest.approx(values.mean()) and first["max"] == pytest.approx(values.max())
    assert first["active_pct"] == pytest.approx(100.0 * (values >= 1).mean())


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(processed, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "/usr/bin/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,2000",
            f"--screenshot={shot}",
            (processed[1] / "report" / "index.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    picture = cv2.imread(str(shot))
    assert picture.shape[:2] == (2000, 1200)
    # not blank: text, the plot and the thumbnails make a varied page
    assert picture.std() > 30 and (picture < 100).mean() > 0.01


def test_unopenable_video_is_a_clear_error(tmp_path, tiny_weights, caplog):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoOpenError, match=r"broken.mp4"):
        VideoFileSource(bad)
    with pytest.raises(VideoOpenError, match="webcam 99"):
        WebcamSource(99)
    with caplog.at_level(logging.ERROR):
        rc = main(
            [
                "predict",
                str(bad),
                str(tmp_path / "missing.avi"),
                "--weights",
                str(tiny_weights),
                "--out",
                str(tmp_path / "r.csv"),
                "--quiet",
            ]
        )
    assert rc == 1
    assert "broken.mp4" in caplog.text and "missing.avi" in caplog.text


def test_truncated_video_keeps_its_decodable_frames(tmp_path, estimator, clip_frames):
    whole = _write_video(tmp_path / "whole.avi", clip_frames, "MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    decodable = len(_decoded(cut))  # what FFmpeg (through OpenCV) decodes of it
    assert 5 < decodable < len(SCRIPT)
    summary = process_video(estimator, VideoFileSource(cut), tmp_path / "cut.csv", progress=False)
    df = pd.read_csv(tmp_path / "cut.csv")
    assert df["frame"].tolist() == list(range(1, decodable + 1))  # no made-up rows for the lost frames
    assert summary.unreadable == 0 and (df["success"].iloc[:5] == 1).all()
    (problem,) = summary.problems
    assert "cut.avi" in problem and "truncated" in problem
    assert f"after frame {decodable} (t = {(decodable - 1) / FPS:.3f} s)" in problem  # where it broke
    assert f"lasts {len(SCRIPT) / FPS:.3f} s" in problem


# -- time from the container: variable frame rates ------------------------------------------------

#: Per container: the codec the test writes it with (FFmpeg's, through PyAV).
VFR_CODECS = {"mkv": "libx264", "mp4": "mpeg4", "webm": "libvpx"}


def _write_vfr(path: Path, frames: list[np.ndarray], gaps_ms: np.ndarray, codec: str) -> np.ndarray:
    """Write ``frames`` with PyAV at irregular presentation times (``gaps_ms`` apart, a
    millisecond time base); returns the times in seconds."""
    import av

    times_ms = np.concatenate([[0], np.cumsum(gaps_ms)]).astype(int)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for image, ms in zip(frames, times_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(ms), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return times_ms / 1000.0


def _opencv_times(path: Path) -> list[float]:
    """The frames' times as OpenCV's reader gives them (CAP_PROP_POS_MSEC), in seconds."""
    capture = cv2.VideoCapture(str(path))
    times = []
    while capture.read()[0]:
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    capture.release()
    return times


@pytest.fixture(scope="module")
def vfr_gaps() -> np.ndarray:
    """40 frame intervals of 20-100 ms, as a phone records when the light or the load changes."""
    return np.random.default_rng(7).integers(20, 101, 40)


@pytest.mark.parametrize("suffix", sorted(VFR_CODECS))
def test_variable_frame_rate_timestamps_are_presentation_times(tmp_path, clip_frames, vfr_gaps, suffix):
    frames = [clip_frames[i % 10] for i in range(len(vfr_gaps) + 1)]
    path = tmp_path / f"vfr.{suffix}"
    truth = _write_vfr(path, frames, vfr_gaps, VFR_CODECS[suffix])
    source = VideoFileSource(path)
    decoded = list(source.frames())
    source.close()
    assert [f.index for f in decoded] == list(range(len(truth)))  # every frame once, nothing added
    np.testing.assert_allclose([f.timestamp for f in decoded], truth, atol=0.002)
    np.testing.assert_allclose(_opencv_times(path), truth, atol=0.002)  # an independent reader agrees
    assert not source.problems
    # the container's frame count is an estimate (Matroska and WebM: duration x nominal rate)
    assert source.frame_count is not None and source.frame_count > 0


def test_variable_frame_rate_clip_through_the_cli(tmp_path, tiny_weights, clip_frames, vfr_gaps, capsys):
    """The issue's figure: one row per decoded frame, timestamps within 2 ms, exit code 0."""
    frames = [clip_frames[i % 10] for i in range(len(vfr_gaps) + 1)]
    truth = _write_vfr(tmp_path / "phone.mkv", frames, vfr_gaps, VFR_CODECS["mkv"])
    out = tmp_path / "phone.csv"
    rc = main(["predict", str(tmp_path / "phone.mkv"), "--weights", str(tiny_weights), "--out", str(out), "--quiet"])
    assert rc == 0
    df = pd.read_csv(out)
    assert df["frame"].tolist() == list(range(1, len(truth) + 1)) and (df["success"] == 1).all()
    np.testing.assert_allclose(df["timestamp"], truth, atol=0.002)
    assert f"{len(truth)} frame(s)" in capsys.readouterr().out


def test_variable_frame_rate_through_the_python_api(estimator, tmp_path, clip_frames, vfr_gaps):
    frames = [clip_frames[i % 10] for i in range(len(vfr_gaps) + 1)]
    path = tmp_path / "browser.webm"
    truth = _write_vfr(path, frames, vfr_gaps, VFR_CODECS["webm"])
    table = estimator.predict_video(path)
    assert table["frame"].tolist() == list(range(1, len(truth) + 1))
    np.testing.assert_allclose(table["timestamp"], truth, atol=0.002)
    np.testing.assert_allclose([r.timestamp for r in estimator.stream(str(path))], truth, atol=0.002)


def test_truncated_variable_frame_rate_file_says_where_it_broke(tmp_path, estimator, clip_frames, vfr_gaps):
    frames = [clip_frames[i % 10] for i in range(len(vfr_gaps) + 1)]
    whole = tmp_path / "whole.mkv"
    truth = _write_vfr(whole, frames, vfr_gaps, VFR_CODECS["mkv"])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    summary = process_video(estimator, VideoFileSource(cut), tmp_path / "cut.csv", progress=False)
    df = pd.read_csv(tmp_path / "cut.csv")
    kept = len(df)
    assert 5 < kept < len(truth) and summary.frames == kept
    # the frames that decoded, each at its own time (with B-frames, a frame cut off may lie
    # between two that decoded)
    times = df["timestamp"].to_numpy()
    assert np.abs(times[:, None] - truth[None]).min(axis=1).max() <= 0.002 and (np.diff(times) > 0).all()
    (problem,) = summary.problems
    assert "cut.mkv" in problem and "truncated" in problem
    assert f"after frame {kept} (t = {times[-1]:.3f} s)" in problem and f"lasts {truth[-1]:.1f}" in problem


def test_damaged_packet_is_reported_and_decoding_goes_on(tmp_path, clip_frames):
    import av

    frames = [clip_frames[i % 10] for i in range(30)]
    whole = tmp_path / "whole.mp4"
    truth = _write_vfr(whole, frames, np.full(29, 100), "libx264")
    with av.open(str(whole)) as container:  # where the 15th packet's data lies
        packets = [p for p in container.demux(video=0) if p.size]
        damaged = packets[14]
        offset, at = damaged.pos, float(damaged.pts * damaged.time_base)
    data = bytearray(whole.read_bytes())
    data[offset : offset + 4] = b"\xff\xff\xff\xff"  # its first NAL unit's length: far past the packet
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    source = VideoFileSource(bad)
    decoded = list(source.frames())
    assert len(decoded) == len(truth) - 1  # that frame is lost; the frames after it decode
    np.testing.assert_allclose([f.timestamp for f in decoded], np.delete(truth, np.argmin(abs(truth - at))), atol=0.002)
    (problem,) = source.problems
    assert "bad.mp4" in problem and "could not be decoded" in problem and "decoding went on" in problem
    near = float(re.search(r"near t = ([0-9.]+) s", problem).group(1))  # decoding threads tell a frame or two late
    assert at <= near <= at + 0.25


def test_video_over_the_pixel_cap_is_refused_before_decoding(clip, tmp_path):
    with pytest.raises(VideoOpenError, match=r"clip.avi.*400x300 pixels"):
        VideoFileSource(clip, max_pixels=400 * 300 - 1)
    assert len(list(VideoFileSource(clip, max_pixels=400 * 300).frames())) == len(SCRIPT)


def test_not_a_video_stream(tmp_path):
    import av

    sound = tmp_path / "sound.mkv"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(VideoOpenError, match="no video stream"):
        VideoFileSource(sound)


def test_image_sequence_with_a_bad_frame(tmp_path, estimator, clip_frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(clip_frames[:12]):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / "f5.png").write_bytes(b"broken")
    source = ImageSequenceSource(folder, fps=5)
    summary = process_video(estimator, source, tmp_path / "seq.csv", progress=False)
    df = pd.read_csv(tmp_path / "seq.csv")
    assert df["frame"].tolist() == list(range(1, 13))  # f2 before f10: natural order
    assert df.loc[5, "success"] == 0 and summary.unreadable == 1
    assert (df.loc[[0, 1, 2, 3, 4, 6, 7], "success"] == 1).all()
    np.testing.assert_allclose(df["timestamp"], np.arange(12) / 5)


class _InterruptedSource(FrameSource):
    """Frames of a list; sends this process SIGINT (Ctrl-C) once ``after`` frames are out."""

    def __init__(self, frames: list[np.ndarray], after: int) -> None:
        super().__init__()
        self.name, self.fps, self.frame_count = "interrupted", FPS, len(frames)
        self._frames, self._after = frames, after

    def frames(self):
        for i, image in enumerate(self._frames):
            if i == self._after:
                os.kill(os.getpid(), signal.SIGINT)
            yield Frame(i, i / FPS, image)


def test_ctrl_c_writes_what_is_done(estimator, clip_frames, tmp_path):
    summary = process_video(
        estimator,
        _InterruptedSource(clip_frames * 4, after=10),
        tmp_path / "i.csv",
        overlay=tmp_path / "i.avi",
        report=tmp_path / "rep",
        progress=False,
    )
    assert summary.interrupted
    df = pd.read_csv(tmp_path / "i.csv")
    assert 10 <= summary.frames <= 10 + 1 + 16 < len(clip_frames) * 4  # decoded before the stop, at most
    assert df["frame"].drop_duplicates().tolist() == list(range(1, summary.frames + 1))
    assert (tmp_path / "rep" / "index.html").is_file() and (tmp_path / "i.avi").is_file()


def _results(series: list[list[tuple[int, float]]]) -> list[FrameResult]:
    """Frame results whose faces (id, AU value for all AUs) are given per frame."""
    out = []
    for index, faces in enumerate(series):
        out.append(
            FrameResult(
                index,
                index / FPS,
                [
                    FaceResult(
                        face_id=i,
                        aus=AUS,
                        intensities=np.full(len(AUS), v),
                        heatmaps=np.zeros((5, 64, 64)),
                        peaks=np.zeros((5, 3, 2)),
                        argmax=np.zeros((5, 2)),
                        landmarks=np.zeros((68, 2)),
                        box=np.zeros(4),
                        confidence=1.0,
                        matrix=np.eye(2, 3),
                        crop=np.empty(0),
                    )
                    for i, v in faces
                ],
                None,
            )
        )
    return out


def _smoothed(smoother: IntensitySmoother, results: list[FrameResult]) -> list[FrameResult]:
    out = [final for r in results for final in smoother.push(r)]
    return out + smoother.flush()


def test_smoothing():
    series = [[(0, 0.0)], [(0, 4.0)], [], [(0, 2.0), (1, 1.0)], [(0, 2.0), (1, 3.0)]]
    ema = _smoothed(IntensitySmoother.parse("ema:0.5"), _results(series))
    assert [r.index for r in ema] == list(range(5))
    assert [f.intensities[0] for f in ema[1].faces] == [2.0]
    assert ema[3].faces[0].intensities[0] == 2.0  # the track restarted after the gap
    assert ema[4].faces[1].intensities[0] == 2.0 and ema[4].faces[0].intensities[0] == 2.0
    window = _smoothed(IntensitySmoother.parse("window:3"), _results(series))
    assert [r.index for r in window] == list(range(5))
    assert window[0].faces[0].intensities[0] == 2.0  # frames 0, 1
    assert window[1].faces[0].intensities[0] == 2.0  # frames 0, 1 (2 has no face)
    assert window[3].faces[0].intensities[0] == 2.0 and window[3].faces[1].intensities[0] == 2.0
    assert window[4].faces[1].intensities[0] == 2.0
    short = _smoothed(IntensitySmoother("window", size=7), _results(series[:2]))
    assert [r.faces[0].intensities[0] for r in short] == [2.0, 2.0]
    with pytest.raises(ValueError):
        IntensitySmoother.parse("median:3")
    with pytest.raises(ValueError):
        IntensitySmoother.parse("window:4")


def test_cli_video_with_outputs(tiny_weights, clip, tmp_path, capsys):
    out = tmp_path / "res.csv"
    rc = main(
        [
            "predict",
            str(clip),
            "--weights",
            str(tiny_weights),
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "p.png"),
            "--smooth",
            "window:3",
            "--fast",
            "--quiet",
        ]
    )
    assert rc == 0
    assert len(pd.read_csv(out)) == len(SCRIPT)
    assert (tmp_path / "p.png").is_file()
    assert f"{len(SCRIPT)} frame(s)" in capsys.readouterr().out
    assert main(["predict", "--weights", str(tiny_weights)]) == 2  # nothing to analyse


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime",
)
def test_onnx_export_and_backend(tiny_weights, tmp_path, capsys, clip_frames):
    import onnx

    path = tmp_path / "tiny.onnx"
    assert main(["export", "--onnx", str(path), "--weights", str(tiny_weights)]) == 0
    assert "max |ONNX Runtime - PyTorch|" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["aumaps.aus"] == "6,10,12,14,17"
    reference = AUEstimator(weights=tiny_weights, backend="torch")
    ort = AUEstimator(weights=tiny_weights, backend="onnx")
    crops = np.stack(
        [
            align.warp_to_crop(f, align.registration_matrix(reference.landmarker(f)[0].landmarks))
            for f in clip_frames[:3]
        ]
    )
    np.testing.assert_allclose(ort.heatmaps(crops), reference.heatmaps(crops), atol=1e-4)
