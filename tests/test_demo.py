"""`aumaps demo` wires synth -> cache -> train -> evaluate -> predict into one report folder."""

from __future__ import annotations

import json

from aumaps.demo import run_demo


def test_demo_end_to_end_on_a_tiny_set(tmp_path):
    out = run_demo(tmp_path / "demo", n_subjects=4, frames_per_subject=4, epochs=1, progress=False)
    index = (out / "index.md").read_text()
    assert "## Held-out synthetic identities" in index and "| AU12 | Lip Corner Puller |" in index
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["aus"] == [6, 10, 12, 14, 17] and metrics["n_samples"] > 0
    for name in (
        "evaluation/scatter.png",
        "robustness/robustness.png",
        "photo/overlay.png",
        "photo/maps.png",
        "run/best.pt",
    ):
        assert (out / name).stat().st_size > 5000, name
    assert set(json.loads((out / "timings.json").read_text())) >= {"training", "evaluation"}
