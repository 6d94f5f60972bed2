"""Live webcam speed of ``aumaps serve``: frames drawn per second in the page, and the delay
from capture to drawn result, in a real (headless) Chromium; then the same while 12-megapixel
photos are analysed on the same server, one after the other (the live view must keep at
least 70 % of its idle frame rate: photos run below the live views' priority and hold the
shared network's lock for a few faces at a time).

    python benchmarks/bench_serve.py [--seconds 20] [--warmup 5] [--weights default] [--backend auto]
                                     [--no-photos]

The camera: Chromium's fake camera playing a 640×480 clip offered at 30 frames/s (written to
a temporary folder): scikit-image's astronaut, zoomed so that her face is about 150-200
pixels wide, sliding and zooming as a person in front of a webcam does. The page does what
it does for a person: grabs each camera frame, sends it as JPEG over the WebSocket when the
socket is free, and draws each result (the frame analysed, its AU maps, box, bars and the
time series) when it comes back. The server (in this process, uvicorn on a free port) runs
the model ``aumaps serve`` would (``--weights``, ``--backend auto``), with face tracking.

Printed beside the goals (≥ 15 frames/s drawn, ≤ 150 ms):

* **frames/s drawn**: results drawn in the page per second over ``--seconds``, after
  ``--warmup`` seconds;
* **capture → drawn**: from the moment the page grabbed a frame to the moment its result
  was drawn (JPEG encoding, transfer, decoding, tracking, network, readout, JSON, drawing),
  median and 95th percentile;
* the server's own time per frame, and how many offered frames were dropped (the newest
  frame wins);
* **under a photo**: frames/s drawn over another ``--seconds`` while 4000×3000 JPEGs (the
  astronaut's face about 700 pixels wide, as in a phone portrait) are posted to
  ``/api/photos`` back to back, beside the idle figure and their ratio (goal ≥ 70 %), and
  how long each photo took.

Browser and server share the machine, as on a person's laptop. On a machine shared with
other work the figures are lower than on an idle one: the first line names the CPU.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from aumaps.hardware import describe_machine
from aumaps.serve import create_app

GOAL_FPS, GOAL_LATENCY_MS, GOAL_UNDER_PHOTO = 15.0, 150.0, 0.70
TOKEN = secrets.token_urlsafe(32)


def twelve_megapixel_jpeg() -> bytes:
    """A 4000 x 3000 JPEG, the astronaut's face about 700 pixels wide (a phone portrait)."""
    canvas = np.full((3000, 4000, 3), 120, np.uint8)
    canvas[300:2700, 800:3200] = cv2.resize(data.astronaut(), (2400, 2400), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def post_photos(url: str, photo: bytes, stop: threading.Event, seconds: list[float]) -> None:
    """Post ``photo`` to the server again and again until ``stop``; each analysis's duration."""
    while not stop.is_set():
        request = urllib.request.Request(
            f"{url}/api/photos?name=twelve.jpg",
            photo,
            method="POST",
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/octet-stream"},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            faces = len(json.loads(response.read())["faces"])
        seconds.append(time.perf_counter() - start)
        if faces != 1:
            raise SystemExit(f"the 12-MP photo gave {faces} faces, not 1")


def camera_clip(path: Path, frames: int = 90, fps: int = 30) -> Path:
    """The fake camera's clip (YUV4MPEG2, what Chromium reads), one face in motion."""
    astronaut = data.astronaut()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            t = i / frames
            scale = 1.6 + 0.5 * np.sin(np.pi * t)
            dx, dy = 30 * np.sin(2 * np.pi * t), 10 * np.cos(2 * np.pi * t)
            matrix = np.float64([[scale, 0, 320 + dx - 215 * scale], [0, scale, 240 + dy - 125 * scale]])
            rgb = cv2.warpAffine(astronaut, matrix, (640, 480), borderValue=(90, 90, 90))
            out.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def start_server(app) -> tuple[str, object, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def chromium(profile: Path, camera: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of live view before measuring")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "fast", "onnx", "openvino", "int8"])
    parser.add_argument("--no-photos", action="store_true", help="skip the measurement under a 12-MP photo")
    args = parser.parse_args()
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        raise SystemExit("needs Chromium and its driver: apt-get install chromium chromium-driver")

    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        camera = camera_clip(tmp / "camera.y4m")
        start = time.perf_counter()
        app = create_app(args.weights, backend=args.backend, upload_dir=tmp, preload=False, token=TOKEN)
        app.state.catalogue.shared(None)  # the model and its engine, outside the timings
        print(
            f"model {args.weights}: {app.state.catalogue.get(None).card.get('engine')} "
            f"(loaded in {time.perf_counter() - start:.1f} s)"
        )
        url, server, thread = start_server(app)
        driver = chromium(tmp / "profile", camera)
        try:
            driver.get(f"{url}/?tab=live&token={TOKEN}")  # as the printed address: the token becomes a cookie
            while driver.execute_script("return document.body.dataset.ready") != "true":
                time.sleep(0.1)
            driver.find_element("id", "live-start").click()
            deadline = time.monotonic() + 120
            while not driver.execute_script("return window.aumapsLive.drawn >= 3"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"no result drawn: {driver.execute_script('return window.aumapsLive.error')}")
                time.sleep(0.1)
            time.sleep(args.warmup)
            read = (
                "const s = window.aumapsLive; return [performance.now(), s.drawn, s.sent, s.latencies.length, "
                "s.last ? s.last.skipped : 0];"
            )
            t0, drawn0, sent0, n0, skipped0 = driver.execute_script(read)
            time.sleep(args.seconds)
            t1, drawn1, sent1, n1, skipped1 = driver.execute_script(read)
            latencies = np.array(driver.execute_script(f"return window.aumapsLive.latencies.slice({n0}, {n1})"))
            server_ms = np.array(driver.execute_script(f"return window.aumapsLive.serverMs.slice({n0}, {n1})"))
            faces = driver.execute_script("return window.aumapsLive.last.faces")
            photo_seconds: list[float] = []
            if not args.no_photos:
                stop = threading.Event()
                poster = threading.Thread(
                    target=post_photos, args=(url, twelve_megapixel_jpeg(), stop, photo_seconds), daemon=True
                )
                poster.start()
                time.sleep(1.0)  # the first photo is being searched for faces
                p0, pdrawn0 = driver.execute_script(read)[:2]
                time.sleep(args.seconds)
                p1, pdrawn1 = driver.execute_script(read)[:2]
                stop.set()
                poster.join(timeout=600)
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(timeout=30)

    seconds = (t1 - t0) / 1000
    fps = (drawn1 - drawn0) / seconds
    median, p95 = np.median(latencies), np.percentile(latencies, 95)
    print(
        f"camera: 640x480 offered at 30 frames/s for {seconds:.1f} s (after {args.warmup:g} s of warm-up); "
        f"faces in the last result: {faces}"
    )
    print(
        f"frames/s drawn in the page:    {fps:6.1f}   goal >= {GOAL_FPS:g}   {'met' if fps >= GOAL_FPS else 'NOT met'}"
    )
    print(
        f"capture -> drawn, median:      {median:6.0f} ms   goal <= {GOAL_LATENCY_MS:g} ms   "
        f"{'met' if median <= GOAL_LATENCY_MS else 'NOT met'}"
    )
    print(f"capture -> drawn, 95th pct:    {p95:6.0f} ms")
    if not args.no_photos:
        busy = (pdrawn1 - pdrawn0) / ((p1 - p0) / 1000)
        print(
            f"frames/s drawn while 12-MP photos are analysed: {busy:6.1f}   idle {fps:.1f}   "
            f"{busy / fps:.0%} of idle   goal >= {GOAL_UNDER_PHOTO:.0%}   "
            f"{'met' if busy >= GOAL_UNDER_PHOTO * fps else 'NOT met'}"
        )
        print(
            f"12-MP photos analysed meanwhile: {len(photo_seconds)}, "
            + ", ".join(f"{t:.1f} s" for t in photo_seconds)
            + " each (4000x3000 JPEG, one face)"
        )
    print(
        f"server time per frame: median {np.median(server_ms):.0f} ms, "
        f"95th pct {np.percentile(server_ms, 95):.0f} ms; "
        f"frames sent {(sent1 - sent0) / seconds:.1f}/s, dropped by the server (newest wins) "
        f"{(skipped1 - skipped0) / seconds:.1f}/s"
    )


if __name__ == "__main__":
    main()
