"""``aumaps demo`` end to end on this machine: its duration and held-out ICC beside the floor.

    python benchmarks/bench_demo.py [--out DIR]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_demo.py   # as on an AVX2 CPU

Runs :func:`aumaps.demo.run_demo` with its defaults (synthetic data, crop cache, training,
evaluation on held-out identities, prediction on a photo) in a fresh folder, and prints the
machine's CPU kind, the precision training used, each step's seconds, the total, and the
held-out mean ICC(3,1), beside the floor (10 minutes) and the figures of the demo before
precision followed the hardware (measured on a 2-core AMD EPYC with AVX-512 BF16: 6 min 49 s,
held-out ICC 0.46; on a 2-core AVX2 EPYC it was stopped after 15 minutes in its first epoch,
its bfloat16 being emulated).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from aumaps.demo import run_demo
from aumaps.hardware import describe_machine

FLOOR_S = 600
BEFORE = {"AVX-512 BF16": (409, 0.46), "AVX2": (None, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="keep the demo's folder here (default: a temporary folder)")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "demo")
        start = time.perf_counter()
        run_demo(out, progress=False)
        total = time.perf_counter() - start
        timings = json.loads((out / "timings.json").read_text())
        metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
        precision = pd.read_csv(out / "run" / "metrics.csv")["precision"].iloc[-1]
    icc = metrics["mean"]["icc"]
    print("steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f" (training in {precision})")
    print(f"\n{'':<34}{'duration':>12}{'held-out ICC':>14}")
    print(f"{'this run':<34}{total / 60:>9.1f} min{icc:>14.3f}")
    print(f"{'floor':<34}{FLOOR_S / 60:>9.1f} min{'>= before':>14}")
    for kind, (seconds, before_icc) in BEFORE.items():
        shown = f"{seconds / 60:>9.1f} min" if seconds else f"{'> 15 min':>13}"
        print(f"{'before, ' + kind:<34}{shown}{before_icc if before_icc else '-':>14}")


if __name__ == "__main__":
    main()
