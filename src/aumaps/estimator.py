"""The model side of prediction: faces in, :class:`~aumaps.results.FaceResult` out.

:class:`Estimator` holds what turns a face into AU results: the checkpoint and its codec,
the inference engine chosen for the machine (:mod:`aumaps.runtime`), and the face detector
and landmark predictor (:mod:`aumaps.landmarks`). Per face the pipeline is the BMVC 2018
release's: dlib detection and 68 landmarks, the 3-point registration into the codec's crop
(:mod:`aumaps.align`), the crop through the network, and the readout
(:mod:`aumaps.readout`). Crops of all faces go through the network as one batch. Each
registered face is also assessed: its row's ``confidence`` (:mod:`aumaps.confidence`) and its
head pose (:mod:`aumaps.pose`, for the camera given or OpenFace's default one).

Images, videos (:mod:`aumaps.video`) and the browser app share this object;
:class:`aumaps.predict.AUEstimator` adds the user-facing API (files, videos, data frames).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from . import align
from .confidence import LandmarkConfidence
from .geometry import bounding_box
from .images import read_image, to_rgb_uint8
from .landmarks import Face, FaceLandmarker
from .pose import Camera, camera_for, head_pose
from .readout import FaceInput, read_faces
from .results import FaceResult
from .runtime import DEFAULT_MAX_ERROR, create_engine
from .weights import Checkpoint, load_checkpoint

__all__ = ["Estimator"]


class Estimator:
    """Detect faces, register them and estimate AU intensities and maps.

    Args:
        weights: a name of the pretrained registry (``"default"``, the model bundled with
            aumaps; ``"official"``, the BMVC 2018 release, downloaded once into the user
            cache; ``aumaps info`` lists them), a path to a checkpoint, or a
            :class:`~aumaps.weights.Checkpoint` already loaded.
        detector, predictor: face detector and landmark predictor, by registered name or
            instance (see :mod:`aumaps.landmarks`).
        device: torch device for the network.
        batch_size: crops per network call (default: what the engine runs fastest with).
        backend: the inference engine (see :mod:`aumaps.runtime.engines`): ``"auto"`` (the
            fastest one that keeps intensities within ``max_error`` of float32 on this
            machine), ``"torch"`` (float32, the release's computation), ``"fast"``,
            ``"onnx"``, ``"openvino"`` or ``"int8"``.
        max_error: the accuracy bound a fast engine must hold, on the intensities reported:
            with a readout calibration (:mod:`aumaps.calibrate`, slope at most its gain) the
            engine's maps are held to ``max_error / gain``.
        camera: what is known of the camera, for the head pose: a :class:`~aumaps.pose.Camera`
            or a mapping with any of ``fx``, ``fy``, ``cx``, ``cy`` (pixels); the rest is
            OpenFace's default for each image's size (:func:`aumaps.pose.camera_for`).
        shift_test: read each face over small moves of its crop too (the codec's
            ``shift_test``, :func:`aumaps.model.shift_average`); ``None`` (the default) does
            what the checkpoint says; ``False`` takes a fifth of the network time, as live
            cameras read.
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
        camera: Camera | Mapping[str, float | None] | None = None,
        shift_test: bool | None = None,
    ) -> None:
        self.checkpoint = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
        self.codec = self.checkpoint.codec
        self.shift_test = self.codec.shift_test if shift_test is None else bool(shift_test)
        self.aus = tuple(self.codec.aus)
        self.device = torch.device(device)
        self.model = self.checkpoint.model.to(self.device).eval()
        self.landmarker = FaceLandmarker(detector=detector, predictor=predictor)
        gain = 1.0 if self.codec.calibration is None else max(self.codec.calibration.gain, 1.0)
        self.engine = create_engine(backend, self.model, self.device, self.codec.crop_size, max_error / gain)
        self.backend = backend
        self.batch_size = int(batch_size or self.engine.batch_size)
        self.camera = _camera_spec(camera)
        self.confidence = LandmarkConfidence(self.landmarker.predictor)

    # -- network ---------------------------------------------------------------------------
    def heatmaps(self, crops: np.ndarray, shift_test: bool | None = None) -> np.ndarray:
        """Network maps for registered crops.

        Args:
            crops: ``(N, S, S, 3)`` uint8 RGB registered crops (S = the codec's crop size).

        Returns:
            ``(N, A, H, W)`` float32 maps (the last stack's output); with the codec's
            ``flip_test``, the mean of each crop's maps and its mirror image's, mirrored back
            (:meth:`~aumaps.codec.AUHeatmapCodec.network_maps`: a crop and its mirror go through the engine
            in one batch, so a batch holds half as many faces); with its ``shift_test``, the mean
            over small moves of each crop as well (a fifth as many faces again). ``shift_test``
            overrides this estimator's for this call.
        """
        crops = np.asarray(crops)
        size = self.codec.crop_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"crops must be (N, {size}, {size}, 3), got {crops.shape}")
        shifted = self.shift_test if shift_test is None else shift_test
        step = max(1, self.batch_size // self.codec.readings(shifted))
        out = [
            self.codec.network_maps(self.engine, crops[start : start + step], width_axis=2, shift_test=shifted)
            for start in range(0, len(crops), step)
        ]
        if not out:
            return np.zeros((0, len(self.aus), self.codec.map_size, self.codec.map_size), np.float32)
        return np.concatenate(out)

    def register(self, image: np.ndarray, faces: Sequence[FaceInput]) -> tuple[list[FaceInput], np.ndarray, np.ndarray]:
        """The faces that can be registered, assessed (:meth:`assess`), their ``(K, 2, 3)``
        matrices and ``(K, S, S, 3)`` crops."""
        if not faces:
            size = self.codec.crop_size
            return [], np.zeros((0, 2, 3)), np.zeros((0, size, size, 3), np.uint8)
        kept, matrices, crops = align.register_faces(
            image, np.stack([f.landmarks for f in faces]), self.codec.crop_size
        )
        return self.assess(image, [faces[k] for k in kept]), matrices, crops

    def camera_for(self, width: int, height: int) -> Camera:
        """The camera of a ``width × height`` image: what the estimator was given, OpenFace's
        defaults for the rest."""
        return camera_for(width, height, **self.camera)

    def assess(self, image: np.ndarray, faces: Sequence[FaceInput]) -> list[FaceInput]:
        """``faces`` with their rows' ``confidence`` (:mod:`aumaps.confidence`) and head
        ``pose`` (:mod:`aumaps.pose`) filled in."""
        if not faces:
            return []
        confidences = self.confidence(image, [f.landmarks for f in faces])
        camera = self.camera_for(image.shape[1], image.shape[0])
        return [
            replace(face, confidence=float(c), pose=head_pose(face.landmarks, camera))
            for face, c in zip(faces, confidences, strict=True)
        ]

    def read(
        self, maps: np.ndarray, matrices: np.ndarray, crops: np.ndarray, faces: Sequence[FaceInput]
    ) -> list[FaceResult]:
        """The readout of network ``maps`` (:func:`aumaps.readout.read_faces`)."""
        return read_faces(self.codec, maps, matrices, crops, faces)

    # -- faces -----------------------------------------------------------------------------
    def analyse(self, image: np.ndarray, faces: Sequence[FaceInput]) -> list[FaceResult]:
        """Register ``faces`` of an RGB uint8 image and run the network once for all of them.

        Faces whose landmarks cannot register one (collinear anchors) are left out.
        """
        kept, matrices, crops = self.register(image, faces)
        return self.read(self.heatmaps(crops), matrices, crops, kept)

    def find_faces(self, image: np.ndarray) -> list[FaceInput]:
        """The faces in ``image`` (RGB uint8), in the detector's order, with their landmarks."""
        return _numbered(self.landmarker(image))

    def predict(self, image: str | os.PathLike | np.ndarray, landmarks: np.ndarray | None = None) -> list[FaceResult]:
        """AU intensities and maps for every face of one image.

        Args:
            image: a path, or an array (H×W, H×W×3 RGB, H×W×4; uint8, uint16 or float in [0, 1]).
            landmarks: optional ``(68, 2)`` or ``(F, 68, 2)`` landmarks to use instead of
                detecting faces (e.g. from another landmarker).

        Returns:
            One :class:`~aumaps.results.FaceResult` per face, in the detector's order; empty
            if no face.
        """
        rgb = read_image(image) if isinstance(image, (str, os.PathLike)) else to_rgb_uint8(image)
        if landmarks is None:
            faces = self.find_faces(rgb)
        else:
            lms = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
            faces = [FaceInput(i, bounding_box(lm), float("nan"), lm) for i, lm in enumerate(lms)]
        return self.analyse(rgb, faces)

    def predict_faces(self, rgb: np.ndarray, faces: Sequence[Face]) -> list[FaceResult]:
        """:meth:`analyse` for :class:`~aumaps.landmarks.Face` objects (index = ``face_id``)."""
        return self.analyse(rgb, _numbered(faces))


def _numbered(faces: Sequence[Face]) -> list[FaceInput]:
    """Detected faces as readout inputs, their index in the detector's order as ``face_id``."""
    return [FaceInput(i, f.box, f.confidence, f.landmarks) for i, f in enumerate(faces)]


def _camera_spec(camera: Camera | Mapping[str, float | None] | None) -> dict[str, float]:
    """The known camera values (``fx``, ``fy``, ``cx``, ``cy``) of an estimator's ``camera``."""
    if camera is None:
        return {}
    if isinstance(camera, Camera):
        return {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy}
    unknown = sorted(set(camera) - {"fx", "fy", "cx", "cy"})
    if unknown:
        raise ValueError(f"unknown camera values {unknown}: give fx, fy, cx and/or cy (pixels)")
    spec = {k: float(v) for k, v in camera.items() if v is not None}
    camera_for(640, 480, **spec)  # a bad value fails here, not on the first face
    return spec
