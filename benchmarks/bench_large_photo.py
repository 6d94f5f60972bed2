"""The face detector on a large photo: memory and time of the small-face search, whole and in tiles.

    python benchmarks/bench_large_photo.py [--size 8000x6000] [--repeat 1]

For photos, :class:`aumaps.landmarks.DlibFaceDetector` searches the image a second time
upsampled once, for faces 40-80 px wide; dlib's memory grows with the pixels it searches
(four times the photo's). Above :data:`aumaps.landmarks.MAX_SEARCH_PIXELS` (a 16-megapixel
photo) that search now runs in overlapping tiles. This prints, for one photo made from
scikit-image's astronaut (public domain; ``tests/hard_faces.large_photo``: the photo stretched
over the picture, four faces 45 px wide, two across the middle where tiles are cut), the whole
detector's cost with the search whole (``max_search_pixels=None``, the baseline: aumaps before)
and in tiles (the default now), side by side: peak memory above the picture's own (Linux's
``VmHWM``, reset before the call), wall and CPU seconds (this process, all threads: wall time
on a busy machine says more about the machine than the detector), and the small faces found.
Each run is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"

RUN = """
import json, re, sys, time
sys.path.insert(0, {tests!r})
import hard_faces
from skimage.data import astronaut
from aumaps.landmarks import DlibFaceDetector, FaceLandmarker
image = astronaut()
picture, faces = hard_faces.large_photo(image, FaceLandmarker()(image)[0].landmarks, ({width}, {height}))
detector = DlibFaceDetector(max_search_pixels={cap})
def kb(key):
    return int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))
open('/proc/self/clear_refs', 'w').write('5')
before, wall, cpu = kb('VmRSS'), time.perf_counter(), time.process_time()
boxes = [box for box, _ in detector.detect(picture)]
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({{"mb": (kb('VmHWM') - before) / 1024, "wall": wall, "cpu": cpu,
                  "found": sum(hard_faces.found(boxes, face) for face in faces), "faces": len(faces)}}))
"""


def run(width: int, height: int, cap: str) -> dict:
    code = RUN.format(tests=str(TESTS), width=width, height=height, cap=cap)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from aumaps.hardware import describe_machine
    from aumaps.landmarks import MAX_SEARCH_PIXELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="8000x6000", help="the photo's WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternated (default: %(default)s)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(describe_machine())
    with open("/proc/loadavg") as fh:
        print(f"load average: {fh.read().split()[0]} (other jobs on this machine)")
    print(f"photo: {width}x{height} ({width * height / 1e6:.0f} megapixels), 4 small faces 45 px wide")
    rows = {"whole (before)": "None", f"tiles of <= {MAX_SEARCH_PIXELS / 4e6:.0f} MP (now)": str(MAX_SEARCH_PIXELS)}
    results: dict[str, list[dict]] = {name: [] for name in rows}
    for _ in range(args.repeat):
        for name, cap in rows.items():
            results[name].append(run(width, height, cap))
    print(f"{'search':<24} {'peak MB above photo':>20} {'wall s':>8} {'CPU s':>8} {'faces found':>12}")
    for name, runs in results.items():
        best = min(runs, key=lambda r: r["cpu"])
        print(
            f"{name:<24} {max(r['mb'] for r in runs):>20.0f} {best['wall']:>8.1f} {best['cpu']:>8.1f} "
            f"{best['found']:>6d} of {best['faces']}"
        )


if __name__ == "__main__":
    main()
