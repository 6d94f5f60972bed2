"""``aumaps serve`` in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium; no browser is downloaded): a photo dropped on the page, a video job
followed to its report and played, and the live view fed by Chromium's fake camera from a
clip written here from two real faces; then the same with a 17-AU model (OpenFace's set), its
bars, toggles and series grouped by face region. Screenshots are kept in the test's folder;
with ``AUMAPS_UPDATE_SCREENSHOTS=1`` a live one also replaces ``docs/images/serve.png`` (the
README's picture): the 17-AU one when ``AUMAPS_SCREENSHOT_WEIGHTS`` names a trained 17-AU
checkpoint (the 17-AU tests use it instead of a random network), else the default model's."""

from __future__ import annotations

import json
import os
import shutil
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from aumaps.aus import AU_SETS
from aumaps.images import read_image
from aumaps.predict import AUEstimator
from aumaps.results import csv_columns
from aumaps.serve import create_app
from aumaps.serve.security import cookie_value, write_open_file
from test_serve import AUS, BACKEND, TOKEN, face_frame, running, write_clip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs Selenium (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Chromium and its driver (apt-get install chromium chromium-driver); not installable here",
)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve.png"
CAMERA_FPS = 30
#: A trained 17-AU checkpoint for the 17-AU tests and the README's picture (else a random network).
WEIGHTS17_ENV = "AUMAPS_SCREENSHOT_WEIGHTS"
OPENFACE = tuple(AU_SETS["openface"])
UPPER = tuple(a for a in OPENFACE if a in (1, 2, 4, 5, 6, 7, 45))


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = CAMERA_FPS) -> Path:
    """Frames (RGB) as a YUV4MPEG2 clip, the format of Chromium's fake camera."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def camera_frames(astronaut: np.ndarray, grace_hopper: np.ndarray, count: int = 60) -> list[np.ndarray]:
    """640×480: the smiling astronaut zooming in and sliding (first half), then Grace Hopper
    (second half); the camera loops it, so the smile (AU12) comes and goes."""
    frames = []
    for i in range(count):
        t = i / count
        dx = 25 * np.sin(2 * np.pi * t)
        if i < count // 2:
            frames.append(face_frame(astronaut, 1.6 + 0.6 * t, dx))
        else:
            s = 0.75 + 0.2 * (t - 0.5)
            matrix = np.float64([[s, 0, 320 + dx - 268 * s], [0, s, 240 - 245 * s]])
            frames.append(cv2.warpAffine(grace_hopper, matrix, (640, 480), borderValue=(90, 90, 90)))
    return frames


def chromium(user_data: Path, camera: Path | None = None, downloads: Path | None = None):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={user_data}",
        "--window-size=1400,1150",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if camera is not None:
        flags += [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    for flag in flags:
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if downloads is not None:
        downloads.mkdir(parents=True, exist_ok=True)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture(scope="module")
def grace_hopper(grace_hopper_path) -> np.ndarray:
    return read_image(grace_hopper_path)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def base(outputs):
    app = create_app("default", backend=BACKEND, upload_dir=outputs, token=TOKEN)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def reference() -> AUEstimator:
    return AUEstimator(weights="default", backend=BACKEND)


@pytest.fixture(scope="module")
def browser(outputs, astronaut, grace_hopper):
    camera = write_y4m(outputs / "camera.y4m", camera_frames(astronaut, grace_hopper))
    driver = chromium(outputs / "profile", camera, outputs / "downloads")
    driver.set_script_timeout(60)
    yield driver
    problems = [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]
    ]
    driver.quit()
    assert not problems, problems


@pytest.fixture(scope="module")
def signed_in(browser, base):
    """The browser after its first visit with the token (the cookie does the rest)."""
    open_page(browser, f"{base}/?token={TOKEN}")
    assert "token" not in browser.current_url
    return browser


@pytest.fixture
def fresh_browser(tmp_path):
    """A browser that has never seen the server (its own profile: no cookie)."""
    driver = chromium(tmp_path / "profile")
    driver.set_script_timeout(60)
    yield driver
    problems = [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]
    ]
    driver.quit()
    assert not problems, problems


def page_ready(driver) -> bool:
    """The page has set its ready flag (right after a redirect the body may not exist yet)."""
    return driver.execute_script("return document.body?.dataset.ready === 'true'")


def wait_until_ready(driver) -> None:
    WebDriverWait(driver, 30).until(page_ready)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_until_ready(driver)


def drop(driver, zone_id: str, paths: list[Path]) -> None:
    """Drop files on an element as a person dragging them from the desktop would."""
    helper = driver.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.multiple = true;"
        "i.style.display = 'none'; document.body.append(i); return i;"
    )
    helper.send_keys("\n".join(str(p) for p in paths))
    driver.execute_script(
        "const [input, zone] = arguments; const dt = new DataTransfer();"
        "for (const f of input.files) dt.items.add(f);"
        "for (const type of ['dragenter', 'dragover', 'drop'])"
        "  zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));"
        "input.remove();",
        helper,
        driver.find_element(By.ID, zone_id),
    )


def grouped(aus) -> list[int]:
    """``aus`` as the page lists them: upper face first, each region in the model's order."""
    from aumaps.visualise import au_groups

    return [a for _, members in au_groups(aus) for a in members]


