"""Clients of OpenFace CSVs read aumaps' CSVs: exploface (PyPI) cuts rows at confidence >= 0.9."""

from __future__ import annotations

import exploface  # the test extras install it
import numpy as np
import pytest

from aumaps.results import FaceResult, FrameResult, ResultWriter

AUS = (6, 12)


def _face(intensities, confidence: float) -> FaceResult:
    return FaceResult(
        face_id=0,
        aus=AUS,
        intensities=np.asarray(intensities, float),
        heatmaps=np.zeros((2, 64, 64)),
        peaks=np.full((2, 2, 2), np.nan),
        argmax=np.zeros((2, 2)),
        landmarks=np.zeros((68, 2)),
        box=np.zeros(4),
        confidence=confidence,
        matrix=np.eye(2, 3),
        crop=np.zeros((4, 4, 3), np.uint8),
        detector_score=1.5,
        pose=np.array([0.0, 0.0, 600.0, 0.1, 0.0, 0.0]),
    )


def test_exploface_statistics_run_on_an_aumaps_csv(tmp_path):
    """AU06 is on over frames 10-19 (one of them trusted less) and 30-32; frame 40 has no face."""
    results = []
    for i in range(50):
        on = 10 <= i < 20 or 30 <= i < 33
        faces = [] if i == 40 else [_face([2.0 if on else 0.2, 0.1], 0.5 if i == 15 else 0.95)]
        results.append(FrameResult(i, i / 25, faces))
    path = tmp_path / "clip.csv"
    with ResultWriter(path, AUS) as writer:
        for result in results:
            writer.write(result)

    info = exploface.get_info(path)
    assert info["duration"] == pytest.approx(1.96) and info["time_resolution"] == pytest.approx(0.04)
    detections = exploface.get_detections(exploface.get_feature_time_series(path))
    # the frame below the confidence cut splits the episode, exploface's 0.1 s gap smoothing joins it
    # again; the 3-frame episode (0.08 s) is shorter than its 0.1 s minimum
    assert detections.to_dict("list") == {"start": [0.4], "end": [0.76], "feature": ["AU06"]}
    stats = exploface.get_statistics(path)
    assert stats.index.tolist() == ["AU06"] and stats.loc["AU06", "nr_detections"] == 1
    assert stats.loc["AU06", "average_length_detection"] == pytest.approx(0.36)
