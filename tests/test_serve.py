"""``aumaps serve`` over HTTP and WebSockets: the app runs on a free port and is spoken to as a
browser would (raw-body uploads, JSON, CSV, WebSocket frames). Numbers are compared with
the Python API's on the same images; errors must name the file or field."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aumaps.aus import get_au
from aumaps.images import read_image
from aumaps.model import AUHourglass
from aumaps.predict import AUEstimator
from aumaps.results import csv_columns
from aumaps.serve import create_app
from aumaps.serve.live import HEADER
from aumaps.serve.security import access_token, display_name, is_loopback
from aumaps.visualise import overlay
from aumaps.weights import save_checkpoint

AUS = (6, 10, 12, 14, 17)
BACKEND = "torch"  # the float32 reference: no engine to build, numbers comparable exactly


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


def request(url: str, data: bytes | None = None, method: str | None = None, headers: dict | None = None):
    """(status, headers, body bytes) of one HTTP request; 4xx/5xx are returned, not raised."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def post(url: str, data: bytes, **headers):
    return request(url, data, "POST", {"Content-Type": "application/octet-stream", **headers})


def as_json(body: bytes):
    return json.loads(body.decode())


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def face_frame(astronaut: np.ndarray, scale: float = 1.6, dx: float = 0.0, size=(640, 480)) -> np.ndarray:
    """A webcam-sized RGB frame with the astronaut's face (about 150 px) near the middle."""
    matrix = np.float64([[scale, 0, size[0] / 2 + dx - 215 * scale], [0, scale, size[1] / 2 - 125 * scale]])
    return cv2.warpAffine(astronaut, matrix, size, borderValue=(90, 90, 90))


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
    model = AUHourglass(num_aus=5, num_stacks=1, depth=2, width=32)
    save_checkpoint(folder / "tiny.pt", model, aus=AUS, card={"name": "tiny test model", "trained_on": "nothing"})
    (folder / "junk.pt").write_bytes(b"not a checkpoint")
    (folder / "readme.txt").write_text("not offered")
    return folder


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    return create_app("default", models=models_dir, backend=BACKEND, max_upload_mb=50,
                      upload_dir=tmp_path_factory.mktemp("uploads"))


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
    assert photo["aus"][2]["name"] == "Lip Corner Puller" and photo["aus"][2]["colour"].startswith("#")
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
    expected = np.round(np.clip(want.heatmaps / 5, 0, 1) * 255)
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
    np.testing.assert_allclose(table[[f"AU{a:02d}_r" for a in AUS]].to_numpy()[0], photo["faces"][0]["intensities"],
                               atol=1e-4)

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
    assert status == 415 and "cannot open 'broken.mp4' as a video" in as_json(body)["error"]
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
    status, _, body = request(f"{base}/api/jobs/{job_id}", method="DELETE")
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
    status, _, body = request(f"{base}/api/jobs/{ids[2]}", method="DELETE")
    assert status == 200
    finished = {i: wait_for_job(base, i) for i in ids}
    assert finished[ids[0]]["state"] == finished[ids[1]]["state"] == "done"
    assert finished[ids[2]]["state"] == "cancelled"
    assert len(set(ids)) == 3 and all(len(i) >= 16 for i in ids)  # unguessable handles


# -- access ---------------------------------------------------------------------------------
def test_token_is_needed_on_every_request_and_socket(tmp_path):
    app = create_app("default", token="s3cret-token", backend=BACKEND, preload=False, upload_dir=tmp_path)
    with running(app) as base:
        status, _, body = request(f"{base}/api/config")
        assert status == 403 and b"access token" in body
        assert request(f"{base}/api/config?token=wrong")[0] == 403
        assert request(f"{base}/api/config?token=s3cret-token")[0] == 200
        assert request(f"{base}/api/config", headers={"Authorization": "token s3cret-token"})[0] == 200
        assert request(f"{base}/static/app.js")[0] == 403
        # the printed URL: the token goes into a cookie, out of the address bar
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"{base}/?token=s3cret-token&tab=live", timeout=30) as response:
            assert response.status == 200 and response.url == f"{base}/?tab=live"
            assert b"aumaps" in response.read()
        with opener.open(f"{base}/static/app.js", timeout=30) as response:
            assert response.status == 200
        ws = base.replace("http", "ws")
        with pytest.raises(InvalidStatus):
            connect(f"{ws}/ws/live", open_timeout=30).close()
        with connect(f"{ws}/ws/live?token=s3cret-token", open_timeout=30) as socket_:
            assert json.loads(socket_.recv(timeout=120))["type"] == "ready"


