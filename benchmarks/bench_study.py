"""A study's speed: ``aumaps predict STUDY --out-dir`` with one worker and with two, and the
cost of a resumed run that finds everything complete.

    python benchmarks/bench_study.py [--videos 40] [--frames 25] [--backend auto] [--study DIR]

The study: ``--videos`` short videos (256×256 MJPG, ``--frames`` frames at 25 fps) of
synthetic people (:func:`aumaps.data.synth.neutral_faces`) moving their face
(:func:`~aumaps.data.synth.intensity_curves`) while their head drifts
(:func:`~aumaps.data.synth.render_sequence` with nuisances), in 8 folders of 5. They are
written once into ``--study`` (kept between runs) or a temporary folder. The model: the
bundled demo model, ``--backend`` as ``aumaps predict`` picks it (its engine is built once,
before timing, on one video).

Each run is the ``aumaps`` command in its own process, timed from start to exit (start-up,
imports, model and engine loading included). Printed, after the machine line and its load:

* total frames/s with ``--workers 1`` (PyTorch's default threads, and one thread:
  ``OMP_NUM_THREADS=1``) and ``--workers 2`` (whole command; and the analysis alone, as the
  command reports it), ``--repeat`` runs of each, alternating, the best counting (the
  machine may be shared), with the PyTorch threads each process used;
* a resumed run over the complete study: the whole command's wall time (Python start-up and
  imports included) and :func:`aumaps.study.run_study`'s own time in a process that has
  imported aumaps (discovery, the complete check, the log);
* the same after every video was touched (new modification times, same contents): the run
  that tells them unchanged by their SHA-256 (the contents read once; SHA-256's speed on this
  CPU printed) and the one after it (the new times logged: stat calls only again).

``--resume-only`` analyses the study once and measures only the resumed runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from aumaps.data.synth import intensity_curves, neutral_faces, render_sequence
from aumaps.hardware import describe_machine

FPS = 25.0


def make_study(root: Path, videos: int, frames: int, size: int = 256) -> Path:
    """Write the study (see the module docstring) unless it is there already."""
    marker = root / f".made-{videos}x{frames}"
    if marker.exists():
        return root
    people = neutral_faces(videos, seed=5)
    rng = np.random.default_rng(0)
    for k, person in enumerate(people):
        path = root / f"group{k // 5}" / f"person{k:02d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (size, size))
        for image, _ in render_sequence(person, intensity_curves(rng, frames, aus="bp4d"), rng, size=size):
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        writer.release()
    marker.write_text("")
    return root


def aumaps(*args: str, threads: int | None = None) -> tuple[float, str]:
    """Run the ``aumaps`` command (with ``OMP_NUM_THREADS=threads`` if given); (wall seconds,
    its output)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "aumaps", *args], capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"aumaps {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def analysis_fps(output: str) -> float:
    match = re.search(r"frame\(s\) analysed in [\d.]+ s: ([\d.]+) frames/s", output)
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating; the best counts")
    parser.add_argument("--study", type=Path, help="where to keep the generated study (default: a temporary folder)")
    parser.add_argument("--resume-only", action="store_true", help="analyse once, measure only the resumed runs")
    args = parser.parse_args()
    print(describe_machine())
    load = os.getloadavg()
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs "
        "(other work on the machine slows every figure)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        study = make_study(args.study or Path(tmp) / "study", args.videos, args.frames)
        frames = args.videos * args.frames
        print(f"study: {args.videos} videos x {args.frames} frames = {frames} frames at 256x256")
        common = ["--backend", args.backend, "--quiet"]
        aumaps("predict", str(next(study.rglob("*.avi"))), "--out", str(Path(tmp) / "warm.csv"), *common)
        # (workers, OMP_NUM_THREADS): one process with PyTorch's default threads (the machine's
        # cores), one process with one thread, two processes (the cores divided: one each)
        configurations = [(1, None)] if args.resume_only else [(1, None), (1, 1), (2, None)]
        runs: dict[tuple[int, int | None], list[tuple[float, float, int]]] = {c: [] for c in configurations}
        for attempt in range(1 if args.resume_only else args.repeat):  # alternating: all see the machine's moods
            for workers, omp in configurations:
                out = Path(tmp) / f"out{workers}-{omp}-{attempt}"
                seconds, output = aumaps(
                    "predict", str(study), "--out-dir", str(out), "--workers", str(workers), *common, threads=omp
                )
                threads = json.loads((out / "run.json").read_text())["threads_per_worker"]
                runs[(workers, omp)].append((seconds, analysis_fps(output), threads))
        rows = [(workers, *min(found)) for (workers, _), found in runs.items()]
        resumed, _ = aumaps("predict", str(study), "--out-dir", str(Path(tmp) / "out1-None-0"), *common)

        from aumaps.study import StudyOptions, run_study

        start = time.perf_counter()
        run = run_study(study, Path(tmp) / "out1-None-0", StudyOptions(backend=args.backend, progress=False))
        in_process = time.perf_counter() - start
        assert run.counts == {"complete": args.videos}, run.counts
        from aumaps.study import discover_study, merged_items
        from aumaps.study.fingerprint import ModelKey, stale_reason

        earlier = merged_items(Path(tmp) / "out1-None-0")
        start = time.perf_counter()
        key = ModelKey.of("default", [])
        reasons = [stale_reason(earlier.get(item.csv), item, key) for item in discover_study(study)]
        checks = time.perf_counter() - start
        assert reasons == [None] * args.videos, reasons
        videos = sorted(study.rglob("*.avi"))
        megabytes = sum(v.stat().st_size for v in videos) / 1e6
        for video in videos:  # touched (a copy without times, a sync): new times, the same contents
            os.utime(video)
        start = time.perf_counter()
        run = run_study(study, Path(tmp) / "out1-None-0", StudyOptions(backend=args.backend, progress=False))
        touched = time.perf_counter() - start
        assert run.counts == {"complete": args.videos} and not run.redone, (run.counts, run.redone)
        start = time.perf_counter()
        run_study(study, Path(tmp) / "out1-None-0", StudyOptions(backend=args.backend, progress=False))
        after_touch = time.perf_counter() - start

    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.resume_only:
        print(
            f"\n{'workers':>8} {'threads each':>13} {'whole command (s)':>18} {'frames/s, whole':>16} "
            f"{'frames/s, analysis':>19}   (best of {args.repeat}; all runs, s: "
            + "; ".join(", ".join(f"{r[0]:.1f}" for r in found) for found in runs.values())
            + ")"
        )
        for workers, seconds, fps, threads in rows:
            print(f"{workers:>8} {threads:>13} {seconds:>18.1f} {frames / seconds:>16.2f} {fps:>19.2f}")
        print(
            f"two workers / one: {rows[0][1] / rows[2][1]:.2f}x (one process, default threads); "
            f"{rows[1][1] / rows[2][1]:.2f}x (one process, one thread) (whole command)"
        )
    print(
        f"resumed run, everything complete: whole command {resumed:.2f} s; run_study itself {in_process:.3f} s, "
        f"of which discovery and the input and model checks {checks:.4f} s (goal: under 2 s)"
    )
    block = np.random.default_rng(0).integers(0, 256, 256 << 20, dtype=np.uint8).tobytes()
    start = time.perf_counter()
    hashlib.sha256(block).hexdigest()
    sha_speed = len(block) / 1e6 / (time.perf_counter() - start)
    print(
        f"resumed run after touching every video: run_study {touched:.3f} s (their {megabytes:.1f} MB read and "
        f"hashed), the run after it {after_touch:.3f} s (times refreshed); baseline: {in_process:.3f} s untouched. "
        f"SHA-256 on this CPU: {sha_speed:.0f} MB/s (a touched study of 100 GB: about {1e5 / sha_speed:.0f} s "
        "more, once, plus reading it)"
    )


if __name__ == "__main__":
    main()
