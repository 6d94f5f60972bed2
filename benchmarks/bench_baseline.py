"""Per-person baselines measured: the scalar form against the map form, on synthetic videos
whose people differ at rest by known amounts.

    python benchmarks/bench_baseline.py [--identities 12] [--frames 60] [--weights default]

The videos: ``--identities`` synthetic people (:func:`aumaps.data.synth.neutral_faces`), each
in one video of ``--frames`` frames whose AU intensities follow smooth expression curves
``e(t)`` (:func:`~aumaps.data.synth.intensity_curves`, the model's AUs) while the head
drifts (:func:`~aumaps.data.synth.render_sequence` with nuisances). Faces are read by the
model (the bundled synthetic demo model by default, float32) at their exact landmarks, so
the figures are about the baseline, not the face detector. Three conditions:

* **rest rendered**: each person's neutral shows every AU at a constant rest level ``r``
  (0, 0.5, 1, 1.5 or 2, drawn per person and AU): the video shows ``min(r + e(t), 5)``;
  the truth is what the person does above their rest, ``min(r + e(t), 5) - r``;
* **map offset**: the video shows ``e(t)``, and the model reads each person higher at rest:
  a constant ``c`` (uniform on 0-1.5 per person) is added to every pixel of the model's AU
  maps; the truth is ``e(t)``;
* **none**: the video shows ``e(t)``, nothing added (what a baseline costs when people do
  not differ).

Each is scored raw, with the scalar form and with the map form (:mod:`aumaps.study.baseline`,
at the ``--percentiles``), pooled over people (what comparisons between people see):
ICC(3,1), Pearson r and MAE against the truth, averaged over AUs; **person r**: the
correlation, over people, of each person's mean estimate with their mean truth; **within
rho**: the Spearman correlation of estimate and truth within each video (the scalar form
cannot change it). The machine line comes first.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from aumaps.data.synth import intensity_curves, neutral_faces, render_sequence
from aumaps.hardware import describe_machine
from aumaps.metrics import icc31, mae, pearson
from aumaps.predict import AUEstimator
from aumaps.study.baseline import neutral_map, scalar_neutral, subtract_map, subtract_scalar

REST_LEVELS = (0.0, 0.5, 1.0, 1.5, 2.0)


def read_video(est: AUEstimator, identity, curves: dict[int, np.ndarray], seed: int) -> np.ndarray:
    """``(T, A, H, W)`` the model's maps for each frame of the rendered video."""
    maps = []
    for image, landmarks in render_sequence(identity, curves, np.random.default_rng(seed), nuisance=True):
        faces = est.predict(image, landmarks=landmarks)
        maps.append(faces[0].heatmaps)
    return np.stack(maps)


def forms(maps: np.ndarray, percentile: float) -> dict[str, np.ndarray]:
    """``(T, A)`` intensities: raw (each map's clamped maximum), scalar- and map-corrected."""
    raw = np.clip(maps.reshape(len(maps), maps.shape[1], -1).max(-1), 0, 5)
    return {
        "raw": raw,
        "scalar": subtract_scalar(raw, scalar_neutral(raw, percentile)),
        "map": subtract_map(maps, neutral_map(maps, percentile)),
    }


def scores(estimates: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Pooled ICC, r, MAE; person r; within-video rho (means over AUs)."""
    pred, true = np.concatenate(estimates), np.concatenate(truths)
    a = pred.shape[1]
    person_pred = np.array([e.mean(0) for e in estimates])
    person_true = np.array([t.mean(0) for t in truths])
    within = []
    for e, t in zip(estimates, truths):
        for k in range(a):
            if np.ptp(t[:, k]) > 0 and np.ptp(e[:, k]) > 0:
                within.append(spearmanr(e[:, k], t[:, k]).statistic)
    return {
        "ICC": float(np.nanmean([icc31(pred[:, k], true[:, k]) for k in range(a)])),
        "r": float(np.nanmean([pearson(pred[:, k], true[:, k]) for k in range(a)])),
        "MAE": float(np.mean([mae(pred[:, k], true[:, k]) for k in range(a)])),
        "person r": float(np.nanmean([pearson(person_pred[:, k], person_true[:, k]) for k in range(a)])),
        "within rho": float(np.nanmean(within)) if within else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=12)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--percentiles", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(describe_machine())
    est = AUEstimator(weights=args.weights, backend="torch")
    aus = est.aus
    print(
        f"model: {(est.checkpoint.card or {}).get('name', args.weights)}; AUs {', '.join(map(str, aus))}; "
        f"{args.identities} people x {args.frames} frames"
    )
    rng = np.random.default_rng(args.seed)
    people = neutral_faces(args.identities, seed=args.seed + 100)
    start = time.perf_counter()
    conditions: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"rest rendered": [], "map offset": [], "none": []}
    for i, person in enumerate(people):
        curves = intensity_curves(rng, args.frames, aus=aus)
        e = np.stack([curves[a] for a in aus], axis=1)
        rest = rng.choice(REST_LEVELS, len(aus))
        shown = np.clip(e + rest, 0, 5)
        rested = read_video(est, person, {a: shown[:, k] for k, a in enumerate(aus)}, seed=i)
        plain = read_video(est, person, {a: e[:, k] for k, a in enumerate(aus)}, seed=i)
        conditions["rest rendered"].append((shown - rest, rested))
        conditions["map offset"].append((e, plain + rng.uniform(0, 1.5)))
        conditions["none"].append((e, plain))
        print(f"  person {i + 1}/{len(people)} read ({time.perf_counter() - start:.0f} s)", flush=True)
    columns = ["ICC", "r", "MAE", "person r", "within rho"]
    print(f"\n{'condition':<14} {'estimate':<12} " + " ".join(f"{c:>10}" for c in columns))
    for condition, pairs in conditions.items():
        truths = [t for t, _ in pairs]
        rows = {"raw": None}
        for p in args.percentiles:
            rows |= {f"scalar p{p:g}": p, f"map p{p:g}": p}
        for label, p in rows.items():
            kind = label.split()[0]
            estimates = [forms(maps, p if p is not None else 5.0)[kind] for _, maps in pairs]
            s = scores(estimates, truths)
            print(f"{condition:<14} {label:<12} " + " ".join(f"{s[c]:>10.3f}" for c in columns))
    print(
        f"\n(reading {sum(len(v) for v in conditions.values()) // 3 * 2} videos took "
        f"{time.perf_counter() - start:.0f} s; torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
