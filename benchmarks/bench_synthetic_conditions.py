"""Where the bundled model's synthetic ICC is lost: clean faces against the same faces under nuisances.

    python benchmarks/bench_synthetic_conditions.py [--weights default] [--baseline WEIGHTS]
                                                     [--identities 120] [--seed 7] [--revision 2]

Renders fresh synthetic faces (identities of a seed no training set uses, two expressions
each, drawn as :func:`aumaps.data.synth.sample_intensities` draws them) twice: once **clean**
(the identity's own frontal photo, no camera or scene nuisance) and once under the
generator's **nuisances** (:func:`aumaps.data.synth.nuisance.sample_nuisance`: turned heads,
occluders, small, dark, blurred and compressed faces). Each is read as ``aumaps predict``
reads a face, from its exact landmarks (so the detector is not what is measured), and the
per-AU ICC(3,1) of the two conditions is printed side by side, with the ICC of the nuisance
faces left after each kind of nuisance is taken out.

What it shows: how much of the held-out error is the camera and scene (clean minus
nuisance) and how much is the model or the generator itself (what clean faces still miss);
an AU weak even on clean faces is one the renderer draws too faintly or too like another AU.
``--revision`` picks the generator's revision (``docs/synthetic.md``; default the latest).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from aumaps import AUEstimator
from aumaps.aus import get_au
from aumaps.data.synth import REVISION, make_identity, render, sample_intensities, sample_nuisance, sample_sides
from aumaps.hardware import describe_machine
from aumaps.metrics import icc31


def _rows(est: AUEstimator, identities: int, seed: int, revision: int) -> pd.DataFrame:
    rows = []
    for i in tqdm(range(identities), desc="faces", unit="identity"):
        identity = make_identity(i, seed)
        for k in range(2):
            rng = np.random.default_rng([seed, i, k])
            truth = sample_intensities(rng)
            sides = sample_sides(rng)
            nz = sample_nuisance(rng)
            for condition, nuisance in (("clean", False), ("nuisance", nz)):
                strokes = np.random.default_rng([seed + 1, i, k])
                image, landmarks = render(identity, truth, strokes, nuisance, 256, sides, revision)
                face = est.predict(image, landmarks=landmarks)[0]
                row = {
                    "condition": condition,
                    "turned": abs(nz.yaw) >= 20 or abs(nz.pitch) >= 15,
                    "occluded": nz.occluder,
                    "small": nz.downscale < 0.6,
                    "dark": nz.low_light < 1.0,
                    "motion": nz.motion[0] > 0,
                }
                row |= {f"true{au}": truth[au] for au in est.aus}
                row |= {f"pred{au}": float(v) for au, v in zip(est.aus, face.intensities)}
                rows.append(row)
    return pd.DataFrame(rows)


def _icc(table: pd.DataFrame, aus) -> np.ndarray:
    return np.array([icc31(table[f"pred{au}"].to_numpy(), table[f"true{au}"].to_numpy()) for au in aus])


def _report(weights: str, identities: int, seed: int, revision: int) -> None:
    est = AUEstimator(weights)
    table = _rows(est, identities, seed, revision)
    clean, nuisance = table[table.condition == "clean"], table[table.condition == "nuisance"]
    a, b = _icc(clean, est.aus), _icc(nuisance, est.aus)
    print(f"\n== {weights}: {len(clean)} faces of {identities} unseen identities, ICC(3,1)")
    print(f"   (identities' seed {seed}, the generator's revision {revision})")
    print(f"  {'AU':<6}{'name':<22}{'clean':>7}{'nuisance':>10}")
    for au, x, y in zip(est.aus, a, b):
        print(f"  AU{au:02d}  {get_au(au).name[:20]:<22}{x:7.2f}{y:10.2f}")
    print(f"  {'mean':<28}{np.nanmean(a):7.3f}{np.nanmean(b):10.3f}")
    for column in ("turned", "occluded", "small", "dark", "motion"):
        kept = nuisance[~nuisance[column]]
        print(
            f"  nuisance faces without the {column} ones ({int(nuisance[column].sum())} taken out): "
            f"mean ICC {np.nanmean(_icc(kept, est.aus)):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--baseline", help="a second checkpoint, measured on the same faces")
    parser.add_argument("--identities", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7, help="identities' seed (training used 0, testing 1)")
    parser.add_argument("--revision", type=int, default=REVISION, help="the generator's (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_machine())
    for weights in [args.weights] + ([args.baseline] if args.baseline else []):
        _report(weights, args.identities, args.seed, args.revision)


if __name__ == "__main__":
    main()
