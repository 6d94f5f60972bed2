"""Export a checkpoint to ONNX, for ONNX Runtime and other inference engines.

The exported graph is :class:`aumaps.model.DeployableNet` with BatchNorm folded: input
``crops``, ``(N, S, S, 3)`` uint8 RGB registered crops (S = 256 for the published layout; N
free), output ``maps``, ``(N, A, S/4, S/4)`` float32, the last stack's heatmaps. A consumer
therefore needs only the registration (:mod:`aumaps.align`) and the readout stated in
``aumaps.codec``: with ``flip_test``, the maps of each crop averaged with those of the crop
mirrored left to right, mirrored back (:func:`aumaps.model.mirror_average`); with
``shift_test``, the mean of that over the crop moved one map pixel right, left, down and up,
each reading moved back (:func:`aumaps.model.shift_average`); then the
calibration (``calibration``: gain, threshold, softness; :mod:`aumaps.calibrate`) applied to
every map value; then each map's maximum clamped to [0, 5]. The model card travels with it as ONNX metadata:
``aumaps.aus`` (comma-separated AU numbers, the channel order), ``aumaps.codec`` and
``aumaps.card`` (JSON).

Needs ``onnx`` and ``onnxscript`` (PyTorch's exporter); verification needs ``onnxruntime``.

The file is written under a temporary name and checked before it takes its name: ONNX
Runtime's maps must stay within ``tolerance`` (:data:`MAX_ABS_DIFF`) of PyTorch's on random
crops, or :class:`ExportMismatchError` is raised and nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..model import AUHourglass, DeployableNet, fuse_batchnorm
from ..weights import Checkpoint, load_checkpoint

__all__ = ["MAX_ABS_DIFF", "ExportMismatchError", "ExportResult", "export_onnx", "onnx_model_bytes"]

#: ONNX operator set of the exported graph.
OPSET = 18
#: Largest |ONNX Runtime - PyTorch| of the maps an export may show (an exported demo model
#: shows about 2e-6 with float32 kernels; intensities are checked to 0.05 elsewhere).
MAX_ABS_DIFF = 1e-3


class ExportMismatchError(ValueError):
    """The exported graph does not compute what the checkpoint computes."""


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        aus: AU numbers in the channel order of ``maps``.
        max_abs_diff: largest difference between ONNX Runtime's maps and PyTorch's (float32,
            unfused) on random crops; ``None`` when not verified.
    """

    path: Path
    aus: tuple[int, ...]
    max_abs_diff: float | None


def _onnx_program(model: AUHourglass, crop_size: int):
    """The ``torch.onnx.ONNXProgram`` of ``model`` (fused, uint8 NHWC in, batch dimension free)."""
    net = DeployableNet(fuse_batchnorm(model)).eval()
    example = torch.zeros((2, crop_size, crop_size, 3), dtype=torch.uint8)
    quiet = ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")
    levels = {name: logging.getLogger(name).level for name in quiet}
    try:
        for name in quiet:  # the exporter reports its progress and optional-package notes
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            return torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                input_names=["crops"],
                output_names=["maps"],
                dynamic_shapes={"crops": {0: torch.export.Dim("batch")}},
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def onnx_model_bytes(model: AUHourglass, crop_size: int = 256) -> bytes:
    """``model`` as a serialized ONNX model (see the module docstring for its interface)."""
    return _onnx_program(model, crop_size).model_proto.SerializeToString()


def export_onnx(
    weights: str | os.PathLike[str] | Checkpoint,
    out: str | os.PathLike[str],
    verify: bool = True,
    tolerance: float = MAX_ABS_DIFF,
) -> ExportResult:
    """Write a checkpoint as an ONNX model at ``out``.

    Args:
        weights: anything :func:`aumaps.weights.load_checkpoint` accepts, or a loaded
            :class:`~aumaps.weights.Checkpoint`.
        out: the ``.onnx`` file to write (parent folders are created).
        verify: run the file with ONNX Runtime on four random crops and compare with
            PyTorch's float32 maps (skipped with a log message when ``onnxruntime`` is not
            installed).
        tolerance: the largest |ONNX Runtime - PyTorch| of the maps accepted.

    Raises:
        aumaps.weights.WeightsError: the weights cannot be loaded.
        ImportError: ``onnx`` or ``onnxscript`` is not installed.
        ExportMismatchError: verified, the maps differ by more than ``tolerance`` (the file
            is not written).
    """
    import onnx

    ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    crop_size = ckpt.codec.crop_size
    proto = _onnx_program(ckpt.model, crop_size).model_proto
    onnx.helper.set_model_props(
        proto,
        {
            "aumaps.aus": ",".join(map(str, ckpt.aus)),
            "aumaps.codec": json.dumps(ckpt.codec.to_dict()),
            "aumaps.card": json.dumps(ckpt.card),
        },
    )
    out = Path(out)
    with atomic_path(out) as temporary:  # checked before it takes its name
        onnx.save_model(proto, temporary)
        diff = _verify(temporary, ckpt.model, crop_size) if verify else None
        if diff is not None and not diff <= tolerance:  # NaN fails too
            raise ExportMismatchError(
                f"the ONNX export of {ckpt.path} does not compute what the checkpoint computes: its maps differ "
                f"from PyTorch's by up to {diff:.3g} on random crops (tolerance {tolerance:g}); {out} was not "
                "written"
            )
    return ExportResult(out, tuple(ckpt.aus), diff)


def _verify(path: Path, model: AUHourglass, crop_size: int) -> float | None:
    """Max |ONNX Runtime − PyTorch| of the maps on random crops; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        logging.getLogger(__name__).info("onnxruntime is not installed: the export is not verified")
        return None
    crops = np.random.default_rng(0).integers(0, 256, (4, crop_size, crop_size, 3), dtype=np.uint8)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"crops": crops})[0]
    with torch.inference_mode():
        want = DeployableNet(model.eval())(torch.from_numpy(crops))
    return float(np.abs(got - want.numpy()).max())
