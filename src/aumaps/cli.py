"""The ``aumaps`` command line: a thin layer over the Python API.

    aumaps predict PATH... [--weights W] [--out results.csv] [--maps DIR]
    aumaps aus                      # the AU catalogue
    aumaps info WEIGHTS             # a checkpoint's model card
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

log = logging.getLogger("aumaps")


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="AU intensities (CSV) and AU maps (overlays) for images and folders",
        description="Detect every face, estimate each AU's intensity (0-5) and heatmap, and write "
        "one CSV row per face (OpenFace-style AUxx_r columns).",
    )
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--weights", default="default",
                   help="'default' (bundled demo model), 'official' (BMVC 2018 release, downloaded "
                   "once into the user cache) or a checkpoint file (default: %(default)s)")
    p.add_argument("--out", default="results.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--maps", metavar="DIR", help="write one overlay PNG per face into DIR")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--detector", default="dlib", help="face detector (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per network call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    import cv2

    from .predict import AUEstimator, predict_files, write_csv
    from .visualise import overlay

    est = AUEstimator(weights=args.weights, detector=args.detector, device=args.device,
                      batch_size=args.batch_size)
    _announce_model(est.checkpoint)
    maps_dir = Path(args.maps) if args.maps else None
    if maps_dir:
        maps_dir.mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    n_files = n_faces = n_empty = 0
    errors: list[str] = []
    try:
        for result in write_csv(predict_files(est, args.paths, progress=not args.quiet), args.out, est.aus):
            if result.error:
                errors.append(result.error)
                log.error(result.error)
                continue
            n_files += 1
            n_faces += len(result.faces)
            n_empty += not result.faces
            if not result.faces:
                log.warning("%s: no face found (row with success 0)", result.path)
            if maps_dir and result.faces:
                stem = _unique(result.path.stem, used_names)
                for face in result.faces:
                    picture = overlay(result.image, result.faces, face_index=face.face)
                    cv2.imwrite(str(maps_dir / f"{stem}_face{face.face}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    except KeyboardInterrupt:
        print(f"\ninterrupted: rows written so far are in {args.out}", file=sys.stderr)
        return 130
    print(f"{n_files} image(s), {n_faces} face(s), {n_empty} without a face, {len(errors)} unreadable "
          f"-> {args.out}" + (f", overlays in {maps_dir}" if maps_dir else ""))
    if errors:
        print("failed files:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


def _unique(stem: str, used: set[str]) -> str:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name


def _announce_model(checkpoint) -> None:
    card = checkpoint.card or {}
    name = card.get("name", Path(str(checkpoint.path)).name)
    trained = card.get("trained_on", "unknown data")
    print(f"model: {name} (trained on {trained}; AUs {', '.join(map(str, checkpoint.aus))})", file=sys.stderr)
    if card.get("warning"):
        print(f"note: {card['warning']}", file=sys.stderr)


def _add_aus(sub) -> None:
    p = sub.add_parser("aus", help="list the AU catalogue and the named AU sets")
    p.set_defaults(func=cmd_aus)


def cmd_aus(args) -> int:
    from .aus import AU_SETS, CATALOGUE

    for au in CATALOGUE.values():
        rules = "; ".join(
            "mean(" + ",".join(map(str, c.landmarks)) + ")" + (f"+{c.offset} IOD" if any(c.offset) else "")
            for c in au.centres
        )
        print(f"{au.label}  {au.name:<22} centres: {rules}")
    for name, numbers in AU_SETS.items():
        print(f"set {name}: {', '.join(map(str, numbers))}")
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's model card, AUs and architecture")
    p.add_argument("weights", nargs="?", default="default")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    import json

    from .weights import load_checkpoint

    ckpt = load_checkpoint(args.weights)
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    print(json.dumps({"path": str(ckpt.path), "kind": ckpt.kind, "aus": list(ckpt.aus),
                      "arch": ckpt.model.config, "parameters": n_params, "codec": ckpt.codec,
                      "card": ckpt.card}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="aumaps", description="Facial Action Unit intensity and localisation by heatmap regression."
    )
    parser.add_argument("--version", action="version", version=f"aumaps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_predict(sub)
    _add_aus(sub)
    _add_info(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s: %(message)s")
    from .weights import WeightsError

    try:
        return int(args.func(args) or 0)
    except (WeightsError, FileNotFoundError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"aumaps {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
