"""int8 models with an accuracy guard (``aumaps quantize``).

8-bit integer arithmetic runs the network two to three times faster than float32 on CPUs,
but the error it adds depends on the trained weights: static int8 was measured up to 0.7 off
float32 on a trained model. So an int8 model is made by a step that also proves it:

1. the float32 network is exported to ONNX and quantized statically by ONNX Runtime: int8
   weights per output channel, uint8 activations with ranges calibrated on
   ``calibration`` crops (min/max), the last 1x1 convolution kept in float32 so that the maps
   keep float32 resolution; weights use 7 bits (``reduce_range``), so that CPUs without
   VNNI (AVX2) cannot saturate their 16-bit intermediate sums;
2. its intensities are compared with float32's on ``held_out`` crops it was not calibrated
   on: the worst and mean difference are reported;
3. a model whose worst difference exceeds ``max_error`` is **refused** (:class:`Refused`);
   an accepted one is kept in the engine store for these weights and this kind of CPU, where
   ``--backend int8`` and ``--backend auto`` find it.

Calibration and held-out crops come from a crop cache (``aumaps prepare``) of the data the
model is meant for, or, without one, from synthetic probe faces.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model import AUHourglass
from .engines import EngineUnavailable, _available, _onnxruntime, _torch_reference, int8_key, onnx_file
from .probe import DEFAULT_MAX_ERROR, AccuracyReport, compare
from .store import EngineStore, weights_digest

__all__ = ["QuantizeResult", "Refused", "quantize_int8"]

log = logging.getLogger(__name__)


@dataclass
class QuantizeResult:
    """What :func:`quantize_int8` made and measured.

    Attributes:
        accuracy: int8 intensities against float32 on the held-out crops.
        path: the int8 ONNX model (in the engine store), or None when refused.
        ms_float32, ms_int8: milliseconds per crop of ONNX Runtime float32 and int8 here.
        calibration: crops the activation ranges were calibrated on.
    """

    accuracy: AccuracyReport
    path: Path | None
    ms_float32: float
    ms_int8: float
    calibration: int

    @property
    def accepted(self) -> bool:
        return self.accuracy.accepted


class Refused(RuntimeError):
    """The int8 model misses the accuracy bound; ``result`` says by how much."""

    def __init__(self, result: QuantizeResult) -> None:
        super().__init__(f"int8 model refused: {result.accuracy}")
        self.result = result


def _ms_per_crop(run, crops: np.ndarray, batch: int = 8, seconds: float = 2.0) -> float:
    x = np.ascontiguousarray(crops[:batch])
    run(x)
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or done == 0:
        run(x)
        done += len(x)
    return 1000 * (time.perf_counter() - start) / done


def quantize_int8(
    model: AUHourglass,
    calibration: np.ndarray,
    held_out: np.ndarray,
    max_error: float = DEFAULT_MAX_ERROR,
    crop_size: int = 256,
    store: EngineStore | None = None,
    out: str | Path | None = None,
) -> QuantizeResult:
    """Quantize ``model`` to int8, check it, and keep it if it holds ``max_error``.

    Args:
        model: the float32 network (eval mode).
        calibration: ``(N, S, S, 3)`` uint8 registered crops for the activation ranges.
        held_out: other crops the check runs on.
        max_error: the largest |intensity - float32| accepted on ``held_out``.
        store: the engine store (default: the user cache).
        out: also copy the accepted model there.

    Raises:
        Refused: the int8 model misses the bound (nothing is stored).
        EngineUnavailable: onnxruntime (or onnx/onnxscript, for the export) is missing.
    """
    if not _available("onnxruntime"):
        raise EngineUnavailable("quantizing needs onnxruntime: pip install onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0 or len(held_out) == 0:
        raise ValueError("quantizing needs calibration and held-out crops")
    model = model.eval()
    store = store or EngineStore()
    digest = weights_digest(model)
    float_path = onnx_file(model, crop_size, store, digest)
    batches = [calibration[i : i + 8] for i in range(0, len(calibration), 8)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter({"crops": np.ascontiguousarray(b, dtype=np.uint8)} for b in batches)

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre, int8 = Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        quant_pre_process(float_path, str(pre), skip_symbolic_shape=True)
        import onnx

        last_conv = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"][-1]
        log.info("calibrating int8 activation ranges on %d crops", len(calibration))
        quantize_static(
            str(pre),
            str(int8),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[last_conv],
        )
        engine = _onnxruntime(str(int8), "onnxruntime int8", 8)
        reference = _torch_reference(model, torch.device("cpu"))
        accuracy = compare(engine, reference, held_out, max_error)
        ms_float = _ms_per_crop(_onnxruntime(float_path, "onnxruntime float32", 8), held_out)
        ms_int8 = _ms_per_crop(engine, held_out)
        result = QuantizeResult(accuracy, None, ms_float, ms_int8, len(calibration))
        if not accuracy.accepted:
            raise Refused(result)
        entry = store.put(
            int8_key(digest, crop_size),
            facts={
                "accuracy": accuracy.to_dict(),
                "calibration": len(calibration),
                "ms_float32": ms_float,
                "ms_int8": ms_int8,
            },
            artifact="model.int8.onnx",
            write=lambda path: shutil.copyfile(int8, path),
        )
    result.path = entry.artifact
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.artifact, out)
    return result