def test_loopback_server_refuses_other_hosts_and_sites(base, grace_hopper_path):
    status, _, body = request(f"{base}/api/config", headers={"Host": "attacker.example:8000"})
    assert status == 403 and b"localhost" in body  # DNS rebinding
    status, _, body = post(f"{base}/api/photos?name=x.jpg", grace_hopper_path.read_bytes(),
                           Origin="http://attacker.example")
    assert status == 403 and b"attacker.example" in body
    for origin in ("http://attacker.example", "null"):  # "null": a sandboxed frame of any site
        with pytest.raises(InvalidStatus):
            connect(f"{base.replace('http', 'ws')}/ws/live", origin=origin, open_timeout=30).close()


def test_the_address_decides_the_token():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert access_token("127.0.0.1", None) is None
    made = access_token("0.0.0.0", None)
    assert made and len(made) >= 32 and made != access_token("0.0.0.0", None)
    assert access_token("127.0.0.1", "mine") == "mine"
    with pytest.raises(ValueError, match="empty"):
        access_token("0.0.0.0", "")


def test_upload_limit_is_enforced_while_reading(tmp_path, grace_hopper_path):
    app = create_app("default", max_upload_mb=0.02, backend=BACKEND, preload=False, upload_dir=tmp_path)
    with running(app) as base:
        status, _, body = post(f"{base}/api/photos?name=big.jpg", grace_hopper_path.read_bytes())
        assert status == 413
        message = as_json(body)["error"]
        assert "'big.jpg'" in message and "0.02 MB" in message and "--max-upload-mb" in message
        # no announced length (chunked): cut off while streaming
        chunks = (grace_hopper_path.read_bytes()[i:i + 4096] for i in range(0, 65536, 4096))
        status, _, body = post(f"{base}/api/jobs?name=big.avi", chunks)  # urllib sends it chunked
        assert status == 413 and "'big.avi'" in as_json(body)["error"]
        assert list(app.state.folder.path.iterdir()) == []
    assert not app.state.folder.path.exists()


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
    ws = base.replace("http", "ws") + "/ws/live?model=default"
    with connect(ws, open_timeout=30) as a, connect(ws, open_timeout=30) as b:
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
    np.testing.assert_allclose(got_a["faces"][0]["intensities"], reference.predict(decoded)[0].intensities, atol=1e-3)


def test_live_keeps_the_newest_frame_and_records(base, astronaut, monkeypatch):
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
    with connect(base.replace("http", "ws") + "/ws/live", open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=120))["type"] == "ready"
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
        assert results(ws, 1)[0] == {"type": "recording", "on": True, "rows": 0}
        recorded = []
        for i, image in enumerate(frames[:3], 10):
            ws.send(frame_message(i, image, 5000.0 + 100 * (i - 10)))
            recorded += results(ws, 1)
        ws.send(frame_message(20, b"\xff\xd8 not a jpeg", 0.0))
        (bad,) = results(ws, 1)
        assert bad["type"] == "error" and "frame 20" in bad["message"]
        ws.send(json.dumps({"type": "record", "on": False}))
        (stop,) = results(ws, 1)
    assert stop["type"] == "recording" and stop["rows"] == 3
    table = pd.read_csv(io.StringIO(stop["csv"]))
    assert list(table.columns) == csv_columns(AUS)
    assert table["frame"].tolist() == [1, 2, 3] and table["timestamp"].tolist() == [0.0, 0.1, 0.2]
    np.testing.assert_allclose(table[[f"AU{a:02d}_r" for a in AUS]].to_numpy(),
                               [r["faces"][0]["intensities"] for r in recorded], atol=1e-4)


def test_server_survives_clients_that_vanish(base, astronaut, grace_hopper_path):
    face = jpeg(face_frame(astronaut))
    ws = base.replace("http", "ws") + "/ws/live"
    for abrupt in (False, True, False, True):  # leave mid-stream: frames sent, results never read
        with contextlib.suppress(OSError, ConnectionError), connect(ws, open_timeout=30) as client:
            client.recv(timeout=120)
            for i in range(3):
                client.send(frame_message(i + 1, face))
            if abrupt:  # the TCP connection drops, no closing handshake
                client.socket.shutdown(socket.SHUT_RDWR)
    with connect(ws + "?model=nope", open_timeout=30) as client:
        message = json.loads(client.recv(timeout=30))
        assert message["type"] == "error" and "no model 'nope'" in message["message"]
    with connect(ws, open_timeout=30) as client:
        client.recv(timeout=120)
        client.send(frame_message(1, face))
        assert len(results(client, 1)[0]["faces"]) == 1
    assert post(f"{base}/api/photos?name=gh.jpg", grace_hopper_path.read_bytes())[0] == 200
