"""int8 against float32 and bfloat16: speed on the paper-sized network, and the accuracy guard
on a trained one, in one run.

    python benchmarks/bench_int8.py [--crops 256]

Why this exists: on a CPU the network is the whole cost of a video; 8-bit integer arithmetic
(AVX-512 VNNI, or AVX2's 16-bit multiply-adds) is the remaining lever, but it adds an error
that depends on the trained weights. ``aumaps quantize`` (:mod:`aumaps.runtime.quantize`)
makes an int8 model and keeps it only if its intensities stay within a bound of float32's.

* **speed**, paper-sized network (``AUHourglass()``, random weights: speed does not depend on
  them), batches of 8 crops, milliseconds per crop: PyTorch float32 (the per-frame
  baseline's network), the engine ``aumaps predict`` picks by default here, ONNX Runtime
  float32, ONNX Runtime int8 (quantized without the guard: random weights say nothing about
  accuracy);
* **accuracy guard**, the bundled trained model (``--weights default``): calibrated on
  ``--crops`` registered synthetic faces (:mod:`aumaps.data.synth`, training-like), checked
  on ``--crops`` others: worst and mean |intensity - float32|, and whether the guard (worst
  <= 0.05) accepts it.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aumaps.data.cache import CropCache, build_cache
from aumaps.data.synth import make_dataset
from aumaps.hardware import describe_machine
from aumaps.model import AUHourglass
from aumaps.runtime import create_engine
from aumaps.runtime.engines import _onnxruntime, onnx_file
from aumaps.runtime.quantize import Refused, quantize_int8
from aumaps.runtime.store import EngineStore
from aumaps.weights import load_checkpoint


def synthetic_crops(folder: Path, n: int) -> np.ndarray:
    """``n`` registered 256x256 crops of synthetic faces showing random AUs."""
    frames = 8
    manifest = make_dataset(
        folder / "synth", n_subjects=max(3, -(-n // frames)), frames_per_subject=frames, seed=0, progress=False
    )
    cache = build_cache(manifest, folder / "cache", aus="bp4d", progress=False)
    return np.array(CropCache(cache).crops[:n])  # a writable copy of the memory-mapped crops


def per_crop_ms(run, crops: np.ndarray, batch: int = 8, seconds: float = 3.0) -> float:
    x = np.ascontiguousarray(crops[:batch])
    run(x)
    run(x)
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        run(x)
        done += len(x)
    return 1000 * (time.perf_counter() - start) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=256, help="crops to calibrate on, and as many to check on")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["AUMAPS_CACHE"] = str(tmp / "user-cache")
        store = EngineStore(tmp / "engines")
        crops = synthetic_crops(tmp, 2 * args.crops)
        calibration, held_out = crops[: args.crops], crops[args.crops :]

        torch.manual_seed(0)
        paper = AUHourglass().eval()
        auto = create_engine("auto", paper, store=store)  # before any int8 model exists
        unchecked = quantize_int8(paper, calibration[:64], held_out[:16], max_error=math.inf, store=store)
        print(f"\npaper-sized network, {torch.get_num_threads()} threads, batches of 8 crops: ms per crop")
        for name, run in (
            ("PyTorch float32 (baseline's network)", create_engine("torch", paper)),
            (f"default engine without int8: {auto.name}", auto),
            ("ONNX Runtime float32", _onnxruntime(onnx_file(paper, 256, store), "", 8)),
            ("ONNX Runtime int8", _onnxruntime(str(unchecked.path), "", 8)),
        ):
            print(f"  {name:<52}{per_crop_ms(run, crops):8.2f}")
        print(
            f"  (int8 of these random weights: {unchecked.accuracy}; random weights say nothing of a "
            "trained model's error)"
        )

        ckpt = load_checkpoint("default")
        print(
            f"\nbundled trained model: int8 calibrated on {len(calibration)} synthetic crops, checked on "
            f"{len(held_out)} others (the guard accepts worst <= 0.05)"
        )
        try:
            result = quantize_int8(ckpt.model, calibration, held_out, max_error=0.05, store=store)
            print(f"  accepted: {result.accuracy}")
        except Refused as refused:
            print(f"  refused: {refused.result.accuracy}")
        default = create_engine("auto", ckpt.model, store=store)
        print(f"  default engine here: {default.describe()}")


if __name__ == "__main__":
    main()
