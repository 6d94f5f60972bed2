"""Fit, and check, the calibration of aumaps' ``confidence`` (:mod:`aumaps.confidence`).

    python benchmarks/calibrate_confidence.py [--samples 3000] [--seed 0] [--rows rows.csv]

Rows with known landmarks are made and analysed as the pipeline would, then the shipped
calibration (``aumaps.confidence.CALIBRATION``) and a refit on them are compared on held-out
rows, side by side:

* **faces, detected**: synthetic faces (:mod:`aumaps.data.synth`: identities, expressions,
  head turns in depth, glasses, occluders, small, blurred, dark and noisy faces; exact
  landmarks) and the two real photos that ship with the dependencies (scikit-image's
  astronaut, matplotlib's Grace Hopper; mirrored, rotated, scaled to 30–110 px between the eyes,
  darkened, blurred, noisy; their "true" landmarks are dlib's on the clean photo), analysed
  from the detector's box, or from the box a tracker would use;
* **faces from wrong boxes**: the predictor started from boxes moved and scaled by 10–40 %
  (a tracker slipping, a bad detection);
* **perturbed landmarks**: true or detected landmarks moved, turned, scaled and jittered;
* **not faces**: landmarks placed on the background of those images and on scikit-image's
  face-free photos.

A row is good when its mean landmark error is below ``ERROR_BOUND`` (10 % of the
inter-ocular distance); not-faces are bad. ``FACE_BOX`` is refitted as the commonest HOG window
of the good training rows' registered faces; the logistic fit weights good and bad rows equally
(``class_weight="balanced"``; scikit-learn, which the test extras bring with pingouin); it
prints the ``FACE_BOX = ...`` and ``CALIBRATION = ...`` lines to paste into
``aumaps/confidence.py``. Printed for both calibrations: the AUC, the rows per confidence bin
with their share of good rows and their median error, and what a ``confidence >= 0.8`` (and
0.9) filter keeps: the share of good rows, the 95th percentile of the error, the faces that
pass, the good rows it loses.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from aumaps.aus import MIRROR_68
from aumaps.confidence import (
    CALIBRATION,
    ERROR_BOUND,
    FACE_BOX,
    FEATURES,
    Calibration,
    LandmarkConfidence,
    check_box,
    features_of,
)
from aumaps.geometry import interocular_distance, landmark_extent
from aumaps.hardware import describe_machine
from aumaps.landmarks import FaceLandmarker

#: What a row keeps of the checks (LandmarkConfidence.measure).
MEASURES = ("recheck", "appearance", "window_x", "window_y", "window_side")


def _error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    """Mean point-to-point error over the true inter-ocular distance."""
    return float(np.linalg.norm(landmarks - truth, axis=1).mean() / interocular_distance(truth))


class Samples:
    """Images with true landmarks, and the rows made from them (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        import matplotlib
        from skimage import data

        from aumaps.data.synth.nuisance import _photos
        from aumaps.images import read_image

        self.rng = np.random.default_rng(seed)
        self.landmarker = FaceLandmarker()
        photos = {
            "astronaut": data.astronaut(),
            "grace_hopper": read_image(Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
        }
        self.real = [(image, self.landmarker(image)[0].landmarks) for image in photos.values()]
        self.background = _photos()
        self.seed = seed
        self.source = ""

    def synthetic(self) -> tuple[np.ndarray, np.ndarray]:
        from aumaps.data.synth import (
            make_identity,
            render,
            sample_intensities,
            sample_nuisance,
        )

        rng = self.rng
        identity = make_identity(int(rng.integers(1_000_000)), seed=self.seed + 101)
        nuisance = sample_nuisance(rng, strength=float(rng.uniform(0.3, 1.3)))
        return render(identity, sample_intensities(rng), rng, nuisance)

    def photo(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        image, truth = self.real[int(rng.integers(len(self.real)))]
        truth = truth.copy()
        if rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
            truth[:, 0] = image.shape[1] - 1 - truth[:, 0]
            truth = truth[MIRROR_68]
        centre = truth.mean(axis=0)
        size = 320
        matrix = cv2.getRotationMatrix2D(
            tuple(centre), float(rng.normal(0, 12)), float(rng.uniform(30, 110) / interocular_distance(truth))
        )
        matrix[:, 2] += size / 2 + rng.normal(0, 20, 2) - centre
        out = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        out = out * rng.uniform(0.35, 1.3) + rng.uniform(-30, 30)
        if rng.random() < 0.4:
            out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 2.5)))
        out = out + rng.normal(0, rng.uniform(0, 10), out.shape)
        return np.clip(out, 0, 255).astype(np.uint8), truth @ matrix[:, :2].T + matrix[:, 2]

    def face(self) -> tuple[np.ndarray, np.ndarray]:
        self.source = "synthetic" if self.rng.random() < 0.7 else "photo"
        return self.synthetic() if self.source == "synthetic" else self.photo()

    def _moved(self, box: np.ndarray, amount: float) -> np.ndarray:
        centre, side = (box[:2] + box[2:]) / 2, float(np.mean(box[2:] - box[:2]))
        centre = centre + self.rng.normal(0, amount, 2) * side
        side *= float(np.exp(self.rng.normal(0, amount)))
        return np.concatenate([centre - side / 2, centre + side / 2])

    def _perturbed(self, landmarks: np.ndarray) -> np.ndarray:
        rng = self.rng
        iod, centre = interocular_distance(landmarks), landmarks.mean(axis=0)
        angle, scale = rng.normal(0, 0.15), float(np.exp(rng.normal(0, 0.1)))
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        moved = (landmarks - centre) @ turn.T + centre + rng.normal(0, 0.15, 2) * iod
        return moved + rng.normal(0, rng.uniform(0, 0.12), landmarks.shape) * iod

    def rows(self, count: int = 3) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
        """``count`` rows ``(kind, image, landmarks, error)`` of one image (the error of a
        not-face is inf): a face image (synthetic 70 %, a photo 30 %) read in several ways, or
        (one time in ten) a face-free photo."""
        rng, predict = self.rng, self.landmarker.predictor.predict
        if rng.random() < 0.1:
            self.source = "face-free photo"
            image = self.background[int(rng.integers(len(self.background)))]
            return [
                ("not a face", image, predict(image, self._clear_box(image, None)), float("inf")) for _ in range(count)
            ]
        image, truth = self.face()
        detected = None
        out = []
        for _ in range(count):
            u = rng.random()
            if u < 0.3:
                if detected is None:
                    found = self.landmarker.detector.detect(image)
                    detected = found[0][0] if found else self._moved(check_box(truth), 0.05)
                kind, landmarks = "detected", predict(image, detected)
            elif u < 0.45:
                kind, landmarks = "tracked", predict(image, self._moved(check_box(truth), 0.05))
            elif u < 0.65:
                box = self._moved(check_box(truth), float(rng.uniform(0.1, 0.4)))
                kind, landmarks = "wrong box", predict(image, box)
            elif u < 0.75:
                start = truth if rng.random() < 0.5 else predict(image, check_box(truth))
                kind, landmarks = "perturbed", self._perturbed(start)
            else:
                out.append(("not a face", image, predict(image, self._clear_box(image, truth)), float("inf")))
                continue
            out.append((kind, image, landmarks, _error(landmarks, truth)))
        return out

    def _clear_box(self, image: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
        """A square box on ``image`` clear of the face with landmarks ``truth`` (if any)."""
        height, width = image.shape[:2]
        for _ in range(50):
            side = self.rng.uniform(40, 0.6 * min(height, width))
            corner = self.rng.uniform([0, 0], [width - side, height - side])
            if truth is None:
                break
            centre, size = landmark_extent(truth)
            if np.abs(corner + side / 2 - centre).max() > 0.6 * (size + side):
                break
        return np.concatenate([corner, corner + side])


def make_rows(count: int, seed: int) -> pd.DataFrame:
    samples = Samples(seed)
    checker = LandmarkConfidence(samples.landmarker.predictor)
    rows = []
    start = time.perf_counter()
    while len(rows) < count:
        for kind, image, landmarks, error in samples.rows():
            measures = checker.measure(np.ascontiguousarray(image), landmarks)
            rows.append({"kind": kind, "source": samples.source, "error": error, **dict(zip(MEASURES, measures))})
            if len(rows) % 500 == 0:
                print(f"  {len(rows)} rows, {time.perf_counter() - start:.0f} s", flush=True)
    return pd.DataFrame(rows[:count])


def face_box(rows: pd.DataFrame) -> tuple[float, float, float]:
    """The commonest HOG window (centre x, y, side) of the good rows' registered faces."""
    good = rows[(rows["error"] < ERROR_BOUND) & rows["window_side"].notna()]
    windows = good[["window_x", "window_y", "window_side"]].round(1)
    return tuple(float(v) for v in windows.value_counts().index[0])  # type: ignore[return-value]


def features(rows: pd.DataFrame, box: tuple[float, float, float]) -> np.ndarray:
    return features_of(rows[list(MEASURES)].to_numpy(), box)


def fit(rows: pd.DataFrame, box: tuple[float, float, float]) -> Calibration:
    from sklearn.linear_model import LogisticRegression

    x = CALIBRATION.inputs(features(rows, box))
    keep = np.isfinite(x).all(axis=1)
    x, good = x[keep], (rows["error"] < ERROR_BOUND).to_numpy()[keep]
    signs = np.array(Calibration.SIGNS)  # the direction each feature must act in (monotone calibration)
    used = list(range(len(FEATURES)))
    while True:  # a feature fitted against its direction is left out (weight 0) and the rest refitted
        model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000).fit(x[:, used], good)
        wrong = [f for f, w in zip(used, model.coef_[0], strict=True) if w * signs[f] < 0]
        if not wrong:
            break
        print(f"  {[FEATURES[f] for f in wrong]} fitted against its direction: left out")
        used = [f for f in used if f not in wrong]
    weights = np.zeros(len(FEATURES))
    weights[used] = model.coef_[0]
    return Calibration(
        weights=tuple(round(float(w), 4) for w in weights),  # type: ignore[arg-type]
        bias=round(float(model.intercept_[0]), 4),
    )


