"""One output schema for images and videos: OpenFace 2.2's columns, in OpenFace's order."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aumaps.results import (
    OCCURRENCE_THRESHOLD,
    FaceResult,
    FrameResult,
    ResultWriter,
    csv_columns,
    result_rows,
    results_frame,
)


def _openface_22_header() -> str:
    """The header OpenFace 2.2's FeatureExtraction writes with every output on, written out
    section by section as OpenFace's RecorderCSV does (a space after each comma)."""
    eye = [f"eye_lmk_{axis}_{i}" for axis in ("x", "y") for i in range(56)]
    eye += [f"eye_lmk_{axis}_{i}" for axis in ("X", "Y", "Z") for i in range(56)]
    sections = [
        ["frame", "face_id", "timestamp", "confidence", "success"],
        ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"],
        eye,
        ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"],
        [f"{axis}_{i}" for axis in ("x", "y") for i in range(68)],
        [f"{axis}_{i}" for axis in ("X", "Y", "Z") for i in range(68)],
        ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)],
        [f"AU{a:02d}_r" for a in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)],
        [f"AU{a:02d}_c" for a in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)],
    ]
    return ", ".join(name for section in sections for name in section)


@pytest.mark.parametrize(
    "aus",
    [
        (6, 10, 12, 14, 17),
        (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26),
        (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45),
    ],
)
@pytest.mark.parametrize("file_column", [False, True])
def test_columns_follow_openface_22_column_for_column(aus, file_column):
    openface = [name.strip() for name in _openface_22_header().split(",")]  # readers strip the spaces
    ours = csv_columns(aus, file_column)
    shared = [c for c in ours if c in openface]
    # every OpenFace column aumaps has keeps OpenFace's name and relative order...
    assert shared == [c for c in openface if c in shared]
    # ...and they are all of OpenFace's identification, pose, landmark and AU columns for these AUs
    expected = ["frame", "face_id", "timestamp", "confidence", "success"]
    expected += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    expected += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    expected += [f"AU{a:02d}_r" for a in aus] + [f"AU{a:02d}_c" for a in aus]
    assert shared == expected
    # images add the file in front; aumaps' own columns (peaks, box, detector score) come after OpenFace's
    assert (ours[0] == "file") == file_column
    extras = ours[ours.index(f"AU{aus[-1]:02d}_c") + 1 :]
    assert extras == [f"AU{a:02d}_{xy}" for a in aus for xy in "xy"] + [
        "box_x0",
        "box_y0",
        "box_x1",
        "box_y1",
        "detector_score",
    ]
    assert len(ours) == len(set(ours))


def test_the_openface_set_gives_openfaces_34_au_columns():
    """The bundled model's AU set: OpenFace 2.2's 17 intensity columns and the 17 of its 18
    presence columns that have one (OpenFace's AU28 is presence only), in OpenFace's order."""
    from aumaps.aus import AU_SETS

    openface = [name.strip() for name in _openface_22_header().split(",")]
    ours = [c for c in csv_columns(AU_SETS["openface"]) if c[:2] == "AU" and c[-2:] in ("_r", "_c")]
    assert len(ours) == 34
    assert ours == [c for c in openface if c.startswith("AU") and c != "AU28_c"]


def _face(face_id: int, intensities, seed: int = 0) -> FaceResult:
    rng = np.random.default_rng(seed)
    aus = (6, 12)
    return FaceResult(
        face_id=face_id,
        aus=aus,
        intensities=np.asarray(intensities, float),
        heatmaps=np.zeros((2, 64, 64)),
        peaks=np.full((2, 2, 2), np.nan),
        argmax=np.array([[10.123456, 20.0], [np.nan, np.nan]]),
        landmarks=rng.uniform(0, 100, (68, 2)),
        box=np.array([1.0, 2.0, 3.0, 4.0]),
        confidence=0.987654321,
        matrix=np.eye(2, 3),
        crop=np.zeros((4, 4, 3), np.uint8),
        detector_score=1.2345678,
        pose=np.array([10.0, -20.0, 600.123456, 0.1, -0.25, np.nan]),
    )


def test_rows_round_once_and_presence_follows_the_threshold():
    below, at = OCCURRENCE_THRESHOLD - 1e-6, OCCURRENCE_THRESHOLD
    frame = FrameResult(4, 0.123456789, [_face(3, [below, at])])
    (row,) = result_rows(frame, (6, 12))
    assert row["frame"] == 5 and row["face_id"] == 3 and row["success"] == 1
    assert row["timestamp"] == 0.1235 and row["confidence"] == 0.9877 and row["AU06_x"] == 10.1235
    assert row["detector_score"] == 1.2346 and row["pose_Tz"] == 600.1235 and row["pose_Ry"] == -0.25
    assert np.isnan(row["pose_Rz"])  # a pose value not known stays empty
    assert (row["AU06_c"], row["AU12_c"]) == (0, 1)
    assert row["AU06_r"] == round(below, 4)
    assert np.isnan(row["AU12_x"])  # an empty map has no location


def test_images_and_videos_share_one_writer_and_the_frame_agrees():
    results = [FrameResult(0, 0.0, [_face(0, [2.5, 0.5]), _face(1, [0.0, 4.0], seed=1)]), FrameResult(1, 0.04, [])]
    buffer = io.StringIO()
    with ResultWriter(buffer, (6, 12)) as writer:
        for result in results:
            writer.write(result)
    text = buffer.getvalue()
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == csv_columns((6, 12))
    assert table["success"].tolist() == [1, 1, 0] and table["face_id"].tolist() == [0, 1, -1]
    assert table.loc[2, ["AU06_r", "x_0", "pose_Rx", "detector_score"]].isna().all()  # no face: empty cells
    assert table.loc[2, "confidence"] == 0  # ...but confidence 0, as OpenFace writes it
    frame = results_frame(results, (6, 12))
    pd.testing.assert_frame_equal(frame, table, check_dtype=False)

    image = FrameResult(0, 0.0, [_face(0, [1.0, 2.0])], path=Path("a/b.jpg"))
    (row,) = result_rows(image, (6, 12), file_column=True)
    assert row["file"] == "a/b.jpg" and list(row)[0] == "file"