def to_fixed(value: float) -> str:
    """JavaScript's ``value.toFixed(2)``: the exact binary value rounded to two decimals, a tie
    upwards (Python's formatting takes a tie such as 0.125 to the even 0.12)."""
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def bar_values(card) -> dict[int, tuple[float, str]]:
    return {
        int(row.get_attribute("data-au")): (
            float(row.get_attribute("data-value")),
            row.find_element(By.CLASS_NAME, "bar-value").text,
        )
        for row in card.find_elements(By.CSS_SELECTOR, ".bar-row")
    }


def canvas_pixels(driver, canvas) -> np.ndarray:
    data = driver.execute_script(
        "const c = arguments[0]; return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);",
        canvas,
    )
    height, width = int(canvas.get_attribute("height")), int(canvas.get_attribute("width"))
    return np.array(data, np.uint8).reshape(height, width, 4)[..., :3]


def test_photos_dropped_on_the_page(signed_in, base, outputs, astronaut, grace_hopper_path, reference):
    browser = signed_in
    astronaut_png = outputs / "astronaut.png"
    cv2.imwrite(str(astronaut_png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    notes = outputs / "notes.jpg"
    notes.write_text("shopping list, not a photo")
    open_page(browser, base)
    drop(browser, "photo-drop", [astronaut_png, grace_hopper_path, notes])
    WebDriverWait(browser, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.photo[data-state]")) == 3)

    cards = {c.find_element(By.TAG_NAME, "h2").text: c for c in browser.find_elements(By.CSS_SELECTOR, ".card.photo")}
    error = cards["notes.jpg"]
    assert error.get_attribute("data-state") == "error"
    assert "'notes.jpg'" in error.text and "not an image" in error.text
    for name, image in (("astronaut.png", astronaut), ("grace_hopper.jpg", read_image(grace_hopper_path))):
        card = cards[name]
        assert card.get_attribute("data-state") == "done"
        want = reference.predict(image)[0].intensities
        shown = bar_values(card)
        assert list(shown) == grouped(AUS)  # the model's AUs, upper face first
        np.testing.assert_allclose([shown[a][0] for a in AUS], want, atol=1e-3)
        # the text is the bar's own value to two decimals (the value is within 1e-3 of the model's,
        # so rounding the model's own can land on the other side of a 0.005 boundary)
        assert [shown[a][1] for a in AUS] == [to_fixed(shown[a][0]) for a in AUS]
        assert "Lip Corner Puller" in card.text and "Cheek Raiser" in card.text
    rows = browser.find_elements(By.CSS_SELECTOR, "#photo-table tbody tr")
    assert sorted(r.find_element(By.TAG_NAME, "td").text for r in rows) == ["astronaut.png", "grace_hopper.jpg"]

    # the AU12 toggle takes the smile's map off the astronaut, and puts it back
    canvas = cards["astronaut.png"].find_element(By.TAG_NAME, "canvas")
    with_maps = canvas_pixels(browser, canvas)
    browser.find_element(By.CSS_SELECTOR, "#au-toggles input[data-au='12']").click()
    without_12 = canvas_pixels(browser, canvas)
    browser.find_element(By.CSS_SELECTOR, "#au-toggles input[data-au='12']").click()
    assert np.array_equal(canvas_pixels(browser, canvas), with_maps)
    changed = np.abs(with_maps.astype(int) - without_12).sum(axis=2) > 30
    peak = reference.predict(astronaut)[0].argmax[AUS.index(12)]
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 50, "switching AU12 off changed nothing"
    assert np.hypot(xs.mean() - peak[0], ys.mean() - peak[1]) < 25  # around the mouth corners
    assert browser.find_element(By.ID, "photos-csv").get_attribute("href").count(",") == 1
    browser.save_screenshot(str(outputs / "photos.png"))


def test_video_job_followed_to_its_report(signed_in, base, outputs, astronaut):
    browser = signed_in
    frames = [face_frame(astronaut, 0.9, 8 * np.sin(i / 2), size=(320, 240)) for i in range(12)]
    clip = write_clip(outputs / "talk.avi", frames)
    open_page(browser, f"{base}/?tab=videos")
    browser.find_element(By.ID, "video-input").send_keys(str(clip))
    job = WebDriverWait(browser, 180).until(lambda d: d.find_element(By.CSS_SELECTOR, ".card.job[data-state='done']"))
    assert "done: 12 frames, 12 with a face" in job.text
    job_id = job.get_attribute("data-job")
    assert f"job={job_id}" in browser.current_url

    # the overlay video plays in the page (VP8/WebM)
    video = job.find_element(By.CSS_SELECTOR, "video")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return arguments[0].readyState >= 2", video))
    width, duration, error = browser.execute_script(
        "const v = arguments[0]; return [v.videoWidth, v.duration, v.error && v.error.message];", video
    )
    assert error is None and width > 320 and duration == pytest.approx(1.2, abs=0.15)

    # the report: statistics of every AU and the peak frames
    frame = job.find_element(By.CSS_SELECTOR, "iframe")
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#au-statistics tbody tr"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#au-statistics tbody tr")) == len(AUS)
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure img")) == len(AUS)
    browser.switch_to.default_content()
    browser.save_screenshot(str(outputs / "video.png"))

    # the job survives a reload: its id is in the address
    browser.refresh()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f".card.job[data-job='{job_id}'][data-state='done']")
    )
    assert "talk.avi" in browser.find_element(By.CSS_SELECTOR, f".card.job[data-job='{job_id}']").text


def test_live_webcam_values_follow_the_camera(signed_in, base, outputs):
    browser = signed_in
    open_page(browser, f"{base}/?tab=live")
    browser.find_element(By.ID, "live-start").click()
    WebDriverWait(browser, 120).until(lambda d: d.execute_script("return window.aumapsLive.drawn >= 3"))
    smiles, seen, shot = [], set(), False
    started = time.monotonic()
    deadline = started + 45
    while time.monotonic() < deadline and not (shot and max(smiles) > min(smiles) + 0.3 and len(seen) > 10):
        value = browser.execute_script(  # the bars are redrawn with every result: read them at once
            "const row = document.querySelector(\"#live-bars .bar-row[data-au='12']\");"
            "return row ? Number(row.dataset.value) : null;"
        )
        if value is not None:
            smiles.append(value)
            seen.add(value)
            # the smiling astronaut on screen, with a few seconds of time series: the README's picture
            if value > 1.0 and not shot and time.monotonic() - started > 8:
                browser.save_screenshot(str(outputs / "live.png"))
                shot = True
        time.sleep(0.1)
    stats = browser.execute_script("return window.aumapsLive")
    assert stats["error"] is None and stats["drawn"] >= 10
    assert len(seen) > 10, "the AU values did not change with the frames"
    # the astronaut smiles, Grace Hopper less: the smile's bar follows the frames
    assert max(smiles) > 0.9 and max(smiles) > min(smiles) + 0.3, (min(smiles), max(smiles))
    assert int(browser.find_element(By.ID, "live-fps").text) > 0
    assert float(browser.find_element(By.ID, "live-latency").text) > 0
    assert shot

    # record a few seconds: the rows download over HTTP as a CSV file in the one schema
    browser.find_element(By.ID, "live-record").click()
    WebDriverWait(browser, 30).until(lambda d: "of 100,000 rows" in d.find_element(By.ID, "live-recording").text)
    assert "stops by itself" in browser.find_element(By.ID, "live-recording").text  # the cap, announced at once
    start = browser.execute_script("return window.aumapsLive.drawn")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return window.aumapsLive.drawn") >= start + 5)
    browser.find_element(By.ID, "live-record").click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.aumapsLive.recording"))
    recording = browser.execute_script("return window.aumapsLive.recording")
    assert recording["url"].startswith("/api/recordings/") and recording["filename"].endswith(".csv")
    downloaded = outputs / "downloads" / recording["filename"]
    WebDriverWait(browser, 30).until(lambda d: downloaded.is_file() and downloaded.stat().st_size > 0)
    table = pd.read_csv(downloaded)
    assert recording["rows"] == len(table) >= 5 and list(table.columns) == csv_columns(AUS)
    assert table["timestamp"].is_monotonic_increasing and (table["success"] == 1).mean() > 0.8
    assert "rows" in browser.find_element(By.ID, "live-download").text
    browser.find_element(By.ID, "live-stop").click()
    if os.environ.get("AUMAPS_UPDATE_SCREENSHOTS") and not os.environ.get(WEIGHTS17_ENV):  # the README's picture
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outputs / "live.png", DOCS_SCREENSHOT)
    print(json.dumps({"fps": stats["fps"], "median latency ms": float(np.median(stats["latencies"]))}))


