"""End-to-end video speed: plain ``aumaps predict`` against a straightforward per-frame loop.

    python benchmarks/bench_video.py [--frames 150] [--weights CKPT] [--backend auto] [--repeat 2] [--int8]

The clip: 640×480, ``--frames`` frames at 25 fps (MPEG-4 Part 2, written to a temporary
folder) of scikit-image's astronaut photo, zoomed so that her face is about 150 pixels wide
and moving slightly (a few pixels of drift and sway, ±3° of roll): one face, as in a
webcam recording.

The model: the paper-sized hourglass (``AUHourglass()``: 1 stack, depth 4, width 256,
3.4 M parameters) with random weights (or ``--weights``); speed does not depend on the
weights.

* **baseline**, as the BMVC 2018 release runs a video: every frame decoded, dlib face
  detection, 68 landmarks, registration, and the float32 network (PyTorch, eager) on that
  frame's crop, one frame at a time;
* **aumaps**: :func:`aumaps.video.process_video` with the estimator ``aumaps predict`` builds
  without flags (``--backend auto``: the fastest engine that holds its accuracy bound on this
  CPU, e.g. bfloat16 where native, ONNX Runtime float32 elsewhere): decoding in a background
  thread, detection every ``--redetect`` frames with landmark tracking in between, crops
  batched across frames, CSV written as it goes.

The machine's CPU kind is printed first: figures differ between CPUs with native bfloat16
(AVX-512 BF16, AMX) and without (AVX2). To see an AVX2 machine's PyTorch figures on an
AVX-512 one, run with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (ONNX Runtime's
own kernels ignore those switches and keep using AVX-512).

Loop timings exclude one-off start-up, which is printed on its own: building the engine the
first time (export, accuracy check on probe faces) and on later runs (from the engine store).
Each pipeline runs ``--repeat`` times, alternating, and the best run of each counts (the
machine may be shared). Printed: both frame rates, their ratio, per-stage milliseconds per
frame, and how far aumaps' intensities are from float32 ones.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from skimage import data

from aumaps import align
from aumaps.codec import AUHeatmapCodec
from aumaps.hardware import describe_machine
from aumaps.model import AUHourglass
from aumaps.predict import AUEstimator
from aumaps.timing import StageTimes
from aumaps.video import VideoFileSource, process_video
from aumaps.weights import Checkpoint, load_checkpoint

AUS = (6, 10, 12, 14, 17)


def make_clip(path: Path, frames: int, size: tuple[int, int] = (640, 480), fps: float = 25.0) -> Path:
    """Write the benchmark clip (see the module docstring)."""
    face = data.astronaut()  # face centre near (215, 115) in the 512×512 photo
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        t = i / fps
        angle = 3.0 * np.sin(2 * np.pi * 0.3 * t)
        matrix = cv2.getRotationMatrix2D((215.0, 115.0), angle, 1.6)
        matrix[:, 2] += [
            width / 2 - 215.0 + 12 * np.sin(2 * np.pi * 0.2 * t),
            height / 2.6 - 115.0 + 6 * np.cos(2 * np.pi * 0.25 * t),
        ]
        frame = cv2.warpAffine(face, matrix, size, borderMode=cv2.BORDER_REFLECT)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def paper_model(weights: str | None) -> Checkpoint:
    """The checkpoint to time: ``weights``, or the paper-sized network with random weights."""
    if weights:
        return load_checkpoint(weights)
    torch.manual_seed(0)
    model = AUHourglass().eval()
    with torch.no_grad():
        model.l0.bias.fill_(2.0)  # maps around intensity 2 rather than 0
    codec = AUHeatmapCodec(AUS).to_dict()
    return Checkpoint(model, AUS, codec, {"name": "paper-sized, random weights"}, Path("random"), "aumaps")


def baseline(est: AUEstimator, clip: Path, out_csv: Path) -> tuple[float, int, dict[str, float]]:
    """The per-frame loop; returns seconds, frames and seconds per stage."""
    times = StageTimes()
    capture = cv2.VideoCapture(str(clip))
    frames = 0
    start = time.perf_counter()
    with open(out_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame", "success"] + [f"AU{a:02d}_r" for a in est.aus])
        while True:
            with times("decode"):
                ok, bgr = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frames += 1
            with times("detect"):
                boxes = est.landmarker.detector.detect(rgb, small_faces=False)  # the release: one search
            if not boxes:
                with times("write"):
                    writer.writerow([frames, 0])
                continue
            with times("landmarks"):
                landmarks = est.landmarker.predictor.predict(rgb, boxes[0][0])
            with times("register"):
                size = est.codec.crop_size  # the model's crop (128 for the bundled one, 256 for the paper's)
                matrix = align.registration_matrix(landmarks, crop_size=size)
                crop = align.warp_to_crop(rgb, matrix, size)
            with times("network"):
                maps = est.heatmaps(crop[None])
            with times("readout"):
                intensities = est.codec.read(maps)[1].intensities[0]  # calibrated, as aumaps writes them
            with times("write"):
                writer.writerow([frames, 1] + [round(float(v), 4) for v in intensities])
    return time.perf_counter() - start, frames, dict(times.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--weights", help="a checkpoint (default: paper-sized random network)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "fast", "onnx", "openvino", "int8"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the engine's")
    parser.add_argument("--redetect", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, interleaved; the best counts")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="first make an int8 model of the network (aumaps quantize's guard, worst error <= "
        "0.05 on synthetic faces) so that --backend auto uses it where it is accepted",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(describe_machine())
    ckpt = paper_model(args.weights)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["AUMAPS_CACHE"] = str(tmp / "user-cache")  # a first run, then a run from the store
        clip = make_clip(tmp / "clip.mp4", args.frames)
        if args.int8:
            from aumaps.runtime.probe import probe_crops
            from aumaps.runtime.quantize import Refused, quantize_int8

            try:
                made = quantize_int8(ckpt.model, probe_crops(64, seed=1), probe_crops(32, seed=2))
                print(f"int8 model accepted: {made.accuracy}")
            except Refused as refused:
                print(f"int8 model refused: {refused.result.accuracy}")
        reference = AUEstimator(ckpt, batch_size=1, backend="torch")
        start = time.perf_counter()
        fast = AUEstimator(ckpt, batch_size=args.batch_size, backend=args.backend)
        first_start = time.perf_counter() - start
        start = time.perf_counter()
        fast = AUEstimator(ckpt, batch_size=args.batch_size, backend=args.backend)
        later_start = time.perf_counter() - start
        probe = cv2.cvtColor(cv2.VideoCapture(str(clip)).read()[1], cv2.COLOR_BGR2RGB)
        found = reference.predict(probe)  # loads the landmark model once, outside the timings
        assert found, "the benchmark clip should show a face"
        width = found[0].box[2] - found[0].box[0]
        crops = np.stack([found[0].crop] * fast.batch_size)
        for _ in range(3):  # a traced network compiles each batch shape it meets on its first calls
            fast.heatmaps(crops)
            fast.heatmaps(crops[:1])

        print(
            f"clip: {args.frames} frames 640x480, one face (detector box {width:.0f} px); "
            f"model: {ckpt.card.get('name')}; torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        base_runs, fast_runs = [], []
        for _ in range(args.repeat):  # interleaved, so that both meet the same machine load
            base_runs.append(baseline(reference, clip, tmp / "baseline.csv"))
            fast_runs.append(
                process_video(
                    fast, VideoFileSource(clip), tmp / "fast.csv", redetect_every=args.redetect, progress=False
                )
            )
        base_s, base_n, base_t = min(base_runs, key=lambda run: run[0])
        summary = min(fast_runs, key=lambda run: run.seconds)
        base_fps, fast_fps = base_n / base_s, summary.fps
        if args.repeat > 1:
            print(
                "runs, frames/s: baseline "
                + ", ".join(f"{n / s:.2f}" for s, n, _ in base_runs)
                + "; aumaps "
                + ", ".join(f"{run.fps:.2f}" for run in fast_runs)
                + " (best of each below)"
            )

        print(f"\nbaseline (per frame, detect + landmarks + float32 network): {base_fps:6.2f} frames/s")
        print(
            f"aumaps   (tracking, batch {fast.batch_size}, {fast.engine.name}):".ljust(60) + f"{fast_fps:6.2f} frames/s"
        )
        print(
            f"speed-up: {fast_fps / base_fps:.2f}x   (detector ran on {summary.detections} of {summary.frames} frames)"
        )
        print("\nper stage, ms per frame    baseline    aumaps")
        for stage in ("decode", "detect", "landmarks", "track", "register", "network", "readout", "write"):
            b, f = base_t.get(stage, 0.0) / base_n, summary.times.get(stage, 0.0) / summary.frames
            note = "  (background thread)" if stage == "decode" else ""
            print(f"  {stage:<22}{1000 * b:10.2f}{1000 * f:10.2f}{note}")
        print(f"  {'total (wall)':<22}{1000 * base_s / base_n:10.2f}{1000 * summary.seconds / summary.frames:10.2f}")
        network = summary.times.get("network", 0.0) / summary.frames
        if network > 0:
            print(
                f"ceiling: with every other stage free, the network alone allows "
                f"{base_s / base_n / network:.2f}x the baseline"
            )

        same_crops = np.abs(
            fast.codec.read(fast.heatmaps(crops))[1].intensities
            - reference.codec.read(reference.heatmaps(crops))[1].intensities
        ).max()
        cols = [f"AU{au:02d}_r" for au in ckpt.aus]
        base_rows = pd.read_csv(tmp / "baseline.csv").query("success == 1")
        fast_rows = pd.read_csv(tmp / "fast.csv").query("success == 1").drop_duplicates("frame")
        both = base_rows.merge(fast_rows, on="frame", suffixes=("_base", "_fast"))
        csv_diff = max((both[f"{c}_base"] - both[f"{c}_fast"]).abs().max() for c in cols)
        print(
            f"\nintensity |aumaps - float32|: same crops {same_crops:.4f}; pipelines frame by frame "
            f"(tracked landmarks vs detected, CSV rounding) {csv_diff:.4f}"
        )
        print(
            f"start-up of the engine ({fast.engine.describe()}): first run {first_start:.1f} s, "
            f"later runs {later_start:.1f} s (from the engine store)"
        )


if __name__ == "__main__":
    main()
