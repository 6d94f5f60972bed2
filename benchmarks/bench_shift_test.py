"""What the shift test buys and costs: held-out ICC, localisation and network time, each face
read with the flip test alone against also moved one map pixel each way.

    python benchmarks/bench_shift_test.py [--weights default] [--val data/synth17-gwz/cache]
                                          [--test data/synth17-test3/cache ...] [--faces 32]

Both readouts are the flip test's (:func:`aumaps.model.mirror_average`); the second also
reads each crop moved one map pixel right, left, down and up and takes the mean of the five,
each moved back (:func:`aumaps.model.shift_average`, the codec's ``shift_test``). For each, a
readout calibration is fitted on the validation split of ``--val`` as ``aumaps calibrate``
fits it (the network's own calibration set aside first) and applied to the test splits of
``--test``: the mean ICC(3,1) over AUs and the localisation error (map pixels) are printed side
by side per test set (several: then pooled), then the per-AU ICCs pooled, then the default
engine's network time per face both ways on ``--faces`` probe crops (best of 3). Float32
(``--amp``) for the figures. The baseline is the flip test alone, what the bundled model read
before the shift test and what live cameras still read.
"""

from __future__ import annotations

import numpy as np

from aumaps.calibrate import fit_map_calibration
from aumaps.evaluate import predict_cache
from aumaps.hardware import describe_machine
from aumaps.metrics import au_metrics
from aumaps.weights import Checkpoint, load_checkpoint
from bench_flip_test import _network_ms, readout_arguments

READOUTS = {"flip test": False, "flip + shift test": True}


def _readout(weights: str, shift: bool) -> Checkpoint:
    ckpt = load_checkpoint(weights)
    ckpt.codec.calibration, ckpt.codec.flip_test, ckpt.codec.shift_test = None, True, shift
    return ckpt


def _metrics(res: dict, cal, aus) -> tuple[float, float, np.ndarray]:
    table = au_metrics(
        cal.of_intensity(res["pred"]),
        res["true"],
        aus=aus,
        pred_peaks=res["pred_peaks"],
        true_centres=res["true_centres"],
        iod=res["iod"],
    )
    return table.loc["mean", "icc"], table.loc["mean", "loc_px"], table["icc"].drop("mean").to_numpy()


def main() -> None:
    args = readout_arguments(
        __doc__, "data/synth17-gwz/cache", ["data/synth17-test3/cache", "data/synth17-test4/cache"], 32
    )
    print(describe_machine(), flush=True)
    figures, per_au, fitted = {}, {}, {}
    keys = ("pred", "true", "pred_peaks", "true_centres", "iod")
    ckpts = {label: _readout(args.weights, shift) for label, shift in READOUTS.items()}
    for label, ckpt in ckpts.items():
        val = predict_cache(ckpt, args.val, "val", amp=args.amp)
        fitted[label], _ = fit_map_calibration(val["pred"], val["true"])
        tests = {path: predict_cache(ckpt, path, "test", amp=args.amp) for path in args.test}
        if len(tests) > 1:
            tests["pooled"] = {k: np.concatenate([t[k] for t in tests.values()]) for k in keys}
        for name, res in tests.items():
            icc, loc, au_icc = _metrics(res, fitted[label], ckpt.aus)
            figures[label, name] = (icc, loc)
            per_au[label] = au_icc  # the last: pooled when there are several
        n_val = len(val["pred"])
    ms = {label: _network_ms(c, True, args.faces, c.codec.crop_size) for label, c in ckpts.items()}
    base, new = READOUTS
    print(f"\n{args.weights}: calibrations fitted on {n_val} faces of {args.val} (val split), then held out")
    print(f"{'':>40} {base:>28} {new:>28}")
    for name in [*args.test, "pooled"] if len(args.test) > 1 else args.test:
        cells = [f"ICC {figures[r, name][0]:.4f}, loc {figures[r, name][1]:.2f} px" for r in READOUTS]
        print(f"{name:>40} {cells[0]:>28} {cells[1]:>28}")
    cal = [f"{fitted[r].gain:g}, {fitted[r].threshold:g}" for r in READOUTS]
    print(f"{'calibration (gain, threshold)':>40} {cal[0]:>28} {cal[1]:>28}")
    timing = [f"{ms[r][0]:.2f}" for r in READOUTS]
    print(f"{'network, ms per face':>40} {timing[0]:>28} {timing[1]:>28}   ({ms[base][1]}; {args.faces} crops)")
    print(
        f"\nper AU, ICC, {base} -> {new}: "
        + " ".join(f"AU{au} {a:.3f}->{b:.3f}" for au, a, b in zip(ckpt.aus, per_au[base], per_au[new]))
    )


if __name__ == "__main__":
    main()