def test_the_token_becomes_a_cookie_through_the_redirect_file(fresh_browser, base, tmp_path):
    """`aumaps serve` opens the browser on a local file (0600) that redirects to the address with
    the token; the page then works from an HttpOnly cookie, with no token in its address."""
    fresh_browser.get(base)
    assert "access token needed" in fresh_browser.title  # no token, no cookie: the login page (401)
    assert fresh_browser.find_elements(By.CSS_SELECTOR, "form[action='/login'] input[name=token]")
    opener = write_open_file(f"{base}/?token={TOKEN}", tmp_path)
    fresh_browser.get(opener.as_uri())
    WebDriverWait(fresh_browser, 30).until(lambda d: d.current_url == f"{base}/" and page_ready(d))
    assert fresh_browser.find_elements(By.CSS_SELECTOR, "#model option")  # the API answers the page
    port = base.rsplit(":", 1)[1]
    (cookie,) = [c for c in fresh_browser.get_cookies() if c["name"] == f"aumaps-token-{port}"]
    assert cookie["httpOnly"] and cookie["value"] == cookie_value(TOKEN) and TOKEN not in cookie["value"]
    assert fresh_browser.execute_script("return document.cookie") == ""  # scripts cannot read it
    fresh_browser.refresh()  # later visits: the cookie alone
    wait_until_ready(fresh_browser)
    config = fresh_browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/config').then(r => done(r.status));"
    )
    assert config == 200
    fresh_browser.delete_all_cookies()
    assert (
        fresh_browser.execute_async_script("const done = arguments[0]; fetch('/api/config').then(r => done(r.status));")
        == 401
    )


