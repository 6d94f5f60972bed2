"""What the flip test buys and costs: held-out ICC and network time, each face read once
against read with its mirror image.

    python benchmarks/bench_flip_test.py [--weights default] [--val data/synth17-gn/cache]
                                         [--test data/synth17-test3/cache ...] [--faces 64]

For each readout (once; with its mirror image, :func:`aumaps.model.mirror_average`) a readout
calibration is fitted on the validation split of ``--val`` exactly as ``aumaps calibrate``
fits it (the network's own calibration and flip test are set aside first), then applied to
the test split of ``--test``: the mean ICC(3,1) over AUs and the per-AU ICCs are printed side
by side, before and after calibration (several ``--test`` caches: each, then all pooled).
Then the default engine's network time per face, both ways, on ``--faces`` probe crops (best
of 3). Float32 (``--amp``) for the figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aumaps import AUEstimator
from aumaps.calibrate import fit_map_calibration
from aumaps.evaluate import predict_cache
from aumaps.hardware import describe_machine
from aumaps.metrics import au_metrics
from aumaps.runtime.probe import probe_crops
from aumaps.weights import Checkpoint, load_checkpoint


def _network_ms(weights: str | Checkpoint, flip: bool, faces: int, crop_size: int) -> tuple[float, str]:
    ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    ckpt.codec.flip_test = flip
    est = AUEstimator(weights=ckpt)
    crops = probe_crops(faces, crop_size=crop_size)
    est.heatmaps(crops[:8])  # warm-up
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        est.heatmaps(crops)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / faces, est.engine.describe()


def readout_arguments(doc: str, val: str, test: list[str], faces: int) -> argparse.Namespace:
    """The command line of a readout benchmark (this one and ``bench_shift_test.py``)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--weights", default="default")
    ap.add_argument("--val", default=val, help="crop cache whose val split fits the calibrations")
    ap.add_argument(
        "--test",
        nargs="+",
        default=test,
        help="crop caches whose test splits are held out (several: each, then all pooled)",
    )
    ap.add_argument("--amp", default="fp32", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--faces", type=int, default=faces, help="probe crops for the timing")
    return ap.parse_args()


def main() -> None:
    args = readout_arguments(__doc__, "data/synth17-gn/cache", ["data/synth17-test3/cache"], 64)
    print(describe_machine(), flush=True)
    mean = {}  # (flip, test set or "pooled", calibrated) -> mean ICC
    per_au, fitted = {}, {}
    for flip in (False, True):
        ckpt = load_checkpoint(args.weights)
        ckpt.codec.calibration, ckpt.codec.flip_test = None, flip
        val = predict_cache(ckpt, args.val, "val", amp=args.amp)
        cal, _ = fit_map_calibration(val["pred"], val["true"])
        fitted[flip] = cal
        tests = {path: predict_cache(ckpt, path, "test", amp=args.amp) for path in args.test}
        if len(tests) > 1:
            tests["pooled"] = {k: np.concatenate([t[k] for t in tests.values()]) for k in ("pred", "true")}
        for name, test in tests.items():
            mean[flip, name, False] = au_metrics(test["pred"], test["true"], aus=ckpt.aus).loc["mean", "icc"]
            calibrated = au_metrics(cal.of_intensity(test["pred"]), test["true"], aus=ckpt.aus)["icc"]
            mean[flip, name, True] = calibrated["mean"]
            per_au[flip] = calibrated.drop("mean")  # the last: pooled when there are several
        aus, n_val = ckpt.aus, len(val["pred"])
    ms = {flip: _network_ms(args.weights, flip, args.faces, ckpt.codec.crop_size) for flip in (False, True)}
    print(f"\n{args.weights}: calibrations fitted on {n_val} faces of {args.val} (val split); ICC on test splits")
    print(f"{'':>46} {'once':>8} {'flip test':>10}")
    for name in [*args.test, "pooled"] if len(args.test) > 1 else args.test:
        for calibrated in (False, True):
            label = f"{name}, {'calibrated' if calibrated else 'uncalibrated'}"
            print(f"{label:>46} {mean[False, name, calibrated]:8.4f} {mean[True, name, calibrated]:10.4f}")
    once, flipped = (f"{fitted[f].gain:g}, {fitted[f].threshold:g}" for f in (False, True))
    print(f"{'calibration (gain, threshold)':>46} {once:>8} {flipped:>10}")
    print(
        f"{'network, ms per face':>46} {ms[False][0]:8.2f} {ms[True][0]:10.2f}   ({ms[False][1]}; {args.faces} crops)"
    )
    print(
        "\nper AU, calibrated, once -> flip test: "
        + " ".join(f"AU{au} {a:.2f}->{b:.2f}" for au, a, b in zip(aus, per_au[False], per_au[True]))
    )


if __name__ == "__main__":
    main()
