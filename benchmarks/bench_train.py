"""Training throughput (samples/s) on this machine: small vs paper configuration, 1 vs N processes.

    python benchmarks/bench_train.py [--samples 96] [--processes 1 2] [--configs openface17.yaml pilots/...]

Builds a small synthetic set in a temporary folder, then times one epoch of ``--samples``
training samples (augmentation, targets, forward, backward, optimiser step; validation
excluded) for each configuration, in one process and under ``torchrun`` with N processes
(data-parallel, same global batch). Prints every figure side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

from aumaps.data.cache import build_cache
from aumaps.data.synth import make_dataset
from aumaps.hardware import describe_machine, resolve_precision
from aumaps.train import load_config

CONFIGS = {
    "small (configs/synthetic.yaml: width 64)": "synthetic.yaml",
    "paper (configs/bmvc2018.yaml: width 256)": "bmvc2018.yaml",
}
CONFIG_DIR = Path(__file__).resolve().parents[1] / "src" / "aumaps" / "configs"


def _run(config: Path, processes: int) -> float:
    if processes == 1:
        cmd = [sys.executable, "-m", "aumaps", "train", "--config", str(config), "--quiet"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            "aumaps",
            "train",
            "--config",
            str(config),
            "--quiet",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    out = yaml.safe_load(config.read_text())["train"]["out_dir"]
    return float(pd.read_csv(Path(out) / "metrics.csv")["samples_per_s"].iloc[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=96, help="training samples timed per run")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--amp", default="auto", help="auto (bfloat16 where native, else float32), bf16, fp16 or fp32")
    ap.add_argument(
        "--configs",
        nargs="+",
        default=None,
        help="configs (relative to configs/) to time instead of the small and paper ones, e.g. "
        "pilots/w64-c256.yaml pilots/w64-c128.yaml pilots/w128-c128.yaml openface17.yaml",
    )
    args = ap.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_dataset(
            tmp / "synth",
            n_subjects=6,
            frames_per_subject=max(8, args.samples // 3),
            seed=0,
            progress=False,
            splits=(0.67, 0.0, 0.33),
        )
        cache = build_cache(manifest, tmp / "cache", aus="all", progress=False)  # every AU: any config's set
        rows = []
        configs = CONFIGS if args.configs is None else {name: name for name in args.configs}
        for label, name in configs.items():
            row = {"configuration": label}
            for n in args.processes:
                cfg = load_config(
                    CONFIG_DIR / name,
                    {
                        "data": {"cache": str(cache), "manifest": None, "max_train": args.samples, "max_val": 0},
                        "train": {
                            "epochs": 1,
                            "amp": args.amp,
                            "workers": 0,
                            "out_dir": str(tmp / f"run-{name}-{n}"),
                            "ema": 0.0,
                        },
                    },
                )
                path = tmp / f"{name.replace('/', '-')}-{n}.yaml"
                path.write_text(yaml.safe_dump(cfg))
                row[f"{n} process{'es' if n > 1 else ''} (samples/s)"] = round(_run(path, n), 2)
            rows.append(row)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores, amp={args.amp} -> {resolve_precision(args.amp)}, "
        f"{args.samples} samples per run, "
        f"global batch as configured"
    )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