# -- text cells a spreadsheet would run as formulas --------------------------------------


def test_neutralise_cell_defuses_formulas_and_keeps_numbers():
    from aumaps.results import neutralise_cell

    for formula in (
        '=HYPERLINK("http://x","y")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "-",
        "=",
        "+inf",
        "-x.jpg",
    ):
        assert neutralise_cell(formula) == "'" + formula
    for kept in (
        "a.jpg",
        "",
        "P1",
        "'",
        "'a",
        " =x",
        "s01/=x.jpg",
        "-0.5",
        "+3",
        "-1e-3",
        "-12",
        ".5",
        "-.5",
        "1E+05",
        "'-0.5",
    ):
        assert neutralise_cell(kept) == kept
    for number in (-0.5, -3, 0, np.float64(-1.25), np.int64(-7), None, float("nan")):
        assert neutralise_cell(number) is number
    # text that already looks neutralised gets one more quote, so that the reader can give it back
    assert neutralise_cell("'=already") == "''=already" and neutralise_cell("''-x") == "'''-x"


#: Texts a file name, subject or label may be, the awkward ones included.
AWKWARD = [
    "=SUM(A1)",
    "+cmd.jpg",
    "-rf.png",
    "@home",
    "\t=1",
    "\r=1",
    "-",
    "=",
    "'",
    "''",
    "'=x.jpg",
    "''=x",
    "'a",
    "a'",
    "-0.5",
    "+3",
    "-1e-3",
    "'-0.5",
    "plain.jpg",
    "",
    " =x",
    "s01/=x.jpg",
    "--",
    "-.5x",
    "é=",
    "'é",
]


def test_restore_cell_gives_back_every_text_exactly():
    from aumaps.results import FORMULA_STARTS, neutralise_cell, restore_cell

    for text in AWKWARD:
        written = neutralise_cell(text)
        assert restore_cell(written) == text, text
        # what is written never starts a formula (a number is a number)
        assert not written.startswith(FORMULA_STARTS) or _is_number(written), text
    assert restore_cell("=x") == "=x" and restore_cell("'x") == "'x"  # not aumaps' quote: read as it is
    for value in (-0.5, 3, None, float("nan")):
        assert restore_cell(value) is value


def test_write_table_and_restore_table_round_trip_text_and_keep_numbers(tmp_path):
    from aumaps.results import FORMULA_STARTS, restore_table, write_table

    names = [n for n in AWKWARD if "\r" not in n]  # pandas leaves a carriage return unquoted on Python < 3.12
    table = pd.DataFrame(
        {
            "image": names,
            "x": np.linspace(-2.5, 2.5, len(names)),
            "n": range(-10, len(names) - 10),
            "=note": [f"-{k}" if k % 2 else f"@{k}" for k in range(len(names))],
        }
    )
    path = write_table(table, tmp_path / "t.csv")
    with open(path, newline="") as fh:
        raw = list(csv.reader(fh))
    assert raw[0] == ["image", "x", "n", "'=note"] and raw[1][0] == "'=SUM(A1)" and raw[2][3] == "-1"
    for row in raw:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS) or _is_number(cell), cell
    back = restore_table(pd.read_csv(path, dtype={"image": str, "'=note": str}, keep_default_na=False))
    assert back.columns.tolist() == ["image", "x", "n", "=note"]
    assert back["image"].tolist() == names and back["=note"].tolist() == table["=note"].tolist()
    assert back["x"].dtype == float and np.array_equal(back["x"], table["x"])  # negative numbers stay numbers
    assert back["n"].tolist() == list(range(-10, len(names) - 10))
    assert table.columns[3] == "=note" and table.loc[0, "image"] == "=SUM(A1)"  # the caller's table is not changed


def test_every_text_cell_of_the_writer_is_neutralised_and_numbers_stay_numbers():
    face = _face(0, [2.5, 0.5])
    face.landmarks[0] = [-0.5, -12.25]  # a landmark off the image's left edge: negative coordinates
    face.argmax[0] = [-3.0, 4.0]
    names = ['=HYPERLINK("evil.example","click").jpg', "+cmd.jpg", "-rf.png", "@home.jpg", "plain.jpg"]
    buffer = io.StringIO()
    with ResultWriter(buffer, (6, 12), file_column=True) as writer:
        for k, name in enumerate(names):
            writer.write(FrameResult(k, 0.0, [face] if k == 0 else [], path=Path(name)))
    table = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert table["file"].tolist() == [
        '\'=HYPERLINK("evil.example","click").jpg',
        "'+cmd.jpg",
        "'-rf.png",
        "'@home.jpg",
        "plain.jpg",
    ]
    # numbers stay numbers: the negative coordinates are read back as floats, equal to what was written
    assert table["x_0"].dtype == float and table.loc[0, "x_0"] == -0.5 and table.loc[0, "y_0"] == -12.25
    assert table.loc[0, "AU06_x"] == -3.0 and table["face_id"].tolist() == [0, -1, -1, -1, -1]
    for row in csv.reader(io.StringIO(buffer.getvalue())):  # no cell of the file starts a formula
        for cell in row:
            assert not cell.startswith(("=", "+", "@")) and not (cell.startswith("-") and not _is_number(cell))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