def report(name: str, calibration: Calibration, box: tuple[float, float, float], rows: pd.DataFrame) -> None:
    from sklearn.metrics import roc_auc_score

    p = calibration(features(rows, box))
    good = (rows["error"] < ERROR_BOUND).to_numpy()
    error = rows["error"].to_numpy()
    print(
        f"\n{name}: weights {calibration.weights}, bias {calibration.bias}, FACE_BOX {box}; "
        f"AUC {roc_auc_score(good, p):.4f}"
    )
    print("  confidence      rows   good   median error (faces)")
    for lo, hi in ((0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)):
        inside = (p >= lo) & (p < hi)
        faces = inside & np.isfinite(error)
        median = f"{np.median(error[faces]):.3f}" if faces.any() else "-"
        share = f"{good[inside].mean():.3f}" if inside.any() else "-"
        print(f"  [{lo:.1f}, {min(hi, 1):.1f}{')' if hi <= 1 else ']'}   {inside.sum():6d}  {share:>5}   {median}")
    for cut in (0.8, 0.9):
        kept = p >= cut
        faces = kept & np.isfinite(error)
        print(
            f"  confidence >= {cut}: {kept.sum()} rows, {good[kept].mean():.3f} within {ERROR_BOUND:.2f} IOD, "
            f"error median {np.median(error[faces]):.3f}, 95th percentile {np.percentile(error[faces], 95):.3f}; "
            f"not-faces kept {(~np.isfinite(error[kept])).sum()}; good rows dropped {(good & ~kept).sum()} "
            f"of {good.sum()}"
        )
    table = pd.DataFrame({"kind": rows["kind"], "source": rows["source"], "p": p, "good": good})
    print("  median confidence (good rows | bad rows), and the good rows a 0.9 cut drops:")
    for key in ("source", "kind"):
        for value, part in table.groupby(key):
            g, b = part[part.good].p, part[~part.good].p
            print(
                f"    {value:<16} {g.median() if len(g) else float('nan'):.3f} (n={len(g)}) | "
                f"{b.median() if len(b) else float('nan'):.3f} (n={len(b)});  dropped at 0.9: {(g < 0.9).sum()}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=Path, help="keep the rows (measures, error) here; reused if it exists")
    args = parser.parse_args()
    print(describe_machine())
    if args.rows and args.rows.exists():
        rows = pd.read_csv(args.rows)
    else:
        print(f"making {args.samples} rows (seed {args.seed})")
        rows = make_rows(args.samples, args.seed)
        if args.rows:
            rows.to_csv(args.rows, index=False)
    print(rows.groupby(["source", "kind"])["error"].agg(rows="size", good=lambda e: float((e < ERROR_BOUND).mean())))
    split = int(0.7 * len(rows))
    train, test = rows.iloc[:split], rows.iloc[split:]
    box = face_box(train)
    refit = fit(train, box)
    print(f"\nrefit on {len(train)} rows; held out: {len(test)} rows")
    report("shipped CALIBRATION", CALIBRATION, FACE_BOX, test)
    report("refit", refit, box, test)
    print(
        f"\nto ship the refit (aumaps/confidence.py):\nFACE_BOX = {box}\n"
        f"CALIBRATION = Calibration(weights={refit.weights}, bias={refit.bias})"
    )


if __name__ == "__main__":
    main()