def test_the_login_form_takes_the_token(fresh_browser, base):
    fresh_browser.get(f"{base}/?tab=live")
    field = fresh_browser.find_element(By.CSS_SELECTOR, "input[name=token]")
    field.send_keys("not-the-token")
    field.submit()
    WebDriverWait(fresh_browser, 30).until(lambda d: "not this server's access token" in d.page_source)
    field = fresh_browser.find_element(By.CSS_SELECTOR, "input[name=token]")
    field.send_keys(TOKEN)
    field.submit()
    wait_until_ready(fresh_browser)
    assert fresh_browser.current_url == f"{base}/" and fresh_browser.find_elements(By.CSS_SELECTOR, "#model option")


# -- a 17-AU model: bars, toggles and series grouped by face region ---------------------------


@pytest.fixture(scope="module")
def weights17(tmp_path_factory) -> Path:
    """OpenFace's 17 AUs on 128-pixel crops and 32 x 32 maps, as the default model will be: the
    checkpoint $AUMAPS_SCREENSHOT_WEIGHTS names (a trained one, for the README's picture), else a
    small random network whose AUs read between about 0 and 4."""
    import torch

    from aumaps.codec import AUHeatmapCodec
    from aumaps.model import AUHourglass
    from aumaps.weights import load_checkpoint, save_checkpoint

    if os.environ.get(WEIGHTS17_ENV):
        path = Path(os.environ[WEIGHTS17_ENV])
        assert tuple(load_checkpoint(path).aus) == OPENFACE, f"{path} is not a 17-AU model"
        return path
    torch.manual_seed(0)
    model = AUHourglass(num_aus=len(OPENFACE), num_stacks=1, depth=2, width=32)
    with torch.no_grad():
        model.l0.bias.copy_(torch.linspace(-0.5, 3.5, len(OPENFACE)))
    path = tmp_path_factory.mktemp("w17") / "openface17.pt"
    save_checkpoint(
        path,
        model,
        aus=OPENFACE,
        codec=AUHeatmapCodec("openface", crop_size=128, map_size=32).to_dict(),
        card={"name": "random 17-AU test model", "trained_on": "nothing"},
    )
    return path


