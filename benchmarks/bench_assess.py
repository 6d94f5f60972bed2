"""What the rows' confidence and head pose cost the video pipeline.

    python benchmarks/bench_assess.py [--frames 150] [--repeat 3] [--weights CKPT] [--backend auto]

The clip and model of ``bench_video.py`` (640×480, the astronaut's face about 150 px wide,
moving; the paper-sized network with random weights, or ``--weights``), through
:func:`aumaps.video.process_video` as ``aumaps predict`` runs it, twice per repeat,
alternating: as shipped (every face on every frame assessed: :mod:`aumaps.confidence`'s
recheck of the landmarks, HOG and symmetry checks, and :mod:`aumaps.pose`'s solvePnP) and
with the assessment switched off (the rows' confidence and pose left empty: the pipeline as
it was before them). The best run of each counts. Printed: both frame rates, their ratio,
the milliseconds per frame of the assessment and its share of the whole run's time (steadier
than the ratio where other work shares the machine), and the confidence and pose of the
clip's rows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aumaps.hardware import describe_machine
from aumaps.predict import AUEstimator
from aumaps.video import VideoFileSource, process_video
from bench_video import make_clip, paper_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--weights")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["AUMAPS_CACHE"] = str(tmp / "user-cache")
        clip = make_clip(tmp / "clip.mp4", args.frames)
        est = AUEstimator(paper_model(args.weights), backend=args.backend)
        assess = est.assess
        est.predict(np.zeros((64, 64, 3), np.uint8))  # loads the landmark model outside the timings
        timed = {"with": [], "without": []}
        spent = []

        def counted(image, faces):
            start = time.perf_counter()
            out = assess(image, faces)
            spent.append(time.perf_counter() - start)
            return out

        for _ in range(args.repeat):
            for mode in ("with", "without"):
                est.assess = counted if mode == "with" else (lambda image, faces: list(faces))
                spent.clear()
                summary = process_video(est, VideoFileSource(clip), tmp / f"{mode}.csv", progress=False)
                timed[mode].append((summary.fps, sum(spent) / max(summary.frames, 1), sum(spent) / summary.seconds))
        with_fps, per_frame, _ = max(timed["with"])
        without_fps, _, _ = max(timed["without"])
        share = float(np.median([run[2] for run in timed["with"]]))
        print(f"clip: {args.frames} frames 640x480, one face; network engine: {est.engine.describe()}")
        print(
            "runs, frames/s: with "
            + ", ".join(f"{run[0]:.2f}" for run in timed["with"])
            + "; without "
            + ", ".join(f"{run[0]:.2f}" for run in timed["without"])
            + " (best of each below)"
        )
        print(f"\nwithout confidence and pose (the pipeline before them): {without_fps:6.2f} frames/s")
        print(f"with confidence and pose (as shipped):                   {with_fps:6.2f} frames/s")
        print(f"ratio: {with_fps / without_fps:.3f}   (assessment: {1000 * per_frame:.2f} ms per frame)")
        print(
            f"the assessment's share of the wall time of the runs with it: {100 * share:.1f} % (median over runs; "
            f"on a shared machine a steadier figure than the ratio of two frame rates)"
        )
        rows = pd.read_csv(tmp / "with.csv")
        faces = rows[rows["success"] == 1]
        print(
            f"rows: {len(rows)}, with a face {len(faces)}; confidence min {rows['confidence'].min():.3f}, "
            f"median {faces['confidence'].median():.3f}, share >= 0.9: {(faces['confidence'] >= 0.9).mean():.3f}; "
            f"median |pose_Ry| {faces['pose_Ry'].abs().median():.3f} rad"
        )


if __name__ == "__main__":
    main()
