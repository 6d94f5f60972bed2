"""The ``aumaps`` command line: a thin layer over the Python API.

aumaps predict PATH... [--weights W] [--out results.csv] [--maps DIR]
aumaps synth OUT                # synthetic AU faces with known intensities and centres
aumaps prepare bp4d|disfa ROOT --out DIR   # a licensed data set -> manifest + crop cache
aumaps prepare manifest M [M2...] --out CACHE   # any data set(s) described by manifests
aumaps train --config configs/X.yaml [--resume]
aumaps evaluate --weights W --data CACHE [--split test] --out DIR
aumaps robustness --weights W --data CACHE --out DIR
aumaps calibrate --weights W --data CACHE --out W2   # readout gain + threshold, fitted on val
aumaps demo                     # the research pipeline end to end, offline, in minutes
aumaps aus                      # the AU catalogue
aumaps info WEIGHTS             # a checkpoint's model card
aumaps export --onnx OUT        # the network for other inference engines
aumaps quantize --weights W --data CACHE   # an int8 model, kept only if accurate enough
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

#: When the command started (this module is the first of aumaps a command imports), so that
#: reported speeds count the whole run: imports, model loading, engine building included.
_STARTED = time.perf_counter()
#: The inference engines (``aumaps.runtime.BACKENDS``, named here so that building the
#: parser does not import PyTorch).
ENGINES = ["auto", "torch", "fast", "onnx", "openvino", "int8"]

__all__ = ["main", "build_parser"]

log = logging.getLogger("aumaps")


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="AU intensities (CSV) and AU maps (overlays) for images, folders, videos and webcams",
        description="Detect every face, estimate each AU's intensity (0-5) and heatmap, and write "
        "one CSV row per face (OpenFace-style AUxx_r columns). Videos (by file suffix), folders of "
        "frames (--sequence) and cameras (--webcam N) are analysed frame by frame with face "
        "tracking, one CSV per video with a row per frame and face.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        help="image files and/or folders (searched recursively), "
        "video files, or with --sequence folders of frames; a folder holding videos is a study "
        "(see --out-dir)",
    )
    p.add_argument(
        "--weights",
        default="default",
        help="'default' (bundled demo model), 'official' (BMVC 2018 release, downloaded "
        "once into the user cache) or a checkpoint file (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        default="results.csv",
        help="CSV to write (default: %(default)s); with several videos, or videos and images, "
        "one CSV per source: OUT's name + _NAME (images: _images)",
    )
    p.add_argument(
        "--maps", metavar="DIR", help="write one overlay PNG per image into DIR: every face's AU maps and intensities"
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device (default: cpu; a study under torchrun: cuda:LOCAL_RANK where there are GPUs)",
    )
    p.add_argument("--detector", default="dlib", help="face detector (default: %(default)s)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="crops per network call (default: what the engine runs fastest with)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-pixels",
        type=_pixel_count,
        default=None,
        metavar="N",
        help="refuse images (and frames) of more than N pixels, read from their headers before "
        "decoding (default: $AUMAPS_MAX_PIXELS, else 100e6)",
    )
    p.add_argument(
        "--backend",
        choices=ENGINES,
        default="auto",
        help="network engine: auto (the fastest one that keeps intensities within --max-error of "
        "float32 on this machine, built once and kept in the user cache), torch (the float32 "
        "reference), fast (PyTorch, bfloat16 where native), onnx (ONNX Runtime), openvino, int8 "
        "(a model made by `aumaps quantize`) (default: %(default)s)",
    )
    p.add_argument(
        "--max-error",
        type=float,
        default=0.05,
        help="largest |intensity - float32| a fast engine may show (default: %(default)s)",
    )
    p.add_argument(
        "--no-shift-test",
        dest="shift_test",
        action="store_false",
        default=None,
        help="read each face as registered, not also moved one map pixel each way (the bundled "
        "model's shift test): a fifth of the network time, slightly less accurate; --webcam "
        "always reads so",
    )
    p.add_argument("--fast", action="store_const", const="auto", dest="backend", help=argparse.SUPPRESS)
    video = p.add_argument_group("videos, frame sequences and webcams")
    video.add_argument("--webcam", type=int, metavar="N", help="analyse camera N live (stop with Ctrl-C)")
    video.add_argument(
        "--sequence",
        action="store_true",
        help="treat folders as videos: their images, in natural order, are the frames",
    )
    video.add_argument(
        "--fps",
        type=float,
        default=30.0,
        help="frame rate of --sequence folders, for timestamps (default: %(default)s)",
    )
    video.add_argument(
        "--overlay",
        metavar="FILE",
        help="write the video with the AU maps drawn on each face and intensity bars (.mp4/.avi)",
    )
    video.add_argument("--plot", metavar="FILE", help="write the AU intensity time series as a PNG")
    video.add_argument(
        "--report",
        metavar="DIR",
        nargs="?",
        const="",
        help="write a self-contained HTML report (plot, per-AU statistics, peak frames) into DIR; "
        "in a study (no DIR): one per video beside its CSV, and the study page OUT_DIR/index.html",
    )
    video.add_argument(
        "--smooth",
        metavar="SPEC",
        help="temporal smoothing of the intensities: ema[:ALPHA] (exponential, default "
        "alpha 0.5) or window[:K] (centred mean over K frames, default 5); default: none",
    )
    video.add_argument(
        "--redetect",
        type=int,
        default=30,
        metavar="N",
        help="run the face detector at least every N frames, tracking in between (default: %(default)s)",
    )
    pose = p.add_argument_group(
        "head pose (pose_* columns)",
        "the camera, where known, in pixels; what is not "
        "given is OpenFace's default: fx = fy = mean of 500 x width/640 and 500 x height/480, "
        "principal point at the image centre",
    )
    pose.add_argument("--fx", type=float, help="focal length along x (also fy unless --fy is given)")
    pose.add_argument("--fy", type=float, help="focal length along y (also fx unless --fx is given)")
    pose.add_argument("--cx", type=float, help="principal point x")
    pose.add_argument("--cy", type=float, help="principal point y")
    study = p.add_argument_group(
        "studies",
        "a folder tree of videos (and images) in one command: one CSV per video mirroring the tree "
        "(the images of a folder: one images.csv), each written under a temporary name and renamed when "
        "complete; a rerun skips what is complete (made from the same input with the same model and aumaps "
        "version) and redoes the rest; a run log OUT_DIR/run.json. See docs/study.md",
    )
    study.add_argument(
        "--out-dir",
        metavar="DIR",
        help="analyse PATHS as a study into DIR (default for a folder holding videos: --out "
        "without its suffix, i.e. results/)",
    )
    study.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes on this machine, the CPU cores divided between them (default: %(default)s)",
    )
    study.add_argument(
        "--force",
        action="store_true",
        help="analyse every item again, complete or not (by default a rerun redoes only what is "
        "missing, failed, or made from another input or model)",
    )
    study.add_argument(
        "--shard",
        metavar="I/N",
        help="analyse only shard I (0-based) of N, e.g. $SLURM_ARRAY_TASK_ID/N; under torchrun each "
        "rank takes its own shard by itself",
    )
    study.add_argument(
        "--baseline",
        nargs="?",
        const="default",
        metavar="FORM",
        help="also write per-person corrected intensities (AUxx_r_corr): each face track's neutral "
        "estimated from the video, per AU (scalar, the default) or per AU-map pixel (map)",
    )
    study.add_argument(
        "--baseline-percentile",
        type=float,
        default=None,
        metavar="P",
        help="the low percentile of a track taken as its neutral (default: 5)",
    )
    p.set_defaults(func=cmd_predict)


def _pixel_count(text: str) -> int:
    """``--max-pixels``: a positive number of pixels (``2e8`` and ``200_000_000`` allowed)."""
    try:
        value = int(float(text.replace("_", "")))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive number of pixels, e.g. 200e6 (got {text!r})")
    return value


def cmd_predict(args) -> int:
    from .images import MAX_PIXELS_ENV
    from .runtime import EngineUnavailable
    from .study import DEFAULT_FORM, DEFAULT_PERCENTILE, StudyOptions, holds_videos, run_study

    if args.max_pixels is not None:  # every reader of this run, its study workers and frame folders too
        os.environ[MAX_PIXELS_ENV] = str(args.max_pixels)

    live = args.webcam is not None
    if args.out_dir is not None or (
        not args.sequence and not live and any(Path(p).is_dir() and holds_videos(p) for p in args.paths)
    ):
        from .shards import parse_shard  # a light module: a resumed study imports no PyTorch

        if live or not args.paths:
            raise ValueError("a study is folders and files of videos and images: give their paths (not --webcam)")
        if args.overlay or args.plot:
            raise ValueError("--overlay and --plot name one file: in a study, --report writes a report per video")
        if any(v is not None for v in (args.fx, args.fy, args.cx, args.cy)):
            raise ValueError(
                "--fx, --fy, --cx and --cy do not reach a study's workers yet: analyse its videos "
                "with aumaps predict VIDEO --out CSV, or use the default camera"
            )
        out_dir = Path(args.out_dir) if args.out_dir is not None else Path(args.out).with_suffix("")
        if args.report:
            log.warning(
                "--report %s: in a study each video's report goes beside its CSV under %s", args.report, out_dir
            )
        options = StudyOptions(
            weights=args.weights,
            detector=args.detector,
            device=args.device,
            batch_size=args.batch_size,
            backend=args.backend,
            max_error=args.max_error,
            shift_test=args.shift_test,
            redetect_every=args.redetect,
            smooth=args.smooth,
            fps=args.fps,
            sequence=args.sequence,
            report=args.report is not None,
            baseline=DEFAULT_FORM if args.baseline == "default" else args.baseline,
            baseline_percentile=DEFAULT_PERCENTILE if args.baseline_percentile is None else args.baseline_percentile,
            workers=args.workers,
            shard=parse_shard(args.shard),
            force=args.force,
            progress=not args.quiet,
        )
        try:
            run = run_study(args.paths, out_dir, options)
        except EngineUnavailable as err:
            print(f"aumaps predict: error: {err}", file=sys.stderr)
            return 2
        counts = ", ".join(f"{n} {status}" for status, n in sorted(run.counts.items()))
        where = f"shard {run.shard[0]} of {run.shard[1]}, " if run.shard else ""
        print(f"study: {where}{len(run.items)} item(s): {counts} -> {out_dir} (log {run.log_path})")
        if run.redone:
            reasons = Counter(run.redone.values())
            print(
                f"analysed again: {len(run.redone)} item(s) whose CSV existed: "
                + "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common()),
                file=sys.stderr,
            )
        if run.frames:
            print(f"{run.frames} frame(s) analysed in {run.seconds:.1f} s: {run.frames / run.seconds:.1f} frames/s")
        if run.failed:
            print("failed:\n  " + "\n  ".join(f"{e['source']}: {e['error']}" for e in run.failed), file=sys.stderr)
        if run.interrupted:
            print("interrupted: what is complete is kept; run the same command again to finish", file=sys.stderr)
        return run.exit_status
    if args.workers != 1 or args.shard or args.baseline or args.baseline_percentile is not None or args.force:
        raise ValueError("--workers, --shard, --force and --baseline apply to studies: give --out-dir DIR")
    if args.report == "":
        raise ValueError("--report needs a folder (DIR) outside a study")
    args.device = args.device or "cpu"
    import cv2

    from .atomic import write_bytes
    from .images import list_images
    from .predict import AUEstimator, predict_files, write_image_csv
    from .video import IntensitySmoother, is_video_file
    from .visualise import overlay

    videos = [p for p in args.paths if is_video_file(p) or (args.sequence and Path(p).is_dir())]
    images = [p for p in args.paths if p not in videos]
    if not images and not videos and not live:
        raise ValueError("nothing to analyse: give image or video paths, or --webcam N")
    for folder in (p for p in images if Path(p).is_dir()):
        if not list_images(folder):
            raise ValueError(f"'{folder}' holds no image or video that aumaps can read")
    if not videos and not live and (args.overlay or args.plot or args.report or args.smooth):
        raise ValueError("--overlay, --plot, --report and --smooth apply to videos, --sequence folders and --webcam")
    if args.smooth:
        IntensitySmoother.parse(args.smooth)  # a bad spec fails before any work
    try:
        est = AUEstimator(
            weights=args.weights,
            detector=args.detector,
            device=args.device,
            batch_size=args.batch_size,
            backend=args.backend,
            max_error=args.max_error,
            camera={"fx": args.fx, "fy": args.fy, "cx": args.cx, "cy": args.cy},
            shift_test=False if live else args.shift_test,  # live frames cannot wait for the shift test
        )
    except EngineUnavailable as err:  # a back-end's optional packages, or no int8 model
        print(f"aumaps predict: error: {err}", file=sys.stderr)
        return 2
    _announce_model(est.checkpoint)
    print(f"network: {est.engine.describe()}", file=sys.stderr)
    if videos or live:
        status = _predict_videos(est, videos, args, several=len(videos) + live + bool(images) > 1)
        if not images or status == 130:
            return status
        args.out = _per_source(args.out, "images", True)
    maps_dir = Path(args.maps) if args.maps else None
    if maps_dir:
        maps_dir.mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    n_files = n_faces = n_empty = 0
    errors: list[str] = []
    try:
        for result in write_image_csv(predict_files(est, images, progress=not args.quiet), args.out, est.aus):
            if result.error:
                errors.append(result.error)
                log.error(result.error)
                continue
            n_files += 1
            n_faces += len(result.faces)
            n_empty += not result.faces
            if not result.faces:
                log.warning("%s: no face found (row with success 0)", result.path)
            if maps_dir and result.faces:  # one picture per image, every face in it
                picture = cv2.imencode(".png", cv2.cvtColor(overlay(result.image, result.faces), cv2.COLOR_RGB2BGR))[1]
                write_bytes(maps_dir / f"{_unique(result.path.stem, used_names)}.png", picture.tobytes())
    except KeyboardInterrupt:
        print(f"\ninterrupted: rows written so far are in {args.out}", file=sys.stderr)
        return 130
    print(
        f"{n_files} image(s), {n_faces} face(s), {n_empty} without a face, {len(errors)} unreadable "
        f"-> {args.out}" + (f", overlays in {maps_dir}" if maps_dir else "")
    )
    if errors:
        print("failed files:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


def _per_source(path: str, stem: str, several: bool) -> Path:
    """The output ``path`` of one source: as given, or with ``_stem`` added (inside it for a
    folder-like path without suffix) when several sources share the option."""
    out = Path(path)
    if not several:
        return out
    return out / stem if not out.suffix else out.with_name(f"{out.stem}_{stem}{out.suffix}")


def _predict_videos(est, videos: list[str], args, several: bool) -> int:
    from .video import (
        ImageSequenceSource,
        IntensitySmoother,
        VideoFileSource,
        VideoOpenError,
        WebcamSource,
        process_video,
    )

    jobs = [
        (v, lambda v=v: ImageSequenceSource(v, args.fps) if Path(v).is_dir() else VideoFileSource(v)) for v in videos
    ]
    if args.webcam is not None:
        jobs.append((f"webcam{args.webcam}", lambda: WebcamSource(args.webcam)))
    used: set[str] = set()
    status = 0
    frames = 0
    for name, open_source in jobs:
        stem = _unique(Path(name).stem or Path(name).name, used)
        try:
            source = open_source()
        except (VideoOpenError, FileNotFoundError) as err:
            log.error("%s", err)
            status = 1
            continue
        outputs = {
            key: _per_source(value, stem, several) if value else None
            for key, value in (("overlay", args.overlay), ("plot", args.plot), ("report", args.report))
        }
        summary = process_video(
            est,
            source,
            _per_source(args.out, stem, several),
            **outputs,
            smoother=IntensitySmoother.parse(args.smooth) if args.smooth else None,
            redetect_every=args.redetect,
            progress=not args.quiet,
        )
        written = ", ".join(f"{kind} {path}" for kind, path in summary.outputs.items())
        print(
            f"{summary.source}: {summary.frames} frame(s), {summary.frames_with_face} with a face, "
            f"{summary.face_ids} face track(s), {summary.unreadable} undecodable, "
            f"{summary.fps:.1f} frames/s -> {written}"
        )
        status = max(status, 1 if summary.problems else 0)
        frames += summary.frames
        if summary.interrupted and not source.live:
            print(f"interrupted: the frames analysed so far are written ({written})", file=sys.stderr)
            return 130
    if frames:
        wall = time.perf_counter() - _STARTED
        print(
            f"{frames} frame(s) in {wall:.1f} s: {frames / wall:.1f} frames/s for the whole run "
            "(start-up, model and engine loading included)"
        )
    return status


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


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint for other inference engines (ONNX)")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument("--weights", default="default", help="checkpoint to export (default: %(default)s)")
    p.add_argument("--no-verify", action="store_true", help="do not compare ONNX Runtime's output with PyTorch's")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest |ONNX Runtime - PyTorch| of the maps accepted; beyond it the export is an error and "
        "nothing is written (default: %(default)s)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .runtime.export import export_onnx

    try:
        result = export_onnx(args.weights, args.onnx, verify=not args.no_verify, tolerance=args.tolerance)
    except ImportError as err:
        print(f"aumaps export: error: {err.msg} (pip install onnx onnxscript onnxruntime)", file=sys.stderr)
        return 2
    check = "not verified" if result.max_abs_diff is None else f"max |ONNX Runtime - PyTorch| {result.max_abs_diff:.2e}"
    print(
        f"{result.path}: input 'crops' (N, S, S, 3) uint8 RGB registered crops, output 'maps' "
        f"(N, {len(result.aus)}, S/4, S/4) for AUs {', '.join(map(str, result.aus))}; {check}"
    )
    return 0


def _add_quantize(sub) -> None:
    p = sub.add_parser(
        "quantize",
        help="make an int8 model of a checkpoint, check its accuracy, keep it only if it holds",
        description="Quantize the network to int8 (ONNX Runtime, static, calibrated on crops of --data), "
        "compare its intensities with float32 on held-out crops, and keep it for this machine only if the "
        "worst difference is within --max-error; `aumaps predict --backend int8` (and auto) then use it. "
        "Without --data, synthetic probe faces are used for both steps.",
    )
    p.add_argument("--weights", default="default", help="checkpoint (default: %(default)s)")
    p.add_argument("--data", metavar="CACHE", help="crop cache (aumaps prepare) of the data the model is for")
    p.add_argument("--calibration-split", default="train", help="split to calibrate on (default: %(default)s)")
    p.add_argument("--split", default="val", help="held-out split to check on (default: %(default)s)")
    p.add_argument("--crops", type=int, default=256, help="crops for each step, at most (default: %(default)s)")
    p.add_argument(
        "--max-error",
        type=float,
        default=0.05,
        help="largest |intensity - float32| accepted on the held-out crops (default: %(default)s)",
    )
    p.add_argument("--out", metavar="FILE", help="also write the accepted int8 model (ONNX) there")
    p.set_defaults(func=cmd_quantize)


def _crops_for_quantizing(args) -> tuple:
    import numpy as np

    from .runtime.probe import probe_crops

    if not args.data:
        return probe_crops(args.crops, seed=1), probe_crops(args.crops, seed=2), "synthetic probe faces"
    from .data.cache import CropCache

    cache = CropCache(args.data)
    rng = np.random.default_rng(0)
    chosen = []
    for split in (args.calibration_split, args.split):
        rows = cache.indices(None if split == "all" else split)
        if len(rows) == 0:
            raise ValueError(f"the cache at {args.data} has no valid rows in split {split!r}")
        rows = np.sort(rng.choice(rows, min(args.crops, len(rows)), replace=False))
        chosen.append(np.asarray(cache.crops[rows]))
    return chosen[0], chosen[1], f"{args.data} ({args.calibration_split} / {args.split})"


def cmd_quantize(args) -> int:
    from .runtime import EngineUnavailable
    from .runtime.quantize import Refused, quantize_int8
    from .weights import load_checkpoint

    ckpt = load_checkpoint(args.weights)
    crop_size = ckpt.codec.crop_size
    calibration, held_out, source = _crops_for_quantizing(args)
    print(f"calibrating on {len(calibration)} crops, checking on {len(held_out)} held-out crops of {source}")
    try:
        result = quantize_int8(
            ckpt.model, calibration, held_out, max_error=args.max_error, crop_size=crop_size, out=args.out
        )
    except Refused as refused:
        r = refused.result
        print(
            f"refused: int8 {r.accuracy}; ONNX Runtime here: float32 {r.ms_float32:.1f} ms/crop, "
            f"int8 {r.ms_int8:.1f} ms/crop. Nothing was kept: predictions stay in float32 or bfloat16."
        )
        return 1
    except EngineUnavailable as err:
        print(f"aumaps quantize: error: {err}", file=sys.stderr)
        return 2
    print(
        f"accepted: int8 {result.accuracy}; ONNX Runtime here: float32 {result.ms_float32:.1f} ms/crop, "
        f"int8 {result.ms_int8:.1f} ms/crop. Kept at {result.path}"
        + (f" and {args.out}" if args.out else "")
        + "; `aumaps predict --backend int8` (and auto) use it on this machine."
    )
    return 0


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
    p = sub.add_parser("info", help="the pretrained models, or a checkpoint's model card, AUs and architecture")
    p.add_argument(
        "weights",
        nargs="?",
        default=None,
        help="a registered name (default, official) or a checkpoint file; none: list the registry",
    )
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    import json

    from .pretrained import list_pretrained

    if args.weights is None:
        for entry in list_pretrained():
            state = "bundled" if entry.bundled else ("in the cache" if entry.path().is_file() else "downloaded on use")
            print(f"{entry.name:<10} {entry.description} [{state}]")
            for key in ("aus", "trained_on", "licence", "source", "sha256", "input", "paper", "notes"):
                value = entry.card()[key]
                if value:
                    print(f"{'':<10}   {key}: {', '.join(map(str, value)) if key == 'aus' else value}")
        print("aumaps info NAME|FILE shows one model's full card.")
        return 0
    from .weights import load_checkpoint

    ckpt = load_checkpoint(args.weights)
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    print(
        json.dumps(
            {
                "path": str(ckpt.path),
                "kind": ckpt.kind,
                "aus": list(ckpt.aus),
                "arch": ckpt.model.config,
                "parameters": n_params,
                "codec": ckpt.codec.to_dict(),
                "card": ckpt.card,
            },
            indent=2,
        )
    )
    return 0


def _add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="register a data set once into a memory-mapped crop cache",
        description="manifest M --out CACHE: a manifest CSV into a cache. bp4d ROOT / disfa ROOT "
        "--out DIR: the distributed folder into DIR/manifest.csv and the cache DIR/cache "
        "(with --shard i/n: DIR/cache-shard-i-of-n). merge SHARD... --out CACHE: join shards.",
    )
    p.add_argument("source", choices=["manifest", "bp4d", "disfa", "merge"], help="data set kind")
    p.add_argument(
        "path",
        nargs="+",
        help="the manifest CSV (several: stacked into one data set), the data set's folder, or the shards' folders",
    )
    p.add_argument("--out", required=True, help="cache folder (manifest, merge) or output folder (bp4d, disfa)")
    p.add_argument("--aus", default=None, help="AUs to keep (default: every AUxx_r column)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--no-resume", action="store_true", help="rebuild from scratch")
    p.add_argument("--shard", default=None, metavar="I/N", help="build only shard I (0-based) of N")
    p.add_argument(
        "--redetect-every",
        type=int,
        default=30,
        metavar="K",
        help="in videos, detect faces at least every K frames and track in between",
    )
    p.add_argument(
        "--split",
        default="fera2015",
        help="bp4d: fera2015, kfold:K, none, or a subject,split CSV (default: %(default)s)",
    )
    p.add_argument(
        "--folds", default="standard", help="disfa: standard, kfold, none, or a subject,fold CSV (default: %(default)s)"
    )
    p.add_argument("--camera", choices=["left", "right"], default="left", help="disfa camera")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from .data.cache import merge_caches
    from .data.prepare import prepare_dataset, prepare_manifests
    from .shards import parse_shard

    if args.source == "merge":
        merge_caches(args.path, args.out)
        return 0
    try:
        shard = parse_shard(args.shard)
    except ValueError as err:
        raise SystemExit(f"--shard: {err}") from None
    if len(args.path) != 1 and args.source != "manifest":
        raise SystemExit(f"aumaps prepare {args.source} takes one path, got {len(args.path)}")
    build = {
        "workers": args.workers,
        "resume": not args.no_resume,
        "shard": shard,
        "redetect_every": args.redetect_every,
    }
    if args.source == "manifest":
        cache = prepare_manifests(args.path, args.out, args.aus, **build)
    else:
        cache = prepare_dataset(
            args.source,
            args.path[0],
            args.out,
            args.aus,
            split=None if args.split == "none" else args.split,
            folds=None if args.folds == "none" else args.folds,
            camera=args.camera,
            **build,
        )
    if shard is not None:
        print(
            f"shard {shard[0]} of {shard[1]} written to {cache}; when all are done: "
            f"aumaps prepare merge <the {shard[1]} shard folders> --out <cache>"
        )
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an AU heatmap network from a YAML config")
    p.add_argument("--config", required=True, help="YAML file (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override config values, e.g. train.epochs=5 model.width=128",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def cmd_train(args) -> int:
    from .train import load_config, train

    cfg = load_config(args.config, _overrides(args.set))
    out = train(cfg, resume=args.resume, progress=not args.quiet, device=args.device)
    print(f"run folder: {out} (model.pt, best.pt, metrics.csv)")
    return 0


def _add_model_over_data(p) -> None:
    """The options of a command that runs a checkpoint over a crop cache's split."""
    p.add_argument("--weights", required=True, help="a registered name (default, official) or a checkpoint")
    p.add_argument("--data", required=True, help="crop cache folder (aumaps prepare)")
    p.add_argument(
        "--split", default="test", help="train, val, test, all, or COLUMN=VALUE such as fold=1 (default: %(default)s)"
    )
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="network precision; auto: bfloat16 where this machine computes it natively, "
        "else float32 (default: %(default)s)",
    )


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="ICC, MAE, F1 and localisation error of a model on a cache split")
    _add_model_over_data(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_checkpoint

    split = None if args.split == "all" else args.split
    report = evaluate_checkpoint(
        args.weights,
        args.data,
        split=split,
        out_dir=args.out,
        device=args.device,
        amp=args.amp,
        title=f"{Path(args.weights).name} on {Path(args.data).name} ({args.split})",
    )
    print(report["table"].round(3).to_string())
    print(f"report: {args.out} (metrics.json, metrics.md, scatter.png, error_by_intensity.png)")
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit a model's readout calibration (a gain and a soft threshold on its maps) on a validation split",
    )
    p.add_argument("--weights", required=True, help="a registered name (default, official) or a checkpoint")
    p.add_argument("--data", required=True, help="crop cache folder (aumaps prepare)")
    p.add_argument("--split", default="val", help="train, val or COLUMN=VALUE; never test (default: %(default)s)")
    p.add_argument("--out", required=True, help="the calibrated checkpoint to write (same network weights)")
    p.add_argument(
        "--amp",
        default="fp32",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="network precision (default: %(default)s)",
    )
    p.add_argument(
        "--flip-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read each face with its mirror image too (the mean of the two maps), in the fit and from then on; "
        "--no-flip-test: once (default: what the checkpoint says)",
    )
    p.add_argument(
        "--shift-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read each face moved one map pixel each way too (the mean of the maps moved back), in the fit and "
        "from then on, at five times the network's time; --no-shift-test: as registered (default: what the "
        "checkpoint says)",
    )
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    from .evaluate import calibrate_checkpoint

    path, cal, stats = calibrate_checkpoint(
        args.weights,
        args.data,
        args.out,
        split=args.split,
        amp=args.amp,
        flip_test=args.flip_test,
        shift_test=args.shift_test,
    )
    readings = f"{'flip test, ' if stats['flip_test'] else ''}{'shift test, ' if stats['shift_test'] else ''}"
    print(
        f"{readings}gain {cal.gain:g}, threshold {cal.threshold:g}, "
        f"softness {cal.softness:g} on {stats['n']} faces: "
        f"mean ICC {stats['icc_before']:.3f} -> {stats['icc_after']:.3f}, "
        f"MAE {stats['mae_before']:.3f} -> {stats['mae_after']:.3f}"
    )
    print(f"wrote {path}")
    return 0


