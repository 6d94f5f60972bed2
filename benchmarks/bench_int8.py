"""Would int8 make the video fast path faster? Speed and accuracy of a static int8 network.

    python benchmarks/bench_int8.py [--crops 64]

Why this exists: the video speed floor (4x the per-frame baseline) needs the network faster
than aumaps' ``fast`` back-end (bfloat16, which already runs near this CPU's bfloat16 peak).
The remaining lever is 8-bit integer arithmetic (AVX-512 VNNI). This script measures it with
ONNX Runtime's static quantization (QDQ, per-channel int8 weights, uint8 activations
calibrated by min/max on half the crops, the last 1x1 convolution kept in float32, as the
``fast`` back-end keeps it), against the float32 network, in one run:

* **speed**, on the paper-sized network (``AUHourglass()``, random weights; speed does not
  depend on the weights): milliseconds per crop for PyTorch float32 (the baseline's network),
  aumaps' ``fast`` back-end, ONNX Runtime float32 and ONNX Runtime int8;
* **accuracy**, on the bundled trained model (``--weights default``; trained weights have the
  wide activation ranges that quantization meets in practice, which random weights do not):
  intensities (each map's maximum, clamped to [0, 5]) of int8 against float32 on the other
  half of the crops, and the same for the ``fast`` back-end. aumaps requires a fast path to
  stay within 0.05 of float32.

The crops are registered synthetic faces (``aumaps.data.synth``, seed 0, with landmarks
known, so no detector is needed). Needs ``onnx``, ``onnxscript`` and ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aumaps.backends import create_backend
from aumaps.data.cache import CropCache, build_cache
from aumaps.data.synth import make_dataset
from aumaps.export import onnx_model_bytes
from aumaps.model import AUHourglass
from aumaps.weights import load_checkpoint


def synthetic_crops(folder: Path, n: int) -> np.ndarray:
    """``n`` registered 256x256 crops of synthetic faces showing random AUs."""
    frames = 8
    manifest = make_dataset(folder / "synth", n_subjects=max(3, -(-n // frames)), frames_per_subject=frames,
                            seed=0, progress=False)
    cache = build_cache(manifest, folder / "cache", aus="bp4d", progress=False)
    return np.array(CropCache(cache).crops[:n])  # a writable copy of the memory-mapped crops


def intensities(maps: np.ndarray) -> np.ndarray:
    return np.clip(maps.reshape(*maps.shape[:2], -1).max(-1), 0.0, 5.0)


def per_crop_ms(run, crops: np.ndarray, batch: int = 8, seconds: float = 3.0) -> float:
    x = crops[:batch]
    run(x)
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        run(x)
        done += len(x)
    return 1000 * (time.perf_counter() - start) / done


def onnx_sessions(model: AUHourglass, folder: Path, calibration: np.ndarray):
    """ONNX Runtime sessions of ``model``: float32 and static int8."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    f32, pre, int8 = folder / "f32.onnx", folder / "pre.onnx", folder / "int8.onnx"
    f32.write_bytes(onnx_model_bytes(model))
    quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
    last_conv = [node.name for node in onnx.load(str(pre)).graph.node if node.op_type == "Conv"][-1]

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"crops": calibration[i : i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(pre), str(int8), Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=[last_conv])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in (f32, int8)]
    return [lambda x, s=s: s.run(None, {"crops": x})[0] for s in sessions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=64, help="half calibrate int8, half measure its error")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        crops = synthetic_crops(tmp, args.crops)
        calibration, held_out = crops[: len(crops) // 2], crops[len(crops) // 2 :]

        torch.manual_seed(0)
        paper = AUHourglass().eval()
        (tmp / "paper").mkdir()
        f32, int8 = onnx_sessions(paper, tmp / "paper", calibration)
        torch_f32 = create_backend("torch", paper)
        fast = create_backend("fast", paper, batch_size=8)
        print(f"paper-sized network, {torch.get_num_threads()} threads, batches of 8 crops: ms per crop")
        for name, run in (("PyTorch float32 (baseline's network)", torch_f32), ("aumaps fast (bfloat16)", fast),
                          ("ONNX Runtime float32", f32), ("ONNX Runtime int8", int8)):
            print(f"  {name:<38}{per_crop_ms(run, crops):8.2f}")

        ckpt = load_checkpoint("default")
        (tmp / "bundled").mkdir()
        f32, int8 = onnx_sessions(ckpt.model.eval(), tmp / "bundled", calibration)
        reference = intensities(create_backend("torch", ckpt.model)(held_out))
        print(f"\nbundled trained model, {len(held_out)} held-out crops: |intensity - float32|"
              f"   (requirement for a fast path: max < 0.05)")
        for name, run in (("aumaps fast (bfloat16)", create_backend("fast", ckpt.model, batch_size=8)),
                          ("ONNX Runtime float32", f32), ("ONNX Runtime int8", int8)):
            error = np.abs(intensities(run(held_out)) - reference)
            print(f"  {name:<38}max {error.max():.4f}   mean {error.mean():.4f}")


if __name__ == "__main__":
    main()
