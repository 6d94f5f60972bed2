"""``aumaps serve`` over HTTP and WebSockets: the app runs on a free port and is spoken to as a
browser would (raw-body uploads, JSON, CSV, WebSocket frames), with its access token. Numbers
are compared with the Python API's on the same images; errors must be JSON that names the file
or field; hostile input (tokens, malformed socket messages, decompression bombs) must get a
4xx and leave the server answering; live views must stay live while photos are analysed."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aumaps import align
from aumaps.aus import get_au
from aumaps.images import ImageReadError, ImageTooLarge, read_image
from aumaps.model import AUHourglass
from aumaps.predict import AUEstimator
from aumaps.results import csv_columns
from aumaps.runtime import EngineUnavailable
from aumaps.serve import create_app
from aumaps.serve.live import HEADER
from aumaps.serve.security import (
    TOKEN_ENV,
    cookie_value,
    display_name,
    is_loopback,
    server_token,
    validate_token,
    write_open_file,
)
from aumaps.serve.server import check_device, parse_duration
from aumaps.video import VideoOpenError
from aumaps.visualise import face_mask, overlay
from aumaps.weights import WeightsError, load_checkpoint, save_checkpoint
from test_images import grey_png

AUS = tuple(load_checkpoint("default").aus)  # the bundled model's AUs, whatever they are
BACKEND = "torch"  # the float32 reference: no engine to build, numbers comparable exactly
TOKEN = "test-token-8f3a1c9d2b7e4a60"


@contextlib.contextmanager
def running(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=16 * 1024 * 1024))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def request(
    url: str,
    data: bytes | None = None,
    method: str | None = None,
    headers: dict | None = None,
    token: str | None = TOKEN,
    timeout: float = 120,
):
    """(status, headers, body bytes) of one HTTP request carrying ``token`` (as a header); 4xx/5xx
    are returned, not raised."""
    headers = dict(headers or {})
    if token is not None:
        headers.setdefault("Authorization", f"token {token}")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def post(url: str, data: bytes, token: str | None = TOKEN, **headers):
    return request(url, data, "POST", {"Content-Type": "application/octet-stream", **headers}, token)


def as_json(body: bytes):
    return json.loads(body.decode())


def live_socket(base: str, query: str = "", token: str | None = TOKEN, **options):
    """A WebSocket to the live view, carrying ``token`` as a header."""
    headers = {"Authorization": f"token {token}"} if token else None
    return connect(
        base.replace("http", "ws") + "/ws/live" + query, open_timeout=30, additional_headers=headers, **options
    )


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def face_frame(astronaut: np.ndarray, scale: float = 1.6, dx: float = 0.0, size=(640, 480)) -> np.ndarray:
    """A webcam-sized RGB frame with the astronaut's face (about 150 px) near the middle."""
    matrix = np.float64([[scale, 0, size[0] / 2 + dx - 215 * scale], [0, scale, size[1] / 2 - 125 * scale]])
    return cv2.warpAffine(astronaut, matrix, size, borderValue=(90, 90, 90))


def twelve_megapixel_photo(astronaut: np.ndarray) -> bytes:
    """A 4000 x 3000 JPEG (a phone's 12 megapixels) with the astronaut's face about 700 px wide."""
    canvas = np.full((3000, 4000, 3), 120, np.uint8)
    canvas[300:2700, 800:3200] = cv2.resize(astronaut, (2400, 2400), interpolation=cv2.INTER_CUBIC)
    return jpeg(canvas)


