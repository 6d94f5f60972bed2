"""The video report and the study page with OpenFace's 17 AUs: the statistics table, the peak
frames and the study page's columns are grouped by face region (upper face, lower face), in
the order the pictures and the browser app use; five AUs keep their one group."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from aumaps.aus import AU_SETS, column_name
from aumaps.report import PeakFrames, StudyVideo, write_report, write_study_page
from aumaps.results import FrameResult
from test_video import _check_html
from test_visualise import _face17

OPENFACE = tuple(AU_SETS["openface"])
UPPER = [1, 2, 4, 5, 6, 7, 45]
LOWER = [9, 10, 12, 14, 15, 17, 20, 23, 25, 26]


def _series(frames: int = 30, faces: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for frame in range(1, frames + 1):
        for face_id in range(faces):
            row = {"frame": frame, "timestamp": (frame - 1) / 10, "face_id": face_id, "success": 1}
            row.update({column_name(a): float(rng.uniform(0, 5)) for a in OPENFACE})
            rows.append(row)
    return pd.DataFrame(rows)


def test_a_17_au_report_groups_its_statistics_and_peaks_by_face_region(tmp_path):
    table = _series()
    peaks = PeakFrames(OPENFACE, size=120)
    image = np.full((240, 320, 3), 90, np.uint8)
    for k in range(3):  # three frames, the face's AUs strongest in a different one each
        values = {a: (1.0 + k + (a % 3 == k)) for a in OPENFACE}
        peaks.update(FrameResult(index=k, timestamp=k / 10, faces=[_face17(0, 40.0, values)], image=image))
    page = write_report(tmp_path / "report", table, OPENFACE, peaks=peaks, title="clip.mp4").read_text()
    _check_html(page)

    statistics = page.split('<table id="au-statistics">', 1)[1].split("</table>", 1)[0]
    assert statistics.count("<tr>") == 1 + 2 * len(OPENFACE)  # a row per face and AU, as with 5 AUs
    assert statistics.count('scope="rowgroup" rowspan="7">Upper face</th>') == 2  # once per face
    assert statistics.count('scope="rowgroup" rowspan="10">Lower face</th>') == 2
    listed = [int(n) for n in re.findall(r'<td class="name"><span[^>]*></span>AU(\d\d)', statistics)]
    assert listed == (UPPER + LOWER) * 2
    # the numbers are still each AU's own: AU45 of face 1
    row45 = next(r for r in statistics.split("<tr>") if r.startswith("<td>1</td>") and "AU45 Blink" in r)
    mean = table.loc[table["face_id"] == 1, "AU45_r"].mean()
    assert f"<td>{len(table) // 2}</td><td>{mean:.2f}</td>" in row45

    peaks_html = page.split("Frames of peak intensity", 1)[1]
    regions = re.findall(
        r'<h3 class="region">(\w+ face)</h3><div class="peaks small" data-region="(\w+)">', peaks_html.replace("\n", "")
    )
    assert regions == [("Upper face", "upper"), ("Lower face", "lower")]
    shown = [int(n) for n in re.findall(r'<img alt="AU(\d\d) peak"', peaks_html)]
    assert shown == UPPER + LOWER
    assert page.count("data:image/png;base64,") == 1 + len(OPENFACE)  # the plot, a peak per AU


def test_five_aus_keep_one_group(tmp_path):
    aus = (6, 10, 12, 14, 17)
    table = _series()[["frame", "timestamp", "face_id", "success"] + [column_name(a) for a in aus]]
    page = write_report(tmp_path / "report", table, aus, title="clip.mp4").read_text()
    assert "rowgroup" not in page and 'class="region"' not in page
    listed = [int(n) for n in re.findall(r'<td class="name"><span[^>]*></span>AU(\d\d)', page)]
    assert listed == list(aus) * 2


@pytest.mark.parametrize("aus", [OPENFACE, (6, 10, 12, 14, 17)])
def test_the_study_page_groups_17_aus_under_their_face_region(tmp_path, aus):
    rng = np.random.default_rng(1)
    videos = [
        StudyVideo(
            name=f"p{k}/clip",
            frames=50,
            frames_with_face=50,
            tracks=1,
            series={a: rng.uniform(0, 5, 50) for a in aus},
            csv=f"p{k}/clip.csv",
        )
        for k in range(2)
    ]
    page = write_study_page(tmp_path / "index.html", videos, aus, title="study").read_text()
    _check_html(page)
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    columns = [int(n) for n in re.findall(r"</span>AU(\d\d)</th>", header)]
    widths = {int(w) for w in re.findall(r'<svg class="spark" width="(\d+)"', page)}
    assert page.count("<polyline") == 2 * len(aus) and page.count('<tr><td class="name">') == 2
    if len(aus) > 8:
        assert columns == UPPER + LOWER
        assert re.findall(
            r"<th(?: class=\"region-start\")? colspan=\"(\d+)\" data-region=\"(\w+)\">(\w+ face)</th>", header
        ) == [("7", "upper", "Upper face"), ("10", "lower", "Lower face")]
        assert widths == {72}  # 17 sparklines to a row: narrower
    else:
        assert columns == list(aus) and "data-region" not in header and widths == {120}