@pytest.fixture(scope="module")
def base17(outputs, weights17):
    app = create_app(weights17, backend=BACKEND, upload_dir=outputs, token=TOKEN)
    with running(app) as url:
        yield url


def region_rows(card, region: str) -> list[int]:
    return [
        int(r.get_attribute("data-au"))
        for r in card.find_elements(By.CSS_SELECTOR, f".bar-group[data-region='{region}'] .bar-row")
    ]


def test_seventeen_aus_grouped_on_the_photos_page(signed_in, base17, outputs, astronaut, weights17):
    """Bars, check boxes and the table grouped upper face / lower face; a group's box switches
    its AUs' maps off and on; the values are the Python API's."""
    browser = signed_in
    open_page(browser, f"{base17}/?token={TOKEN}")
    astronaut_png = outputs / "astronaut17.png"
    cv2.imwrite(str(astronaut_png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    drop(browser, "photo-drop", [astronaut_png])
    card = WebDriverWait(browser, 120).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".card.photo[data-state='done']")
    )
    assert region_rows(card, "upper") == list(UPPER) == [1, 2, 4, 5, 6, 7, 45]
    assert region_rows(card, "lower") == [a for a in OPENFACE if a not in UPPER]
    assert [h.text for h in card.find_elements(By.CSS_SELECTOR, ".bar-group h5")] == ["UPPER FACE", "LOWER FACE"]
    want = dict(zip(OPENFACE, AUEstimator(weights=weights17, backend=BACKEND).predict(astronaut)[0].intensities))
    shown = bar_values(card)
    np.testing.assert_allclose([shown[a][0] for a in OPENFACE], [want[a] for a in OPENFACE], atol=1e-3)
    assert "Inner Brow Raiser" in card.text and "Blink" in card.text and "Jaw Drop" in card.text

    # the check boxes: two groups, each with a box for the whole group
    groups = browser.find_elements(By.CSS_SELECTOR, "#au-toggles fieldset.toggle-group")
    assert [g.get_attribute("data-region") for g in groups] == ["upper", "lower"]
    assert [
        int(i.get_attribute("data-au")) for i in groups[0].find_elements(By.CSS_SELECTOR, "input[data-au]")
    ] == sorted(UPPER)
    assert "Upper face" in groups[0].find_element(By.TAG_NAME, "legend").text
    # the table: a header row of regions spanning their AUs
    spans = {
        th.get_attribute("data-region"): int(th.get_attribute("colspan"))
        for th in browser.find_elements(By.CSS_SELECTOR, "#photo-table tr.groups th[data-region]")
    }
    assert spans == {"upper": 7, "lower": 10}

    canvas = card.find_element(By.TAG_NAME, "canvas")
    with_maps = canvas_pixels(browser, canvas)
    upper_box = browser.find_element(By.CSS_SELECTOR, "#au-toggles input[data-region='upper']")
    assert upper_box.is_selected()
    upper_box.click()  # the whole upper face off
    boxes = groups[0].find_elements(By.CSS_SELECTOR, "input[data-au]")
    assert not any(b.is_selected() for b in boxes)
    assert all(
        "off" in r.get_attribute("class").split()
        for r in card.find_elements(By.CSS_SELECTOR, ".bar-group[data-region='upper'] .bar-row")
    )
    assert not any(
        "off" in r.get_attribute("class").split()
        for r in card.find_elements(By.CSS_SELECTOR, ".bar-group[data-region='lower'] .bar-row")
    )
    without_upper = canvas_pixels(browser, canvas)
    if any(want[a] >= 0.5 for a in UPPER):  # an upper-face AU was drawn: its map is gone now
        assert (np.abs(with_maps.astype(int) - without_upper).sum(axis=2) > 30).sum() > 50
    boxes[0].click()  # one AU back on: the group's box is mixed
    assert browser.execute_script("return arguments[0].indeterminate", upper_box) and not upper_box.is_selected()
    upper_box.click()  # all on again: the picture as it was
    assert all(b.is_selected() for b in boxes) and upper_box.is_selected()
    assert np.array_equal(canvas_pixels(browser, canvas), with_maps)
    browser.save_screenshot(str(outputs / "photos17.png"))


