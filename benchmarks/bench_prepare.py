"""Preparation throughput: building a crop cache from a video with landmark tracking, against
detecting the face in every frame.

    python benchmarks/bench_prepare.py [--frames 120] [--size 384] [--redetect 30]

The clip: ``--frames`` frames, ``--size``×``--size`` pixels, of one synthetic face
(:func:`aumaps.data.synth.render_sequence`: smooth AU curves, drifting head pose, background,
lighting, noise), written as MJPG AVI to a temporary folder; its manifest lists every frame
(``clip.avi#i``) without landmarks, so preparation must find the face.

Both builds run :func:`aumaps.data.cache.build_cache` in one process (``workers=1``): each
decodes the video once, registers every frame into the cache and flushes it.

* **detect every frame**: ``redetect_every=1``: dlib's detector and the 68-point predictor
  on every frame;
* **tracking**: ``redetect_every=--redetect``: the detector on the first frame, every
  ``--redetect`` frames and when tracking is lost; the predictor alone, on a box placed
  from the previous landmarks, in between.

Printed side by side: frames per second, detector runs, and how far the tracked landmarks
are from the detected ones (mean, in pixels of the 256×256 crop). The landmark model is
loaded before timing. The machine may be shared: the best of ``--repeat`` runs counts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from aumaps.data.cache import CropCache, build_cache
from aumaps.data.synth import intensity_curves, neutral_faces, render_sequence
from aumaps.hardware import describe_machine
from aumaps.landmarks import DlibFaceDetector, FaceLandmarker


class _Counting(DlibFaceDetector):
    """The cache builder's default detector (no small-face search: it keeps the largest
    face), counting its runs."""

    def __init__(self) -> None:
        super().__init__(small_faces=False)
        self.detections = 0

    def detect(self, image: np.ndarray, small_faces: bool | None = None):
        self.detections += 1
        return super().detect(image, small_faces)


def _write_clip(folder: Path, frames: int, size: int) -> Path:
    """A synthetic ``size``×``size`` MJPG clip of ``frames`` frames and its manifest."""
    identity = neutral_faces(1, seed=7, procedural=0.0)[0]
    rng = np.random.default_rng(0)
    curves = intensity_curves(rng, frames)
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (size, size))
    for image, _ in render_sequence(identity, curves, rng, nuisance=True, size=size):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    manifest = pd.DataFrame(
        {
            "image": [f"clip.avi#{i}" for i in range(frames)],
            "subject": "s1",
            "frame": np.arange(frames),
            "AU12_r": np.round(curves[12], 3),
        }
    )
    manifest.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _build(manifest: Path, out: Path, redetect_every: int, landmarker: FaceLandmarker) -> float:
    """Seconds to build the cache into ``out`` (rebuilt from scratch)."""
    start = time.perf_counter()
    build_cache(
        manifest, out, (12,), landmarker=landmarker, progress=False, resume=False, redetect_every=redetect_every
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--redetect", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = _write_clip(folder, args.frames, args.size)
        rows = []
        caches = {}
        for name, every in (("detect every frame", 1), (f"tracking (detect >= every {args.redetect})", args.redetect)):
            detector = _Counting()
            landmarker = FaceLandmarker(detector=detector)
            landmarker(np.zeros((64, 64, 3), np.uint8))  # load the models before timing
            seconds = min(_build(manifest, folder / f"cache{every}", every, landmarker) for _ in range(args.repeat))
            cache = CropCache(folder / f"cache{every}")
            caches[every] = cache
            rows.append((name, args.frames / seconds, (detector.detections - 1) // args.repeat, int(cache.valid.sum())))
        error = np.linalg.norm(caches[args.redetect].landmarks - caches[1].landmarks, axis=-1)
        print(f"clip: {args.frames} frames, {args.size}x{args.size}, synthetic face, MJPG; workers=1")
        print(f"{'mode':<34}{'frames/s':>10}{'detector runs':>15}{'faces kept':>12}")
        for name, fps, runs, kept in rows:
            print(f"{name:<34}{fps:>10.1f}{runs:>15d}{kept:>12d}")
        print(
            f"speed-up: {rows[1][1] / rows[0][1]:.2f}x; tracked vs detected landmarks: mean "
            f"{np.nanmean(error):.2f} px, max {np.nanmax(error):.2f} px (256x256 crop)"
        )


if __name__ == "__main__":
    main()
