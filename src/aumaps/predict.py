"""Prediction: from images to AU intensities, AU heatmaps and AU locations, per face.

:class:`AUEstimator` is the one object a user needs::

    from aumaps import AUEstimator
    est = AUEstimator(weights="official")        # or a path to an aumaps checkpoint
    for face in est.predict("photo.jpg"):
        print(face.box, face.intensities_dict())  # {6: 1.8, 10: 0.2, ...}

Per face the pipeline is the BMVC 2018 release's: dlib detection and 68 landmarks, the
3-point registration into a 256×256 crop, the RGB crop / 255 through the hourglass, and the
codec's decoding (each map's maximum clamped to [0, 5]). Crops of all faces go through the
network as one batch. :func:`predict_files` and :func:`write_csv` are what ``aumaps predict``
runs.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from . import align
from .aus import column_name
from .runtime import DEFAULT_MAX_ERROR, create_engine
from .codec import AUHeatmapCodec
from .images import ImageReadError, list_images, read_image, to_rgb_uint8
from .landmarks import Face, FaceLandmarker
from .weights import Checkpoint, load_checkpoint

__all__ = [
    "FaceResult",
    "FileResult",
    "AUEstimator",
    "predict_files",
    "csv_columns",
    "result_rows",
    "write_csv",
]

log = logging.getLogger(__name__)


@dataclass
class FaceResult:
    """Everything aumaps knows about one face.

    Attributes:
        face: index of the face in its image (the detector's order; face 0 is the one the
            original release would analyse).
        aus: AU numbers, the order of ``intensities`` and ``heatmaps``.
        intensities: ``(A,)`` intensities in [0, 5].
        heatmaps: ``(A, 64, 64)`` float32 network output in the crop frame.
        peaks: ``(A, C, 2)`` image (x, y) of each AU's heatmap peaks, strongest first (NaN
            where the map has fewer peaks above the codec's threshold).
        argmax: ``(A, 2)`` image (x, y) of each map's maximum (NaN for an empty map).
        landmarks: ``(68, 2)`` image landmarks used for registration.
        box: ``(4,)`` detection box x0, y0, x1, y1 (image pixels).
        score: detector confidence.
        matrix: ``(2, 3)`` image→crop affine.
        crop: ``(256, 256, 3)`` uint8 RGB registered crop the network saw.
    """

    face: int
    aus: tuple[int, ...]
    intensities: np.ndarray
    heatmaps: np.ndarray
    peaks: np.ndarray
    argmax: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    score: float
    matrix: np.ndarray
    crop: np.ndarray = field(repr=False)

    def intensities_dict(self) -> dict[int, float]:
        """``{AU number: intensity}``."""
        return {au: float(v) for au, v in zip(self.aus, self.intensities)}


@dataclass
class FileResult:
    """The outcome of one input file: its faces and RGB image, or the error that stopped it."""

    path: Path
    faces: list[FaceResult]
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)


class AUEstimator:
    """Detect faces, register them and estimate AU intensities and heatmaps.

    Args:
        weights: ``"official"`` (the BMVC 2018 release, downloaded once into the user cache),
            ``"default"`` (the model bundled with aumaps), a path to a checkpoint, or a
            :class:`~aumaps.weights.Checkpoint` already loaded.
        detector, predictor: face detector and landmark predictor, by registered name or
            instance (see :mod:`aumaps.landmarks`).
        device: torch device for the network.
        batch_size: crops per network call (default: what the engine runs fastest with).
        backend: the inference engine (see :mod:`aumaps.runtime.engines`): ``"auto"`` (the
            fastest one that keeps intensities within ``max_error`` of float32 on this
            machine), ``"torch"`` (float32, the release's computation), ``"fast"``,
            ``"onnx"``, ``"openvino"`` or ``"int8"``.
        max_error: the accuracy bound a fast engine must hold.
    """

    def __init__(
        self,
        weights: str | os.PathLike | Checkpoint = "default",
        detector="dlib",
        predictor="dlib",
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        backend: str = "auto",
        max_error: float = DEFAULT_MAX_ERROR,
    ) -> None:
        self.checkpoint = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
        self.aus = tuple(self.checkpoint.aus)
        codec_cfg = dict(self.checkpoint.codec or {"aus": list(self.aus)})
        self.codec = AUHeatmapCodec.from_dict(codec_cfg)
        if self.codec.aus != self.aus:
            raise ValueError(
                f"checkpoint {self.checkpoint.path} is inconsistent: its codec lists AUs "
                f"{list(self.codec.aus)} but its model outputs {list(self.aus)}"
            )
        self.device = torch.device(device)
        self.model = self.checkpoint.model.to(self.device).eval()
        self.landmarker = FaceLandmarker(detector=detector, predictor=predictor)
        self.engine = create_engine(backend, self.model, self.device, self.codec.crop_size, max_error)
        self.backend = backend
        self.batch_size = int(batch_size or self.engine.batch_size)

    # -- network ---------------------------------------------------------------------------
    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """Network heatmaps for registered crops.

        Args:
            crops: ``(N, 256, 256, 3)`` uint8 RGB registered crops.

        Returns:
            ``(N, A, 64, 64)`` float32 heatmaps (the last stack's output).
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.codec.crop_size, self.codec.crop_size, 3):
            raise ValueError(f"crops must be (N, {self.codec.crop_size}, {self.codec.crop_size}, 3), got {crops.shape}")
        out = [
            self.engine(crops[start : start + self.batch_size])
            for start in range(0, len(crops), self.batch_size)
        ]
        if not out:
            return np.zeros((0, len(self.aus), self.codec.map_size, self.codec.map_size), np.float32)
        return np.concatenate(out)

    # -- faces -----------------------------------------------------------------------------
    def predict(
        self, image: str | os.PathLike | np.ndarray, landmarks: np.ndarray | None = None
    ) -> list[FaceResult]:
        """AU intensities and maps for every face of one image.

        Args:
            image: a path, or an array (H×W, H×W×3 RGB, H×W×4; uint8, uint16 or float in [0, 1]).
            landmarks: optional ``(68, 2)`` or ``(F, 68, 2)`` landmarks to use instead of
                detecting faces (e.g. from another landmarker).

        Returns:
            One :class:`FaceResult` per face, in the detector's order; empty if no face.
        """
        rgb = read_image(image) if isinstance(image, (str, os.PathLike)) else to_rgb_uint8(image)
        if landmarks is None:
            faces = self.landmarker(rgb)
        else:
            lms = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
            faces = [Face(box=_bounding_box(lm), score=float("nan"), landmarks=lm) for lm in lms]
        return self.predict_faces(rgb, faces)

    def predict_faces(self, rgb: np.ndarray, faces: Sequence[Face]) -> list[FaceResult]:
        """Register ``faces`` (with landmarks) of an RGB uint8 image and run the network once."""
        if not faces:
            return []
        lms = np.stack([f.landmarks for f in faces])
        mats = align.registration_matrix(lms)
        crops = np.stack([align.warp_to_crop(rgb, m, self.codec.crop_size) for m in mats])
        maps = self.heatmaps(crops)
        dec = self.codec.decode(maps)
        inv = align.invert(mats)
        peaks = align.transform_points(dec.peaks.reshape(len(faces), -1, 2), inv).reshape(dec.peaks.shape)
        argmax = align.transform_points(dec.argmax, inv)
        return [
            FaceResult(
                face=i,
                aus=self.aus,
                intensities=dec.intensities[i],
                heatmaps=maps[i],
                peaks=peaks[i],
                argmax=argmax[i],
                landmarks=lms[i],
                box=np.asarray(face.box, dtype=np.float64),
                score=float(face.score),
                matrix=mats[i],
                crop=crops[i],
            )
            for i, face in enumerate(faces)
        ]


def _bounding_box(landmarks: np.ndarray) -> np.ndarray:
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


def predict_files(
    estimator: AUEstimator, paths: Iterable[str | os.PathLike], progress: bool = True
) -> Iterator[FileResult]:
    """Run ``estimator`` over images and folders, one :class:`FileResult` per file.

    A file that cannot be read yields a result with ``error`` set; the rest go on.
    """
    from tqdm.auto import tqdm

    files = list_images(paths)
    for path in tqdm(files, desc="images", unit="img", disable=not progress):
        try:
            rgb = read_image(path)
        except ImageReadError as exc:
            yield FileResult(path, [], error=str(exc))
            continue
        yield FileResult(path, estimator.predict(rgb), image=rgb)


def csv_columns(aus: Sequence[int]) -> list[str]:
    """The CSV header: identification, detection, AU intensities, AU peaks, landmarks."""
    cols = ["file", "face", "success", "confidence", "box_x0", "box_y0", "box_x1", "box_y1"]
    cols += [column_name(a) for a in aus]
    cols += [f"AU{a:02d}_{xy}" for a in aus for xy in ("x", "y")]
    cols += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    return cols


def result_rows(result: FileResult, aus: Sequence[int]) -> list[dict]:
    """CSV rows of one file: one per face, or a single ``success = 0`` row if no face.

    A file that could not be read has no row (it is reported as an error instead).
    """
    if result.error is not None:
        return []
    if not result.faces:
        return [{"file": str(result.path), "face": 0, "success": 0}]
    rows = []
    for f in result.faces:
        row = {"file": str(result.path), "face": f.face, "success": 1, "confidence": _num(f.score)}
        row.update(zip(("box_x0", "box_y0", "box_x1", "box_y1"), map(_num, f.box)))
        row.update({column_name(a): _num(v) for a, v in zip(aus, f.intensities)})
        for a, (x, y) in zip(aus, f.argmax):
            row[f"AU{a:02d}_x"], row[f"AU{a:02d}_y"] = _num(x), _num(y)
        row.update({f"x_{i}": _num(v) for i, v in enumerate(f.landmarks[:, 0])})
        row.update({f"y_{i}": _num(v) for i, v in enumerate(f.landmarks[:, 1])})
        rows.append(row)
    return rows


def _num(value: float) -> float | str:
    """Rounded for the CSV; NaN becomes an empty cell."""
    value = float(value)
    return "" if not np.isfinite(value) else round(value, 4)


def write_csv(
    results: Iterable[FileResult], out: str | os.PathLike, aus: Sequence[int]
) -> Iterator[FileResult]:
    """Stream ``results`` into a CSV at ``out`` (written and flushed file by file).

    A generator that passes each result on, so the caller can draw overlays or report errors
    as they come; rows already written survive an interruption.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=csv_columns(aus), restval="")
        writer.writeheader()
        for result in results:
            writer.writerows(result_rows(result, aus))
            fh.flush()
            yield result