def test_seventeen_aus_of_a_group_photo_in_one_table(signed_in, base17, outputs, astronaut, grace_hopper, weights17):
    """A photo of two people: one table, an AU per row grouped by face region, a face per column,
    each cell the Python API's value for that face."""
    browser = signed_in
    open_page(browser, f"{base17}/?token={TOKEN}")
    hopper = cv2.resize(grace_hopper, (int(grace_hopper.shape[1] * 512 / grace_hopper.shape[0]), 512))
    group = np.concatenate([astronaut, hopper], axis=1)
    path = outputs / "two people.png"
    cv2.imwrite(str(path), cv2.cvtColor(group, cv2.COLOR_RGB2BGR))
    drop(browser, "photo-drop", [path])
    card = WebDriverWait(browser, 120).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".card.photo[data-state='done'] .face-bars").find_element(
            By.XPATH, "ancestor::div[contains(@class, 'card')]"
        )
    )
    expected = {
        f.face_id: dict(zip(OPENFACE, f.intensities))
        for f in AUEstimator(weights=weights17, backend=BACKEND).predict(group)
    }
    assert len(expected) == 2
    table = card.find_element(By.CSS_SELECTOR, "table.face-bars")
    assert [
        int(th.get_attribute("data-face")) for th in table.find_elements(By.CSS_SELECTOR, "thead th[data-face]")
    ] == sorted(expected)
    assert [b.get_attribute("data-region") for b in table.find_elements(By.TAG_NAME, "tbody")] == ["upper", "lower"]
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr[data-au]")
    assert [int(r.get_attribute("data-au")) for r in rows] == grouped(OPENFACE)
    shown = {
        (int(td.get_attribute("data-face")), int(r.get_attribute("data-au"))): float(td.get_attribute("data-value"))
        for r in rows
        for td in r.find_elements(By.TAG_NAME, "td")
    }
    assert len(shown) == 2 * len(OPENFACE)
    for (face_id, au), value in shown.items():
        assert value == pytest.approx(expected[face_id][au], abs=1e-3), (face_id, au)
    assert not card.find_elements(By.CSS_SELECTOR, ".bars")  # no list of bars per face beside it
    browser.save_screenshot(str(outputs / "group17.png"))