def _add_average(sub) -> None:
    p = sub.add_parser(
        "average",
        help="the mean of several checkpoints of one network (a model soup); calibrate the result again",
    )
    p.add_argument("weights", nargs="+", help="two or more checkpoints of one architecture, AU list and codec")
    p.add_argument("--out", required=True, help="the averaged checkpoint to write")
    p.set_defaults(func=cmd_average)


def cmd_average(args) -> int:
    from .weights import average_checkpoints

    path = average_checkpoints(args.weights, args.out)
    print(f"wrote {path}: the mean of {len(args.weights)} checkpoints, not calibrated (run aumaps calibrate on it)")
    return 0


def _add_robustness(sub) -> None:
    p = sub.add_parser("robustness", help="the paper's misalignment study: metrics vs landmark noise")
    _add_model_over_data(p)
    p.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0, 2.5, 5, 7.5, 10],
        help="landmark noise levels, %% of inter-ocular distance",
    )
    p.set_defaults(func=cmd_robustness)


def cmd_robustness(args) -> int:
    from .evaluate import robustness_study

    split = None if args.split == "all" else args.split
    table = robustness_study(
        args.weights, args.data, args.noise, split=split, out_dir=args.out, device=args.device, amp=args.amp
    )
    print(table.round(3).to_string())
    print(f"report: {args.out} (robustness.json, robustness.md, robustness.png)")
    return 0


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render synthetic AU faces with known intensities, landmarks and centres")
    p.add_argument("out", help="output folder (images/ and manifest.csv)")
    p.add_argument("--subjects", type=int, default=60, help="identities (default: %(default)s)")
    p.add_argument("--frames", type=int, default=50, help="frames per identity (default: %(default)s)")
    p.add_argument("--aus", default="all", help="AUs that may be active (default: %(default)s)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--first-subject",
        type=int,
        default=0,
        help="index of the first identity, to add new identities to an earlier set (default: 0)",
    )
    p.add_argument(
        "--splits",
        default="0.7,0.15,0.15",
        help="shares of subjects in train,val,test (default: %(default)s; 1,0,0: all train)",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--revision",
        type=int,
        default=None,
        help="the generator's revision, to render an older data set again (default: the latest)",
    )
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from .data.synth import REVISION, make_dataset

    try:
        splits = tuple(float(v) for v in args.splits.split(","))
    except ValueError:
        raise SystemExit(f"--splits must be three numbers TRAIN,VAL,TEST, got {args.splits!r}") from None
    if len(splits) != 3:
        raise SystemExit(f"--splits must be three numbers TRAIN,VAL,TEST, got {args.splits!r}")
    manifest = make_dataset(
        args.out,
        n_subjects=args.subjects,
        frames_per_subject=args.frames,
        aus=args.aus,
        seed=args.seed,
        size=args.size,
        workers=args.workers,
        splits=splits,
        first_subject=args.first_subject,
        revision=REVISION if args.revision is None else args.revision,
    )
    print(f"manifest: {manifest}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="synthetic data -> training -> evaluation -> prediction, offline, in minutes")
    p.add_argument("--out", default="aumaps-demo", help="report folder (default: %(default)s)")
    p.add_argument("--subjects", type=int, default=80, help="synthetic identities (default: %(default)s)")
    p.add_argument("--frames", type=int, default=15, help="frames per identity (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="override configs/demo.yaml's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .demo import run_demo

    out = run_demo(
        args.out, n_subjects=args.subjects, frames_per_subject=args.frames, epochs=args.epochs, seed=args.seed
    )
    print(f"demo report: {out / 'index.md'}")
    return 0


def _add_summarize(sub) -> None:
    p = sub.add_parser(
        "summarize",
        help="one row per video and face track of a study's CSVs: AU statistics and episodes",
        description="Read every per-video CSV under RESULTS (aumaps predict --out-dir) and write one row per "
        "video and face track: per AU mean, median, max, standard deviation, share of frames active (>= 1), "
        "activation episodes and their mean duration (s), frames with the face; corrected columns "
        "(--baseline) too. --by joins a participant/condition sheet on the video's name.",
    )
    p.add_argument("results", help="the study's output folder")
    p.add_argument("--out", default="summary.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--by", metavar="SHEET", help="a CSV with one row per video (participant, condition...)")
    p.add_argument(
        "--key",
        default="video",
        help="the sheet's column of video names (clip, clip.mp4 or folder/clip) (default: %(default)s)",
    )
    p.add_argument(
        "--page",
        metavar="HTML",
        nargs="?",
        const="",
        help="also write the study page (a row per video, a sparkline per AU, links to reports) to "
        "HTML (default: RESULTS/index.html)",
    )
    p.add_argument(
        "--baseline-by",
        metavar="COLUMN",
        help="correct every video against one neutral per participant, from all of their videos "
        "(COLUMN of the --by sheet names each video's participant): AUxx_r_corr statistics and "
        "AUxx_neutral columns",
    )
    p.add_argument(
        "--baseline-percentile",
        type=float,
        default=None,
        metavar="P",
        help="the participant neutral's percentile (default: 5)",
    )
    p.add_argument(
        "--baseline-min-frames",
        type=int,
        default=None,
        metavar="N",
        help="the fewest face frames a participant neutral is estimated from (default: 30)",
    )
    p.set_defaults(func=cmd_summarize)


def cmd_summarize(args) -> int:
    from .results import write_table
    from .study import summarize, write_study_page
    from .study.baseline import DEFAULT_MIN_FRAMES, DEFAULT_PERCENTILE

    table = summarize(
        args.results,
        by=args.by,
        key=args.key,
        baseline_by=args.baseline_by,
        percentile=DEFAULT_PERCENTILE if args.baseline_percentile is None else args.baseline_percentile,
        least_frames=DEFAULT_MIN_FRAMES if args.baseline_min_frames is None else args.baseline_min_frames,
    )
    write_table(table, args.out)  # names and labels never run as formulas
    print(f"{table['video'].nunique()} video(s), {len(table)} row(s) (one per video and face track) -> {args.out}")
    if args.page is not None:
        print(f"study page: {write_study_page(args.results, args.page or None)}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="AU maps in the browser: photos, videos and the live webcam (a local web app)",
        description="Start the aumaps web app and print how to open it (an address with its access "
        "token, and a local file that opens it). Photos and videos are analysed on this machine; the "
        "live view uses the browser's camera. Every request needs the token, as in Jupyter: it is "
        "made fresh at each start, or read from $AUMAPS_TOKEN or --token-file (never from the command "
        "line, which other users can see).",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: every network)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument(
        "--weights",
        default="default",
        help="model selected when the page opens: a registered name (default, official) or a checkpoint "
        "file (default: %(default)s)",
    )
    p.add_argument(
        "--models",
        metavar="DIR",
        help="also offer every checkpoint (*.pt, *.pth, *.pth.tar, *.ckpt) in DIR in the page's model picker",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device the networks run on: cpu, cuda, cuda:1, mps (default: %(default)s)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=500, help="largest photo or video accepted, in MB (default: %(default)s)"
    )
    p.add_argument(
        "--max-pixels",
        type=_pixel_count,
        default=None,
        metavar="N",
        help="refuse photos, frames and videos of more than N pixels, read from their headers before "
        "decoding (default: $AUMAPS_MAX_PIXELS, else 100e6)",
    )
    p.add_argument(
        "--retention",
        default="24h",
        metavar="DURATION",
        help="delete finished video jobs, photos and recordings after DURATION (90s, 30m, 12h, 7d), or "
        "'none' to keep them until the server stops (default: %(default)s)",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the access token from FILE's first line (else $AUMAPS_TOKEN, else a new random one)",
    )
    p.add_argument("--token", help=argparse.SUPPRESS)  # refused with a message: see cmd_serve
    p.add_argument(
        "--no-token",
        action="store_true",
        help="require no token (only with a loopback --host; any user of this machine can then use it)",
    )
    p.add_argument("--certfile", metavar="PEM", help="serve HTTPS with this certificate (its key inside, or --keyfile)")
    p.add_argument("--keyfile", metavar="PEM", help="the private key of --certfile")
    p.add_argument(
        "--open",
        action="store_true",
        help="open the page in the default browser (through the local file: the token stays off the "
        "browser's command line)",
    )
    p.add_argument("--backend", default="auto", choices=ENGINES, help="inference engine (default: %(default)s)")
    p.add_argument(
        "--jobs", type=int, default=2, help="videos analysed at once; more wait their turn (default: %(default)s)"
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from .images import MAX_PIXELS_ENV
    from .serve import serve
    from .serve.server import parse_duration

    if args.token is not None:
        raise ValueError(
            "--token is not accepted: a token on the command line is visible to every user of this "
            "machine (ps); put it in $AUMAPS_TOKEN or in a file given with --token-file, or leave it "
            "out and aumaps makes one"
        )
    if args.max_pixels is not None:  # video frames read it too
        os.environ[MAX_PIXELS_ENV] = str(args.max_pixels)
    try:
        serve(
            host=args.host,
            port=args.port,
            weights=args.weights,
            models=args.models,
            max_upload_mb=args.max_upload_mb,
            token_file=args.token_file,
            open_browser=args.open,
            backend=args.backend,
            workers=args.jobs,
            no_token=args.no_token,
            certfile=args.certfile,
            keyfile=args.keyfile,
            device=args.device,
            max_pixels=args.max_pixels,
            retention=parse_duration(args.retention),
        )
    except OSError as err:  # the port is taken, or the address is not this machine's
        print(f"aumaps serve: error: {err}", file=sys.stderr)
        return 2
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
    _add_serve(sub)
    _add_summarize(sub)
    _add_demo(sub)
    _add_synth(sub)
    _add_prepare(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_robustness(sub)
    _add_calibrate(sub)
    _add_average(sub)
    _add_aus(sub)
    _add_info(sub)
    _add_export(sub)
    _add_quantize(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    from .pretrained import WeightsError

    try:
        return int(args.func(args) or 0)
    except (WeightsError, FileNotFoundError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"aumaps {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
