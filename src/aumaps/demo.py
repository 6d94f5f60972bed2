"""``aumaps demo``: the research pipeline end to end, offline, in minutes on a laptop CPU.

1. render a small synthetic AU data set with known intensities and centres (:mod:`aumaps.data.synth`);
2. register it once into a crop cache (:mod:`aumaps.data.cache`);
3. train a small hourglass (:mod:`aumaps.train`, ``configs/demo.yaml``);
4. evaluate it on the held-out identities: ICC, MAE, F1, localisation error, plots
   (:mod:`aumaps.evaluate`), and the misalignment study;
5. predict AU intensities and maps on a real photo shipped with a dependency;
6. write everything into one report folder, with an ``index.md`` that links it all.

The demo trains from scratch in a few minutes, so its numbers are well below those of the
bundled model (``--weights default``), which trained for longer on a larger synthetic set.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from .aus import get_au

__all__ = ["run_demo", "DEMO_CONFIG"]

#: The configuration file of the demo's training run, shipped in the repository.
DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def _sample_photo() -> tuple[str, np.ndarray]:
    from skimage import data

    return "astronaut (scikit-image)", data.astronaut()


def run_demo(
    out_dir: str | Path = "aumaps-demo",
    n_subjects: int = 120,
    frames_per_subject: int = 15,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Run the demo; returns the report folder (``index.md`` inside).

    The default set, 120 identities × 15 frames (made by two processes), gives many
    identities to learn from and to test on: held-out ICC depends far more on how many
    people training saw than on how many frames of each.
    """
    from .data.cache import build_cache
    from .data.synth import make_dataset
    from .evaluate import evaluate_checkpoint, robustness_study
    from .predict import AUEstimator
    from .train import load_config, train
    from .visualise import figure_maps, overlay

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        if progress:
            print(f"[demo] {name}: {timings[name]:.0f} s", flush=True)

    t0 = time.perf_counter()
    manifest = make_dataset(
        out / "data",
        n_subjects=n_subjects,
        frames_per_subject=frames_per_subject,
        seed=seed,
        progress=progress,
        workers=min(2, os.cpu_count() or 1),
    )
    step("synthetic data set", t0)

    t0 = time.perf_counter()
    cache = build_cache(manifest, out / "cache", aus="all", progress=progress)
    step("crop cache", t0)

    t0 = time.perf_counter()
    overrides = {"data": {"cache": str(cache)}, "train": {"out_dir": str(out / "run"), "seed": seed}}
    if epochs is not None:
        overrides["train"]["epochs"] = epochs
    cfg = load_config(DEMO_CONFIG, overrides)
    run = train(cfg, resume=(out / "run" / "train_state.pt").exists(), progress=progress)
    step("training", t0)

    t0 = time.perf_counter()
    weights = run / "best.pt"
    report = evaluate_checkpoint(
        weights, cache, split="test", out_dir=out / "evaluation", title="demo model on held-out synthetic identities"
    )
    robustness_study(weights, cache, (0, 5, 10), split="test", out_dir=out / "robustness")
    step("evaluation", t0)

    t0 = time.perf_counter()
    est = AUEstimator(weights=weights)
    name, photo = _sample_photo()
    faces = est.predict(photo)
    (out / "photo").mkdir(exist_ok=True)
    if faces:
        cv2.imwrite(
            str(out / "photo" / "overlay.png"), cv2.cvtColor(overlay(photo, faces, face_index=0), cv2.COLOR_RGB2BGR)
        )
        fig = figure_maps(faces[0], title=f"AU maps on {name}")
        fig.savefig(out / "photo" / "maps.png", dpi=110)
    step("prediction on a real photo", t0)

    _write_index(out, report, faces, name, timings)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return out


def _write_index(out: Path, report: dict, faces, photo_name: str, timings: dict) -> None:
    lines = ["# aumaps demo report", ""]
    lines += [
        f"Total time: {sum(timings.values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ").",
        "",
    ]
    lines += ["## Held-out synthetic identities", "", (out / "evaluation" / "metrics.md").read_text(), ""]
    lines += [
        "![predicted vs true](evaluation/scatter.png)",
        "",
        "![error by intensity](evaluation/error_by_intensity.png)",
        "",
    ]
    lines += [
        "## Misalignment robustness",
        "",
        (out / "robustness" / "robustness.md").read_text(),
        "",
        "![robustness](robustness/robustness.png)",
        "",
    ]
    lines += [f"## A real photo: {photo_name}", ""]
    if faces:
        f = faces[0]
        lines += ["| AU | name | intensity |", "| --- | --- | --- |"]
        lines += [f"| AU{a:02d} | {get_au(a).name} | {v:.2f} |" for a, v in zip(f.aus, f.intensities)]
        lines += ["", "![overlay](photo/overlay.png)", "", "![maps](photo/maps.png)", ""]
    else:
        lines += ["No face was found.", ""]
    lines += [
        "Training log: `run/metrics.csv`; model: `run/best.pt` (try `aumaps predict IMAGE --weights "
        f"{out / 'run' / 'best.pt'}`).",
        "",
    ]
    (out / "index.md").write_text("\n".join(lines), encoding="utf-8")