def test_seventeen_aus_live_series_per_face_region(signed_in, base17, outputs):
    """The live view with 17 AUs: bars grouped, the last 20 seconds in two panels (upper and lower
    face) with a line per AU switched on; a group's box takes its lines out and puts them back."""
    browser = signed_in
    open_page(browser, f"{base17}/?tab=live&token={TOKEN}")
    browser.find_element(By.ID, "live-start").click()
    WebDriverWait(browser, 120).until(lambda d: d.execute_script("return window.aumapsLive.drawn >= 3"))
    panels = browser.execute_script("return window.aumapsLive.panels")
    assert [(p["region"], p["aus"]) for p in panels] == [
        ("upper", list(UPPER)),
        ("lower", [a for a in OPENFACE if a not in UPPER]),
    ]
    bars = browser.execute_script(  # redrawn with every result: read them at once
        "return [...document.querySelectorAll('#live-bars .bar-group')].map("
        "  (g) => [g.dataset.region, [...g.querySelectorAll('.bar-row')].map((r) => Number(r.dataset.au))]);"
    )
    assert bars == [["upper", list(UPPER)], ["lower", [a for a in OPENFACE if a not in UPPER]]]
    assert browser.find_element(By.ID, "live-aus-count").text == "all 17"
    browser.find_element(By.CSS_SELECTOR, "#live-aus summary").click()  # the check boxes' fold
    lower = browser.find_element(By.CSS_SELECTOR, "#live-toggles input[data-region='lower']")
    lower.click()
    assert browser.find_element(By.ID, "live-aus-count").text == "7 of 17"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.aumapsLive.panels[1].aus.length === 0"))
    assert browser.execute_script("return window.aumapsLive.panels[0].aus.length") == len(UPPER)
    lower.click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.aumapsLive.panels[1].aus.length === 10"))
    browser.find_element(By.CSS_SELECTOR, "#live-aus summary").click()  # folded again, for the picture
    # a few seconds of series for the picture (15 for the README's), then stop
    docs = bool(os.environ.get("AUMAPS_UPDATE_SCREENSHOTS") and os.environ.get(WEIGHTS17_ENV))
    start, began = browser.execute_script("return window.aumapsLive.drawn"), time.monotonic()
    while (
        time.monotonic() < began + 20
        and browser.execute_script("return window.aumapsLive.drawn") < start + 60
        or docs
        and time.monotonic() < began + 15
    ):
        time.sleep(0.5)
    stats = browser.execute_script("return window.aumapsLive")
    assert stats["error"] is None and stats["drawn"] > start
    series = canvas_pixels(browser, browser.find_element(By.ID, "live-series"))
    assert series.shape[1] == 900 and (series != 0).any()
    browser.save_screenshot(str(outputs / "live17.png"))
    browser.find_element(By.ID, "live-stop").click()
    if docs:  # the README's picture
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outputs / "live17.png", DOCS_SCREENSHOT)