def wait_for_job(base: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status, _, body = request(f"{base}/api/jobs/{job_id}")
        assert status == 200, body
        job = as_json(body)
        seen.append(job)
        if job["state"] in ("done", "failed", "cancelled"):
            job["history"] = seen
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {seen[-1]['state']} after {timeout} s")


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A --models folder: one small checkpoint with its card, one file that is no checkpoint."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = AUHourglass(num_aus=len(AUS), num_stacks=1, depth=2, width=32)
    save_checkpoint(folder / "tiny.pt", model, aus=AUS, card={"name": "tiny test model", "trained_on": "nothing"})
    (folder / "junk.pt").write_bytes(b"not a checkpoint")
    (folder / "readme.txt").write_text("not offered")
    return folder


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    return create_app(
        "default",
        models=models_dir,
        backend=BACKEND,
        max_upload_mb=50,
        token=TOKEN,
        upload_dir=tmp_path_factory.mktemp("uploads"),
    )


@pytest.fixture(scope="module")
def base(app):
    with running(app) as url:
        yield url
    assert not app.state.folder.path.exists(), "the private upload folder outlived the server"


@pytest.fixture(scope="module")
def reference() -> AUEstimator:
    return AUEstimator(weights="default", backend=BACKEND)


@pytest.fixture(scope="module")
def photo(base, grace_hopper_path):
    status, _, body = post(f"{base}/api/photos?name=grace%20hopper.jpg&model=default", grace_hopper_path.read_bytes())
    assert status == 200, body
    return as_json(body)


# -- photos ---------------------------------------------------------------------------------
def test_photo_gives_the_python_apis_numbers(photo, reference, grace_hopper_path):
    expected = reference.predict(read_image(grace_hopper_path))
    assert len(photo["faces"]) == len(expected) == 1
    face, want = photo["faces"][0], expected[0]
    assert photo["name"] == "grace hopper.jpg" and (photo["width"], photo["height"]) == (512, 600)
    assert [a["au"] for a in photo["aus"]] == list(AUS)
    assert [a["name"] for a in photo["aus"]] == [get_au(a).name for a in AUS]
    smile = photo["aus"][AUS.index(12)]
    assert smile["name"] == "Lip Corner Puller" and smile["colour"].startswith("#")
    assert (smile["region"], smile["region_title"], smile["short"]) == ("lower", "Lower face", "Lip corners up")
    assert [a["region"] for a in photo["aus"]] == [get_au(a).region for a in AUS]  # the page groups by it
    np.testing.assert_allclose(face["intensities"], want.intensities, atol=1e-4)
    np.testing.assert_allclose(face["box"], want.box, atol=0.01)
    np.testing.assert_allclose(face["landmarks"], want.landmarks, atol=0.06)


def test_photo_maps_are_placed_where_they_peak(photo, reference, grace_hopper_path):
    """The bytes and the map→image affine the page draws with put each map's maximum where
    the Python API says the AU peaks."""
    want = reference.predict(read_image(grace_hopper_path))[0]
    face = photo["faces"][0]
    n = face["map_size"]
    maps = np.frombuffer(base64.b64decode(face["maps"]), np.uint8).reshape(len(AUS), n, n)
    # the network's maps, as bytes, off the face left out (visualise.face_mask; maps are a quarter of the crop)
    on_map = align.transform_points(want.landmarks, want.matrix) / 4
    face_only = face_mask(on_map, (0, 0, n, n))
    assert 0.3 < face_only.mean() < 0.9
    expected = np.round(np.clip(want.heatmaps / 5, 0, 1) * 255) * face_only
    assert np.abs(maps.astype(float) - expected).max() <= 1
    affine = np.array(face["map_to_image"])
    for a in range(len(AUS)):
        v, u = np.unravel_index(np.argmax(want.heatmaps[a]), (n, n))
        x, y = affine @ [u + 0.5, v + 0.5, 1.0]  # centre of that map pixel, canvas coordinates
        # the readout refines the peak below a map pixel (4 image px here)
        assert np.hypot(x - 0.5 - want.argmax[a][0], y - 0.5 - want.argmax[a][1]) < 6, (a, x, y, want.argmax[a])


def test_photo_csv_and_overlay_downloads(base, photo, reference, grace_hopper_path):
    status, headers, body = request(f"{base}/api/photos.csv?ids={photo['id']}")
    assert status == 200 and "aumaps-photos.csv" in headers["Content-Disposition"]
    table = pd.read_csv(io.BytesIO(body))
    assert list(table.columns) == csv_columns(AUS, file_column=True)
    assert table["file"].tolist() == ["grace hopper.jpg"] and table["success"].tolist() == [1]
    np.testing.assert_allclose(
        table[[f"AU{a:02d}_r" for a in AUS]].to_numpy()[0], photo["faces"][0]["intensities"], atol=1e-4
    )

    status, headers, body = request(f"{base}/api/photos/{photo['id']}/overlay/0")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert "grace%20hopper_face0.png" in headers["Content-Disposition"]
    picture = cv2.cvtColor(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    image = read_image(grace_hopper_path)
    expected = overlay(image, reference.predict(image), face_index=0)
    assert picture.shape == expected.shape
    assert np.abs(picture.astype(int) - expected).mean() < 1.0

    status, _, body = request(f"{base}/api/photos/{photo['id']}/image")
    shown = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and shown.shape == (600, 512, 3)

    status, _, body = request(f"{base}/api/photos/{photo['id']}/overlay/3")
    assert status == 404 and "no face 3" in as_json(body)["error"]
    status, _, body = request(f"{base}/api/photos.csv?ids=nosuchphoto")
    assert status == 404 and "nosuchphoto" in as_json(body)["error"]


def test_upload_type_is_decided_by_content_not_name(base, grace_hopper_path, app):
    status, _, body = post(f"{base}/api/photos?name=face.jpg", b"GIF89a but not really an image" * 20)
    assert status == 415
    message = as_json(body)["error"]
    assert "'face.jpg'" in message and "not an image" in message
    assert str(app.state.folder.path) not in message  # the server's files are never named
    status, _, body = post(f"{base}/api/photos?name=notes.txt", grace_hopper_path.read_bytes())
    assert status == 200 and as_json(body)["name"] == "notes.txt" and len(as_json(body)["faces"]) == 1
    status, _, body = post(f"{base}/api/photos?name=../../etc/passwd", b"")
    assert status == 400 and "'passwd'" in as_json(body)["error"] and "empty" in as_json(body)["error"]
    assert not [p for p in app.state.folder.path.iterdir() if p.is_file()]  # photo uploads are deleted


def test_photo_without_a_face_says_so(base):
    grey = np.random.default_rng(0).integers(60, 120, (240, 320, 3), dtype=np.uint8)
    status, _, body = post(f"{base}/api/photos?name=wall.png", cv2.imencode(".png", grey)[1].tobytes())
    assert status == 200
    result = as_json(body)
    assert result["faces"] == [] and result["message"] == "no face found in 'wall.png'"


def test_display_names_are_labels_only():
    assert display_name("C:\\Users\\me\\photo.jpg") == "photo.jpg"
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("a\x00b\nc.png") == "abc.png"
    assert display_name("", "photo") == "photo"


# -- models ---------------------------------------------------------------------------------
def test_model_picker_offers_bundled_folder_and_cached_only(base, grace_hopper_path, models_dir):
    status, _, body = request(f"{base}/api/config")
    config = as_json(body)
    ids = [m["id"] for m in config["models"]]
    assert ids == ["default", "file:junk.pt", "file:tiny.pt"]  # no 'official': not in the cache
    assert config["initial_model"] == "default" and config["max_upload_bytes"] == 50 * 1024 * 1024
    cards = {m["id"]: m["card"] for m in config["models"]}
    assert cards["file:tiny.pt"]["name"] == "tiny test model" and cards["file:tiny.pt"]["aus"] == list(AUS)
    assert "junk.pt" in cards["file:junk.pt"]["error"]
    assert cards["default"]["trained_on"].startswith("aumaps synthetic")

    status, _, body = post(f"{base}/api/photos?name=gh.jpg&model=file:tiny.pt", grace_hopper_path.read_bytes())
    assert status == 200 and as_json(body)["model"] == "file:tiny.pt"
    want = AUEstimator(weights=models_dir / "tiny.pt", backend=BACKEND).predict(read_image(grace_hopper_path))
    np.testing.assert_allclose(as_json(body)["faces"][0]["intensities"], want[0].intensities, atol=1e-4)
    for bad in ("file:../tiny.pt", "/etc/passwd", "official"):
        status, _, body = post(f"{base}/api/photos?name=gh.jpg&model={bad}", grace_hopper_path.read_bytes())
        assert status == 400 and "no model" in as_json(body)["error"] and "choose one of" in as_json(body)["error"]
    status, _, body = post(f"{base}/api/photos?name=gh.jpg&model=file:junk.pt", grace_hopper_path.read_bytes())
    assert status == 400 and "junk.pt" in as_json(body)["error"]


# -- videos ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut) -> Path:
    """12 frames, 320×240, the astronaut's face moving; frames 5-6 without a face."""
    frames = []
    for i in range(12):
        if i in (5, 6):
            frames.append(np.full((240, 320, 3), 90, np.uint8))
        else:
            frames.append(face_frame(astronaut, 0.9, 6 * np.sin(i / 2), size=(320, 240)))
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi", frames)


def test_video_job_runs_with_progress_and_gives_every_output(base, clip, app):
    status, _, body = post(f"{base}/api/jobs?name=my%20clip.avi", clip.read_bytes())
    assert status == 202, body
    job = as_json(body)
    assert job["state"] in ("queued", "running") and job["name"] == "my clip.avi"
    done = wait_for_job(base, job["id"])
    assert done["state"] == "done", done
    assert done["frame_count"] == 12 and done["frames_done"] == 12 and done["fraction"] == 1.0
    fractions = [j["fraction"] for j in done["history"] if j["fraction"] is not None]
    assert fractions == sorted(fractions)
    assert done["summary"]["frames"] == 12 and done["summary"]["frames_with_face"] == 10
    assert not (app.state.folder.path / job["id"] / "upload").exists()  # the upload is gone

    status, headers, body = request(f"{base}{done['outputs']['csv']}")
    assert status == 200 and "my%20clip.csv" in headers["Content-Disposition"]
    table = pd.read_csv(io.BytesIO(body))
    assert list(table.columns) == csv_columns(AUS) and table["frame"].tolist() == list(range(1, 13))
    assert table["success"].tolist() == [1] * 5 + [0, 0] + [1] * 5

    status, headers, body = request(f"{base}{done['outputs']['report']}")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "my clip.avi" in page and 'id="au-statistics"' in page and "Frames of peak intensity" in page
    assert str(app.state.folder.path) not in page

    status, headers, body = request(f"{base}{done['outputs']['overlay']}")
    assert status == 200 and headers["Content-Type"] == "video/webm" and body[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    webm = app.state.folder.path / "check.webm"
    webm.write_bytes(body)
    capture = cv2.VideoCapture(str(webm))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    webm.unlink()
    assert decoded == 12
    # ranges (the browser's player seeks with them)
    status, headers, part = request(f"{base}{done['outputs']['overlay']}", headers={"Range": "bytes=0-99"})
    assert status == 206 and part == body[:100]


def test_bad_videos_get_clear_messages(base, clip, tmp_path, grace_hopper_path):
    status, _, body = post(f"{base}/api/jobs?name=broken.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else" * 50)
    message = as_json(body)["error"]
    assert status == 415 and "cannot open video 'broken.mp4'" in message and "upload" not in message
    # videos are read through PyAV: the message names FFmpeg, the decoder that refused it
    assert "not a video FFmpeg can decode" in message and "OpenCV" not in message
    status, _, body = post(f"{base}/api/jobs?name=holiday.mp4", grace_hopper_path.read_bytes())
    assert status == 415 and "'holiday.mp4' is a still image" in as_json(body)["error"]
    # a truncated file: the frames that decode are analysed, the rest reported
    whole = clip.read_bytes()
    status, _, body = post(f"{base}/api/jobs?name=cut.avi", whole[: len(whole) // 2])
    assert status == 202
    done = wait_for_job(base, as_json(body)["id"])
    assert done["state"] == "done" and 0 < done["summary"]["frames_with_face"] < 10
    assert any("cut.avi" in p and "truncated" in p for p in done["problems"])
    status, _, body = request(f"{base}/api/jobs/nosuchjob")
    assert status == 404 and "nosuchjob" in as_json(body)["error"]
    status, _, body = request(f"{base}/api/jobs/{done['id']}/plot")
    assert status == 404 and "csv, report and overlay" in as_json(body)["error"]


def test_a_running_job_stops_when_asked(base, astronaut, tmp_path):
    frames = [face_frame(astronaut, 0.9, 6 * np.sin(i / 2), size=(320, 240)) for i in range(8)] * 40
    clip = write_clip(tmp_path / "long.avi", frames)
    status, _, body = post(f"{base}/api/jobs?name=long.avi&model=file:tiny.pt", clip.read_bytes())  # a fast model
    job_id = as_json(body)["id"]
    deadline = time.monotonic() + 120
    while as_json(request(f"{base}/api/jobs/{job_id}")[2])["frames_done"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, _, body = request(f"{base}/api/jobs/{job_id}/cancel", method="POST")
    assert status == 200
    stopped = wait_for_job(base, job_id)
    assert stopped["state"] == "cancelled" and 0 < stopped["summary"]["frames"] < 320
    assert stopped["message"] == f"stopped after {stopped['summary']['frames']} frames"
    assert {"overlay", "csv"} <= set(stopped["outputs"])  # what was analysed until then, as after Ctrl-C


def test_several_jobs_run_and_a_job_can_be_stopped(base, clip):
    ids = []
    for i in range(3):
        status, _, body = post(f"{base}/api/jobs?name=clip{i}.avi&model=file:tiny.pt", clip.read_bytes())
        assert status == 202
        ids.append(as_json(body)["id"])
    status, _, body = request(f"{base}/api/jobs/{ids[2]}/cancel", method="POST")
    assert status == 200
    finished = {i: wait_for_job(base, i) for i in ids}
    assert finished[ids[0]]["state"] == finished[ids[1]]["state"] == "done"
    assert finished[ids[2]]["state"] == "cancelled"
    assert len(set(ids)) == 3 and all(len(i) >= 16 for i in ids)  # unguessable handles


# -- data is the user's ---------------------------------------------------------------------
def test_delete_removes_a_jobs_files_and_a_photo(base, clip, app, grace_hopper_path):
    status, _, body = post(f"{base}/api/jobs?name=mine.avi&model=file:tiny.pt", clip.read_bytes())
    done = wait_for_job(base, as_json(body)["id"])
    folder = app.state.folder.path / done["id"]
    assert done["state"] == "done" and (folder / "results.csv").is_file()
    assert done["expires_in"] is not None and 0 < done["expires_in"] <= 24 * 3600  # the default retention
    status, _, body = request(f"{base}/api/jobs/{done['id']}", method="DELETE")
    assert status == 200 and as_json(body) == {"id": done["id"], "deleted": True}
    assert not folder.exists()  # the CSV, report and overlay are gone from the disk
    for path in ("", "/csv", "/overlay"):
        status, _, body = request(f"{base}/api/jobs/{done['id']}{path}")
        assert status == 410 and "deleted at your request" in as_json(body)["error"]

    status, _, body = post(f"{base}/api/photos?name=me.jpg", grace_hopper_path.read_bytes())
    photo_id = as_json(body)["id"]
    assert request(f"{base}/api/photos/{photo_id}", method="DELETE")[0] == 200
    for path in ("/image", "/overlay/0"):
        status, _, body = request(f"{base}/api/photos/{photo_id}{path}")
        assert status == 410 and "deleted" in as_json(body)["error"]
    status, _, body = request(f"{base}/api/photos.csv?ids={photo_id}")
    assert status == 410
    assert request(f"{base}/api/photos/{photo_id}", method="DELETE")[0] == 410


def test_a_cancelled_queued_job_shows_cancelled_at_once(tmp_path, clip, monkeypatch):
    from aumaps.serve import jobs as jobs_module

    release = threading.Event()
    real = jobs_module.process_video

    def held(*args, **kwargs):  # the one worker stays busy until released
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "process_video", held)
    app = create_app("default", backend=BACKEND, preload=False, upload_dir=tmp_path, token=TOKEN, workers=1)
    with running(app) as base:
        first = as_json(post(f"{base}/api/jobs?name=first.avi", clip.read_bytes())[2])
        second = as_json(post(f"{base}/api/jobs?name=second.avi", clip.read_bytes())[2])
        assert second["state"] == "queued"
        status, _, body = request(f"{base}/api/jobs/{second['id']}/cancel", method="POST")
        assert status == 200 and as_json(body)["state"] == "cancelled"  # at once, not when a worker frees up
        assert as_json(request(f"{base}/api/jobs/{second['id']}")[2])["state"] == "cancelled"
        assert not (app.state.folder.path / second["id"] / "upload").exists()  # its upload is gone already
        release.set()
        assert wait_for_job(base, first["id"])["state"] == "done"
        assert as_json(request(f"{base}/api/jobs/{second['id']}")[2])["state"] == "cancelled"


def test_finished_work_expires_after_the_retention(tmp_path, clip, grace_hopper_path):
    app = create_app(
        "default", backend=BACKEND, preload=False, upload_dir=tmp_path, token=TOKEN, retention=2.0, models=None
    )
    state = app.state.aumaps
    with running(app) as base:
        job = as_json(post(f"{base}/api/jobs?name=old.avi", clip.read_bytes())[2])
        photo = as_json(post(f"{base}/api/photos?name=old.jpg", grace_hopper_path.read_bytes())[2])
        done = wait_for_job(base, job["id"])
        assert done["state"] == "done" and 0 < done["expires_in"] <= 2.0
        deadline = time.monotonic() + 30  # the server's own sweeper, every 0.5 s here
        while (app.state.folder.path / job["id"]).exists():
            assert time.monotonic() < deadline, "the finished job was not deleted"
            time.sleep(0.2)
        status, _, body = request(f"{base}/api/jobs/{job['id']}")
        assert status == 410 and "kept 2 s" in as_json(body)["error"] and "--retention" in as_json(body)["error"]
        status, _, body = request(f"{base}/api/photos/{photo['id']}/image")
        assert status == 410 and "--retention" in as_json(body)["error"]
        # what has not ended is never expired
        queued = state.jobs.new(state.folder.new_folder(state.jobs.new_id()), "waiting.avi", "default")
        state.jobs._jobs[queued.id] = queued
        assert state.expire(now=time.time() + 3600) == 0 and state.jobs.get(queued.id) is queued
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("12h") == 43200
    assert parse_duration("7d") == 7 * 86400 and parse_duration("none") is None
    for bad in ("12", "-1h", "0s", "soon"):
        with pytest.raises(ValueError, match="retention"):
            parse_duration(bad)


# -- every error is the API's own -----------------------------------------------------------
def test_every_route_answers_failures_as_json(base, app, photo, clip, grace_hopper_path, monkeypatch):
    """Each route, with each kind of failure the readers, models and engines raise injected:
    JSON {"error": ...} with the status that says whose doing it is."""
    state = app.state.aumaps
    image = grace_hopper_path.read_bytes()

    def failing(error):
        def fail(*args, **kwargs):
            raise error

        return fail

    def check(method, path, body, status, fragment):
        got, headers, answer = request(
            f"{base}{path}", body, method, {"Content-Type": "application/octet-stream"} if body else {}
        )
        assert headers["Content-Type"] == "application/json", (method, path, answer)
        message = as_json(answer)["error"]
        assert got == status and fragment in message, (method, path, got, message)

    upload_failures = [
        (ImageTooLarge("up.jpg", 900_000_000, 100_000_000, 30000, 30000), 413, "30000x30000"),
        (ImageReadError("up.jpg", "not an image"), 415, "not an image"),
        (WeightsError("checkpoint damaged"), 400, "choose another model"),
        (EngineUnavailable("the onnx back-end needs onnxruntime"), 503, "--backend torch"),
        (MemoryError(), 507, "out of memory"),
        (OSError(28, "No space left on device"), 500, "No space left on device"),
        (RuntimeError("something unforeseen"), 500, "internal error in aumaps (RuntimeError: something unforeseen)"),
    ]
    for error, status, fragment in upload_failures:
        with monkeypatch.context() as patch:
            patch.setattr(state.analyser, "_run", failing(error))
            check("POST", "/api/photos?name=up.jpg", image, status, fragment)
    assert not [p for p in state.folder.path.iterdir() if p.is_file()]  # no upload left behind

    from aumaps.serve.routers import jobs as job_routes

    for error, status, fragment in [
        (VideoOpenError("cannot open 'v.mp4' as a video"), 415, "v.mp4"),
        (ImageTooLarge("v.mp4", 4 * 10**8, 10**8, 20000, 20000), 413, "20000x20000"),
        (RuntimeError("boom"), 500, "internal error"),
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(job_routes, "open_video", failing(error))
            check("POST", "/api/jobs?name=v.mp4", clip.read_bytes(), status, fragment)
    with monkeypatch.context() as patch:
        patch.setattr(state.catalogue, "choices", failing(OSError(5, "Input/output error")))
        check("GET", "/api/config", None, 500, "Input/output error")
    with monkeypatch.context() as patch:
        patch.setattr(state.catalogue, "get", failing(EngineUnavailable("no int8 model")))
        check("POST", "/api/photos?name=up.jpg", image, 503, "no int8 model")
    with monkeypatch.context() as patch:
        patch.setattr(type(state.photos.get(photo["id"])), "overlay_png", failing(MemoryError()))
        check("GET", f"/api/photos/{photo['id']}/overlay/0", None, 507, "out of memory")
    with monkeypatch.context() as patch:
        from aumaps.serve.routers import photos as photo_routes

        patch.setattr(photo_routes, "photos_csv", failing(RuntimeError("csv broke")))
        check("GET", f"/api/photos.csv?ids={photo['id']}", None, 500, "csv broke")
    # unknown things, wrong methods, malformed parameters: JSON too
    check("GET", "/api/photos/nope/image", None, 404, "no photo 'nope'")
    check("DELETE", "/api/photos/nope", None, 404, "no photo 'nope'")
    check("GET", f"/api/photos/{photo['id']}/overlay/first", None, 422, "face_id")
    for method, path in (
        ("GET", "/api/jobs/nope"),
        ("POST", "/api/jobs/nope/cancel"),
        ("DELETE", "/api/jobs/nope"),
        ("GET", "/api/jobs/nope/csv"),
    ):
        check(method, path, None, 404, "no video job 'nope'")
    check("GET", "/api/recordings/nope", None, 404, "no recording 'nope'")
    check("DELETE", "/api/recordings/nope", None, 404, "no recording 'nope'")
    check("GET", "/api/nothing-here", None, 404, "no such address")
    check("PUT", "/api/config", None, 405, "PUT")
    check("POST", "/api/photos?name=x.jpg&model=nope", image, 400, "choose one of")
    # the live socket: a model whose engine cannot be built here
    with monkeypatch.context() as patch:
        patch.setattr(state.catalogue, "shared", failing(EngineUnavailable("the openvino back-end needs OpenVINO")))
        with live_socket(base) as ws:
            message = json.loads(ws.recv(timeout=60))
        assert message["type"] == "error" and message["fatal"] and "needs OpenVINO" in message["message"]
    # a video job whose analysis fails: the job says why, and the server goes on
    from aumaps.serve import jobs as job_module

    with monkeypatch.context() as patch:
        patch.setattr(job_module, "process_video", failing(EngineUnavailable("no int8 model of these weights")))
        status, _, body = post(f"{base}/api/jobs?name=v.avi", clip.read_bytes())
        failed = wait_for_job(base, as_json(body)["id"])
    assert failed["state"] == "failed" and "no int8 model" in failed["message"] and failed["outputs"] == {}
    check("GET", f"/api/jobs/{failed['id']}/csv", None, 404, "the job is failed")
    assert request(f"{base}/api/config")[0] == 200  # and the server goes on


# -- access ---------------------------------------------------------------------------------
def test_token_is_needed_on_every_request_and_socket(tmp_path):
    app = create_app("default", token="s3cret-token-0123456789", backend=BACKEND, preload=False, upload_dir=tmp_path)
    with running(app) as base:
        status, headers, body = request(f"{base}/api/config", token=None)
        assert status == 401 and headers["WWW-Authenticate"] == "token" and "access token" in as_json(body)["error"]
        status, _, body = request(f"{base}/api/config?token=wrong", token=None)
        assert status == 403 and "wrong" in as_json(body)["error"]
        assert request(f"{base}/api/config?token=s3cret-token-0123456789", token=None)[0] == 200
        assert request(f"{base}/api/config", token="s3cret-token-0123456789")[0] == 200
        assert request(f"{base}/static/app.js", token=None)[0] == 401
        status, headers, body = request(f"{base}/", token=None)  # a browser without the token: a form for it
        assert status == 401 and headers["Content-Type"].startswith("text/html") and b'action="/login"' in body
        # the printed URL: the token becomes a cookie (a digest, not the token), out of the address bar
        cookies = urllib.request.HTTPCookieProcessor()
        opener = urllib.request.build_opener(cookies)
        with opener.open(f"{base}/?token=s3cret-token-0123456789&tab=live", timeout=30) as response:
            assert response.status == 200 and response.url == f"{base}/?tab=live"
            assert b"aumaps" in response.read()
        (cookie,) = list(cookies.cookiejar)
        assert cookie.value == cookie_value("s3cret-token-0123456789") and "s3cret" not in cookie.value
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "lax"
        with opener.open(f"{base}/static/app.js", timeout=30) as response:
            assert response.status == 200
        ws = base.replace("http", "ws")
        with pytest.raises(InvalidStatus):
            connect(f"{ws}/ws/live", open_timeout=30).close()
        with connect(f"{ws}/ws/live?token=s3cret-token-0123456789", open_timeout=30) as socket_:
            assert json.loads(socket_.recv(timeout=120))["type"] == "ready"
        with connect(
            f"{ws}/ws/live",
            open_timeout=30,  # the page's socket: the cookie
            additional_headers={"Cookie": f"{cookie.name}={cookie.value}"},
        ) as socket_:
            assert json.loads(socket_.recv(timeout=120))["type"] == "ready"
        # the login form
        form = urllib.parse.urlencode({"token": "s3cret-token-0123456789"}).encode()
        status, headers, _ = request(f"{base}/login", form, "POST", token=None)  # urllib follows the 303 ...
        assert status == 401  # ... without a cookie jar; the cookie was set on the 303:
        conn = http.client.HTTPConnection(base.split("//")[1], timeout=30)
        conn.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        assert answer.status == 303 and cookie_value("s3cret-token-0123456789") in answer.getheader("Set-Cookie")
        conn.close()
        status, _, body = request(f"{base}/login", b"token=guess", "POST", token=None)
        assert status == 403 and b"not this server" in body
        status, _, body = request(f"{base}/login", token=None)  # the form's address reloaded: the form again
        assert status == 401 and b'action="/login"' in body


def _raw_get(base: str, target: bytes, headers: dict[str, bytes] | None = None) -> tuple[int, bytes]:
    """A GET with a raw request target and header bytes (what urllib would refuse to send)."""
    host, port = base.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        headers = {"Host": f"{host}:{port}".encode(), **(headers or {})}
        lines = [b"GET " + target + b" HTTP/1.1", b"Connection: close"]
        lines += [k.encode() + b": " + v for k, v in headers.items()]
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_non_ascii_tokens_are_refused_not_a_server_error(tmp_path):
    """The issue's ?token=été on a server bound to every address: a 4xx, never a 500."""
    app = create_app("default", token=TOKEN, backend=BACKEND, preload=False, upload_dir=tmp_path, local_only=False)
    with running(app) as base:
        for target in (
            b"/api/config?token=%C3%A9t%C3%A9",
            b"/?token=%C3%A9t%C3%A9",
            b"/api/config?token=%FF%00",
            b"/api/config?token=" + b"e" * 5000,
        ):
            status, body = _raw_get(base, target)
            assert status == 403, (target, status, body[:200])
        status, _ = _raw_get(base, b"/api/config?token=\xc3\xa9t\xc3\xa9")  # unencoded: HTTP itself refuses it
        assert 400 <= status < 500
        for headers in (
            {"Authorization": b"token \xc3\xa9t\xc3\xa9"},
            {"Authorization": b"token \xff"},
            {"Cookie": "aumaps-token-0=\u00e9t\u00e9".encode()},
            {"Cookie": b"\xff\xfe=\xff"},
        ):
            status, _ = _raw_get(base, b"/api/config", headers)
            assert 400 <= status < 500, (headers, status)
        assert _raw_get(base, f"/api/config?token={TOKEN}".encode())[0] == 200
        assert (
            _raw_get(
                base, b"/api/config", {"Host": b"anything.example:80", "Authorization": f"token {TOKEN}".encode()}
            )[0]
            == 200
        )


def test_loopback_server_refuses_other_hosts_and_sites(base, grace_hopper_path):
    status, _, body = request(f"{base}/api/config", headers={"Host": "attacker.example:8000"})
    assert status == 403 and "localhost" in as_json(body)["error"]  # DNS rebinding, even with the token
    status, _, body = post(
        f"{base}/api/photos?name=x.jpg", grace_hopper_path.read_bytes(), Origin="http://attacker.example"
    )
    assert status == 403 and "attacker.example" in as_json(body)["error"]
    for origin in ("http://attacker.example", "null"):  # "null": a sandboxed frame of any site
        with pytest.raises(InvalidStatus):
            live_socket(base, origin=origin).close()


def test_tokens_come_from_a_file_or_the_environment_never_the_command_line(tmp_path, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    token, origin, notes = server_token(environ={})
    assert origin == "generated" and len(token) >= 32 and notes == []
    assert server_token(environ={})[0] != token
    assert server_token(environ={TOKEN_ENV: " from-the-environment-1234 \n"})[:2] == (
        "from-the-environment-1234",
        "$AUMAPS_TOKEN",
    )
    path = tmp_path / "token"
    path.write_text("from-a-file-56789012\nsecond line ignored\n")
    path.chmod(0o600)
    assert server_token(path, environ={TOKEN_ENV: "loses"}) == ("from-a-file-56789012", f"--token-file '{path}'", [])
    path.chmod(0o644)
    assert "chmod 600" in server_token(path, environ={})[2][0]  # others can read it: said
    assert "short" in server_token(environ={TOKEN_ENV: "abc"})[2][0]
    for bad, message in (("", "empty"), ("été", "printable ASCII"), ("a b", "printable ASCII")):
        with pytest.raises(ValueError, match=message):
            server_token(environ={TOKEN_ENV: bad}) if bad else validate_token(bad)
    with pytest.raises(OSError, match="cannot read"):
        server_token(tmp_path / "missing")
    from aumaps.cli import main

    assert main(["serve", "--token", "on-the-command-line"]) == 2
    assert "visible to every user" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--no-token"]) == 2
    assert "only a server on the loopback" in capsys.readouterr().err
    with pytest.raises(ValueError, match="loopback"):
        create_app("default", no_token=True, local_only=False, preload=False, upload_dir=tmp_path)


def test_no_token_on_the_loopback_only_by_choice(tmp_path):
    app = create_app("default", no_token=True, backend=BACKEND, preload=False, upload_dir=tmp_path)
    with running(app) as base:
        assert request(f"{base}/api/config", token=None)[0] == 200
        assert request(f"{base}/api/config", token=None, headers={"Host": "attacker.example"})[0] == 403
    app = create_app("default", backend=BACKEND, preload=False, upload_dir=tmp_path)  # the default: a token
    assert app.state.token and len(app.state.token) >= 32
    with running(app) as base:
        assert request(f"{base}/api/config", token=None)[0] == 401
        assert request(f"{base}/api/config", token=app.state.token)[0] == 200


def test_redirect_file_is_private_and_opens_the_address(tmp_path):
    url = f"http://127.0.0.1:8123/?token={TOKEN}"
    path = write_open_file(url, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    page = path.read_text()
    assert f'content="0;url={url}"' in page and f'href="{url}"' in page
    assert write_open_file(url, tmp_path) == path and stat.S_IMODE(path.stat().st_mode) == 0o600


def _serve_process(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str], str]:
    """``aumaps serve --port 0`` in a new process; its first lines up to the address, and the base URL."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True, mode=0o700)
    environment = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), **(env or {})}
    environment.pop(TOKEN_ENV, None) if env is None or TOKEN_ENV not in env else None
    process = subprocess.Popen(
        [sys.executable, "-m", "aumaps", "serve", "--port", "0", "--backend", BACKEND, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    lines, base = [], None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if found := re.search(r"listening on (https?://[^/]+)/", line):
            base = found.group(1)
        if line.startswith("Press Ctrl-C"):
            break
    assert base, "\n".join(lines)
    return process, lines, base


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_aumaps_serve_on_the_loopback_needs_its_token_and_says_how_to_open_it(tmp_path):
    """The issue's first access row: `aumaps serve` on 127.0.0.1 answered every API without a token."""
    process, lines, base = _serve_process(tmp_path, env={TOKEN_ENV: TOKEN})
    try:
        text = "\n".join(lines)
        assert f"{base}/?token={TOKEN}" in text and "open this file in a browser" in text
        opener = Path(urllib.request.url2pathname(re.search(r"file://(\S+)", text).group(1)))
        assert opener.parent == tmp_path / "runtime" / "aumaps" and stat.S_IMODE(opener.stat().st_mode) == 0o600
        assert f"url={base}/?token={TOKEN}" in opener.read_text()
        deadline = time.monotonic() + 60
        while True:  # the server starts answering once uvicorn runs
            try:
                status = request(f"{base}/api/config", token=None)[0]
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert status == 401
        for path in ("/api/config", "/static/app.js"):
            assert request(f"{base}{path}", token=None)[0] == 401
        assert request(f"{base}/api/config?token={TOKEN}", token=None)[0] == 200
        with pytest.raises(InvalidStatus) as refused:
            live_socket(base, token=None).close()
        assert refused.value.response.status_code == 403
        assert TOKEN not in " ".join(process.args)  # never on its command line
    finally:
        _stop(process)
    assert not opener.exists()  # removed when the server stops


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_with_certfile_and_keyfile_and_a_warning_in_clear(tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    process, lines, base = _serve_process(
        tmp_path, "--certfile", str(cert), "--keyfile", str(key), env={TOKEN_ENV: TOKEN}
    )
    try:
        assert base.startswith("https://") and not any("unencrypted" in line for line in lines)
        context = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPSConnection(base.split("//")[1], context=context, timeout=30)
                conn.request("GET", f"/?token={TOKEN}")
                answer = conn.getresponse()
                break
            except (ConnectionError, OSError):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        cookie = answer.getheader("Set-Cookie")
        assert answer.status == 303 and "Secure" in cookie and "HttpOnly" in cookie
        conn.close()
    finally:
        _stop(process)
    # every address, no TLS: the token would travel in clear, and the server says so
    process, lines, _ = _serve_process(tmp_path, "--host", "0.0.0.0", env={TOKEN_ENV: TOKEN})
    _stop(process)
    assert any("without HTTPS" in line and "--certfile" in line for line in lines), lines


def test_device_is_checked_and_used(tmp_path, capsys):
    assert check_device("cpu") == "cpu"
    app = create_app("default", backend=BACKEND, preload=False, upload_dir=tmp_path, device="cpu")
    assert app.state.catalogue.device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            check_device("cuda")
        from aumaps.cli import main

        assert main(["serve", "--device", "cuda:0"]) == 2 and "no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--device"):
        check_device("toaster")


def test_upload_limit_is_enforced_while_reading(tmp_path, grace_hopper_path):
    app = create_app("default", max_upload_mb=0.02, backend=BACKEND, preload=False, upload_dir=tmp_path, token=TOKEN)
    with running(app) as base:
        status, _, body = post(f"{base}/api/photos?name=big.jpg", grace_hopper_path.read_bytes())
        assert status == 413
        message = as_json(body)["error"]
        assert "'big.jpg'" in message and "0.02 MB" in message and "--max-upload-mb" in message
        # no announced length (chunked): cut off while streaming
        chunks = (grace_hopper_path.read_bytes()[i : i + 4096] for i in range(0, 65536, 4096))
        status, _, body = post(f"{base}/api/jobs?name=big.avi", chunks)  # urllib sends it chunked
        assert status == 413 and "'big.avi'" in as_json(body)["error"]
        assert list(app.state.folder.path.iterdir()) == []
    assert not app.state.folder.path.exists()


# -- decompression bombs --------------------------------------------------------------------
@pytest.fixture(scope="module")
def gigapixel(tmp_path_factory) -> bytes:
    """The issue's PNG: 30000 x 30000 grey pixels in 0.9 MB."""
    return grey_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 30000, 30000).read_bytes()


def test_gigapixel_png_is_refused_fast_and_the_server_keeps_answering(base, gigapixel, astronaut, app):
    start = time.perf_counter()
    status, _, body = post(f"{base}/api/photos?name=huge.png", gigapixel)
    seconds = time.perf_counter() - start
    message = as_json(body)["error"]
    assert status == 413 and seconds < 10, (status, seconds)
    assert "'huge.png'" in message and "30000x30000" in message and "--max-pixels" in message
    assert request(f"{base}/api/config")[0] == 200
    status, _, body = post(f"{base}/api/jobs?name=huge.mp4", gigapixel)  # dropped on Videos: not decoded either
    assert status == 415 and "still image" in as_json(body)["error"] and "30000x30000" in as_json(body)["error"]
    assert not [p for p in app.state.folder.path.rglob("*") if p.name.startswith(("photo-", "video-", "upload"))]
    with live_socket(base) as ws:  # as a live frame: an error, and the session goes on
        assert json.loads(ws.recv(timeout=120))["type"] == "ready"
        start = time.perf_counter()
        ws.send(frame_message(1, gigapixel))
        (bad,) = results(ws, 1)
        assert bad["type"] == "error" and "30000x30000" in bad["message"] and time.perf_counter() - start < 10
        ws.send(frame_message(2, jpeg(face_frame(astronaut))))
        (good,) = results(ws, 1)
        assert good["type"] == "result" and good["id"] == 2 and len(good["faces"]) == 1


def test_the_pixel_cap_is_the_servers_to_set(tmp_path, grace_hopper_path):
    app = create_app(
        "default", backend=BACKEND, preload=False, upload_dir=tmp_path, token=TOKEN, max_pixels=512 * 599
    )  # the portrait is 512 x 600
    with running(app) as base:
        status, _, body = post(f"{base}/api/photos?name=gh.jpg", grace_hopper_path.read_bytes())
        assert status == 413 and "512x600" in as_json(body)["error"]
        assert as_json(request(f"{base}/api/config")[2])["max_pixels"] == 512 * 599


# -- live -----------------------------------------------------------------------------------
def frame_message(frame_id: int, image: bytes, captured: float = 0.0) -> bytes:
    return HEADER.pack(frame_id, captured) + image


def results(socket_, count: int) -> list[dict]:
    out = []
    while len(out) < count:
        message = json.loads(socket_.recv(timeout=120))
        if message["type"] in ("result", "error", "recording"):
            out.append(message)
    return out


def test_live_sessions_are_kept_apart(base, astronaut, reference):
    face = jpeg(face_frame(astronaut))
    wall = jpeg(np.full((480, 640, 3), 90, np.uint8))
    with live_socket(base, "?model=default") as a, live_socket(base, "?model=default") as b:
        ready = json.loads(a.recv(timeout=120))
        assert ready["type"] == "ready" and [x["name"] for x in ready["aus"]] == [get_au(n).name for n in AUS]
        assert json.loads(b.recv(timeout=120))["type"] == "ready"
        a.send(frame_message(7, face, 1234.5))
        b.send(frame_message(7, wall, 99.0))
        (got_a,), (got_b,) = results(a, 1), results(b, 1)
    assert got_a["id"] == 7 and got_a["captured"] == 1234.5 and len(got_a["faces"]) == 1
    assert got_b["id"] == 7 and got_b["captured"] == 99.0 and got_b["faces"] == []
    assert "no face" in got_b["message"]
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(face, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    live = AUEstimator(weights="default", backend=BACKEND, shift_test=False)  # a live frame: no shift test
    np.testing.assert_allclose(got_a["faces"][0]["intensities"], live.predict(decoded)[0].intensities, atol=1e-3)
    assert np.abs(reference.predict(decoded)[0].intensities - got_a["faces"][0]["intensities"]).max() > 0.01


def test_live_socket_answers_malformed_messages_and_carries_on(base, astronaut):
    """The issue's row: [], not json, {"type": 5} killed the session ("no close frame")."""
    face = jpeg(face_frame(astronaut))
    with live_socket(base) as ws:
        assert json.loads(ws.recv(timeout=120))["type"] == "ready"
        for text, fragment in (
            ("[]", "JSON object"),
            ("not json", "JSON object"),
            ('{"type": 5}', "unknown command 5"),
            ("null", "JSON object"),
            ('"record"', "JSON object"),
            ("{}", "unknown command None"),
            ('{"type": "record", "on": "yes"}', '"on" must be true or false'),
            ('{"type": "record"}', '"on" must be true or false'),
            ("{" * 10000, "JSON object"),
        ):
            ws.send(text)
            (reply,) = results(ws, 1)
            assert reply["type"] == "error" and fragment in reply["message"], (text, reply)
        for data, fragment in (
            (b"", "12-byte header"),
            (b"\x00" * 12, "12-byte header"),
            (os.urandom(11), "12-byte header"),
            (HEADER.pack(3, float("nan")) + face, "capture time is not a number"),
            (HEADER.pack(4, 0.0) + os.urandom(5000), "frame 4 could not be decoded"),
            (HEADER.pack(5, 0.0) + b"\xff\xd8\xff\xe0 truncated jpeg", "frame 5 could not be decoded"),
        ):
            ws.send(data)
            (reply,) = results(ws, 1)
            assert reply["type"] == "error" and fragment in reply["message"], (data[:20], reply)
        ws.send(frame_message(6, face, 10.0))  # the session is alive and well
        (result,) = results(ws, 1)
        assert result["type"] == "result" and result["id"] == 6 and len(result["faces"]) == 1


def test_live_keeps_the_newest_frame_and_records_to_a_csv_download(base, astronaut, monkeypatch, app):
    from aumaps.serve.live import LiveSession

    analyse = LiveSession._analyse
    busy = threading.Event()

    def slow_first(self, frame_id, captured, data):  # the server is busy while frames 2-6 arrive
        if frame_id == 1:
            busy.set()
            time.sleep(0.5)
        return analyse(self, frame_id, captured, data)

    monkeypatch.setattr(LiveSession, "_analyse", slow_first)
    frames = [jpeg(face_frame(astronaut, 1.5 + 0.05 * i, 4 * i)) for i in range(6)]
    with live_socket(base) as ws:
        ready = json.loads(ws.recv(timeout=120))
        assert ready["type"] == "ready" and ready["max_recorded_rows"] == 100_000
        ws.send(frame_message(1, frames[0], 1033.0))
        assert busy.wait(timeout=60)  # frame 1 taken before the others arrive
        for i, image in enumerate(frames[1:], 2):  # faster than the server analyses
            ws.send(frame_message(i, image, 1000.0 + 33 * i))
        answered = []
        while not answered or answered[-1]["id"] != 6:
            answered += results(ws, 1)
        ids = [r["id"] for r in answered]
        assert ids == sorted(ids) and ids[-1] == 6 and ids[0] == 1
        assert len(ids) + answered[-1]["skipped"] == 6  # every frame analysed once or dropped
        assert len(ids) < 6

        ws.send(json.dumps({"type": "record", "on": True}))
        assert results(ws, 1)[0] == {"type": "recording", "on": True, "rows": 0, "max_rows": 100_000}
        recorded = []
        for i, image in enumerate(frames[:3], 10):
            ws.send(frame_message(i, image, 5000.0 + 100 * (i - 10)))
            recorded += results(ws, 1)
        ws.send(frame_message(20, b"\xff\xd8 not a jpeg", 0.0))
        (bad,) = results(ws, 1)
        assert bad["type"] == "error" and "frame 20" in bad["message"]
        ws.send(json.dumps({"type": "record", "on": False}))
        (stop,) = results(ws, 1)
    assert stop["type"] == "recording" and stop["rows"] == 3 and "csv" not in stop  # no CSV in a socket message
    status, headers, body = request(f"{base}{stop['url']}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert re.search(r"aumaps-live-\d{4}-\d\d-\d\d-\d{6}\.csv", headers["Content-Disposition"])
    table = pd.read_csv(io.BytesIO(body))
    assert list(table.columns) == csv_columns(AUS)
    assert table["frame"].tolist() == [1, 2, 3] and table["timestamp"].tolist() == [0.0, 0.1, 0.2]
    np.testing.assert_allclose(
        table[[f"AU{a:02d}_r" for a in AUS]].to_numpy(), [r["faces"][0]["intensities"] for r in recorded], atol=1e-4
    )
    assert request(f"{base}{stop['url']}", method="DELETE")[0] == 200
    assert request(f"{base}{stop['url']}")[0] == 410
    assert not list(app.state.folder.path.glob("recording-*"))


def test_the_recording_cap_is_announced_before_it_is_reached(tmp_path, astronaut):
    app = create_app("default", backend=BACKEND, preload=False, upload_dir=tmp_path, token=TOKEN, max_recorded_rows=10)
    face = jpeg(face_frame(astronaut))
    with running(app) as base, live_socket(base) as ws:
        assert json.loads(ws.recv(timeout=120))["max_recorded_rows"] == 10
        ws.send(json.dumps({"type": "record", "on": True}))
        assert results(ws, 1)[0]["max_rows"] == 10  # announced as recording starts
        news = []
        for i in range(1, 12):
            ws.send(frame_message(i, face, 100.0 * i))
            news += [m for m in results(ws, 2 if i in (9, 10) else 1) if m["type"] == "recording"]
        warning, stopped = news
        assert warning["on"] and warning["rows"] == 9 and "10 rows" in warning["warning"]  # 90 %: before the cap
        assert not stopped["on"] and stopped["rows"] == 10 and "cap of 10 rows" in stopped["message"]
        status, _, body = request(f"{base}{stopped['url']}")
        assert status == 200 and len(pd.read_csv(io.BytesIO(body))) == 10


def test_live_views_stay_live_while_a_12_megapixel_photo_is_analysed(base, astronaut):
    """Frames per second of a live session, alone and while a 12-MP photo is analysed (its face
    search takes seconds): before, the photo held the live sessions' lock throughout (0 frames)."""
    photo = twelve_megapixel_photo(astronaut)
    frame = jpeg(face_frame(astronaut))

    def rate(ws, stop: threading.Event | None = None, seconds: float = 3.0) -> tuple[float, int]:
        count, start = 0, time.perf_counter()
        while (stop is None and time.perf_counter() - start < seconds) or (stop is not None and not stop.is_set()):
            ws.send(frame_message(count + 100, frame, 0.0))
            assert results(ws, 1)[0]["type"] == "result"
            count += 1
        return count / (time.perf_counter() - start), count

    with live_socket(base) as ws:
        assert json.loads(ws.recv(timeout=120))["type"] == "ready"
        rate(ws, seconds=1.0)  # warm-up
        idle, _ = rate(ws)
        done, answer = threading.Event(), {}

        def analyse_photo():
            try:  # a failed request must end the live loop below, not leave it running forever
                # seconds on an idle machine; minutes with training runs on both cores (liveness
                # is the question here, not speed)
                url, kind = f"{base}/api/photos?name=twelve.jpg", {"Content-Type": "application/octet-stream"}
                answer["reply"] = request(url, photo, "POST", kind, timeout=600)
            except Exception as error:  # reported by the assertion below
                answer["error"] = error
            finally:
                done.set()

        worker = threading.Thread(target=analyse_photo)
        started = time.perf_counter()
        worker.start()
        busy, frames = rate(ws, stop=done)
        photo_seconds = time.perf_counter() - started
        worker.join()
    assert "reply" in answer, f"the 12-MP photo's request failed: {answer.get('error')!r}"
    status, _, body = answer["reply"]
    assert status == 200 and len(as_json(body)["faces"]) == 1 and as_json(body)["width"] == 4000
    print(
        f"live frames/s: idle {idle:.1f}, while a 12-MP photo is analysed ({photo_seconds:.1f} s) {busy:.1f} "
        f"({busy / idle:.0%})"
    )
    assert photo_seconds > 1.0 and frames >= 5
    assert busy >= 0.4 * idle, (idle, busy)  # the benchmark's figure: >= 70 % on an unloaded machine


def test_server_survives_clients_that_vanish(base, astronaut, grace_hopper_path):
    face = jpeg(face_frame(astronaut))
    for abrupt in (False, True, False, True):  # leave mid-stream: frames sent, results never read
        with contextlib.suppress(OSError, ConnectionError), live_socket(base) as client:
            client.recv(timeout=120)
            for i in range(3):
                client.send(frame_message(i + 1, face))
            if abrupt:  # the TCP connection drops, no closing handshake
                client.socket.shutdown(socket.SHUT_RDWR)
    with live_socket(base, "?model=nope") as client:
        message = json.loads(client.recv(timeout=30))
        assert message["type"] == "error" and "no model 'nope'" in message["message"]
    with live_socket(base) as client:
        client.recv(timeout=120)
        client.send(frame_message(1, face))
        assert len(results(client, 1)[0]["faces"]) == 1
    assert post(f"{base}/api/photos?name=gh.jpg", grace_hopper_path.read_bytes())[0] == 200
