"""How registered crops go through the network: one small place that picks the back-end.

A back-end is a callable ``(N, 256, 256, 3) uint8 RGB crops -> (N, A, 64, 64) float32 maps``
(the last stack's output). :class:`~aumaps.predict.AUEstimator` and the video pipeline both
get theirs from :func:`create_backend`:

``"torch"`` (the default)
    The reference computation, unchanged from the BMVC 2018 release: eager PyTorch, float32,
    NCHW, the checkpoint's modules as loaded (BatchNorm unfused). Tests compare it
    bit-for-bit with the release's pipeline.
``"fast"``
    The best this machine offers, same maps to about 1e-2 (intensities within 0.05, tested):
    BatchNorm folded into the convolutions (:func:`aumaps.model.fuse_batchnorm`),
    channels-last memory layout, and on CPUs with native bfloat16 (AVX-512 BF16 or AMX) the
    network in bfloat16 except the last 1×1 convolution, which writes the maps in float32 so
    that intensities keep float32 resolution. On the CPU the network is then traced and
    frozen with TorchScript with oneDNN Graph fusion enabled, which fuses each convolution
    with its ReLU and residual addition (about 1.4× faster than eager bfloat16 here). On a
    CPU without native bfloat16, ONNX Runtime (when installed) runs the float32 network
    faster than PyTorch does, so ``"fast"`` uses it there. On a GPU: BatchNorm folded and
    channels-last, float32, eager.
``"onnx"``
    ONNX Runtime on the model exported by :func:`aumaps.export.export_onnx` (float32). Needs
    the ``onnx``, ``onnxscript`` and ``onnxruntime`` packages.

Note: the oneDNN Graph fusion switch (``torch.jit.enable_onednn_fusion``) is process-wide;
``"fast"`` turns it on for the process, which affects only TorchScript graphs.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from .model import AUHourglass, fuse_batchnorm

__all__ = [
    "BACKENDS",
    "Backend",
    "DeployableNet",
    "cpu_has_native_bf16",
    "create_backend",
]

log = logging.getLogger(__name__)

#: Names accepted by :func:`create_backend`.
BACKENDS = ("torch", "fast", "onnx")

#: ``(N, S, S, 3) uint8 crops -> (N, A, S/4, S/4) float32 maps``.
Backend = Callable[[np.ndarray], np.ndarray]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), as PyTorch sees it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class DeployableNet(nn.Module):
    """The hourglass with its input conversion, as deployed: uint8 NHWC crops in, maps out.

    ``forward`` takes ``(N, S, S, 3)`` uint8 RGB crops, converts them to ``dtype`` in [0, 1]
    in channels-last layout (a free view of NHWC data), runs ``model`` and returns the last
    stack's ``(N, A, S/4, S/4)`` maps as float32. This is what the ``"fast"`` back-end traces
    and what :func:`aumaps.export.export_onnx` exports.
    """

    def __init__(self, model: AUHourglass, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 -> ``(N, A, S/4, S/4)`` float32."""
        x = crops.permute(0, 3, 1, 2).to(self.dtype).div(255.0)
        return self.model(x)[-1].float()


class _Float32Conv(nn.Module):
    """A convolution run in float32 whatever the dtype of its input."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float())


def _fast_model(model: AUHourglass, bf16: bool) -> AUHourglass:
    """A fused, channels-last copy of ``model``; with ``bf16`` all in bfloat16 except the
    last stack's output convolution."""
    fused = fuse_batchnorm(model).to(memory_format=torch.channels_last)
    if bf16:
        last = f"l{fused.num_stacks - 1}"
        fused.to(torch.bfloat16)
        setattr(fused, last, _Float32Conv(getattr(fused, last)))
    return fused


class _TorchBackend:
    """Eager PyTorch, the checkpoint's model as loaded: the reference computation."""

    def __init__(self, model: AUHourglass, device: torch.device) -> None:
        self.model = model
        self.device = device

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(crops).to(self.device)
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        return self.model(x)[-1].float().cpu().numpy()


class _FastTorchBackend:
    """Fused, channels-last, bfloat16 where native; traced with oneDNN fusion on the CPU.

    A traced graph is compiled for each input shape it meets, slowly at first; so that it
    meets only two, a call with other than ``batch_size`` crops runs them one by one (on
    the CPU one crop at a time costs about the same per crop as a batch).
    """

    def __init__(
        self, model: AUHourglass, device: torch.device, bf16: bool, trace: bool, crop_size: int, batch_size: int
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        net = DeployableNet(_fast_model(model, bf16), torch.bfloat16 if bf16 else torch.float32)
        self.net: Callable[[torch.Tensor], torch.Tensor] = net.to(device).eval()
        self.traced = trace and self._trace(net, crop_size)

    def _trace(self, net: DeployableNet, crop_size: int) -> bool:
        example = torch.zeros((1, crop_size, crop_size, 3), dtype=torch.uint8, device=self.device)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's notice
                torch.jit.enable_onednn_fusion(True)
                self.net = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False))
        except (AttributeError, RuntimeError) as err:  # a torch without TorchScript
            log.debug("TorchScript tracing unavailable (%s); running the network eagerly", err)
            return False
        return True

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.uint8)).to(self.device)
        with torch.no_grad():
            if not self.traced or len(batch) in (1, self.batch_size):
                return self.net(batch).cpu().numpy()
            return torch.cat([self.net(crop[None]) for crop in batch]).cpu().numpy()


class _OnnxBackend:
    """ONNX Runtime on the exported float32 model (uint8 NHWC crops in)."""

    def __init__(self, model: AUHourglass, crop_size: int) -> None:
        import onnxruntime

        from .export import onnx_model_bytes

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(
            onnx_model_bytes(model, crop_size), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(crops, dtype=np.uint8)})[0]


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript", "onnxruntime"))


def create_backend(
    name: str, model: AUHourglass, device: str | torch.device = "cpu", crop_size: int = 256, batch_size: int = 16
) -> Backend:
    """The back-end ``name`` (one of :data:`BACKENDS`) for ``model`` on ``device``, fed
    ``crop_size``-square crops, at most ``batch_size`` at a time.

    ``model`` must be in eval mode; ``"torch"`` uses it as is, the others work on a copy.

    Raises:
        ValueError: unknown name, or ``"onnx"`` asked for on a device other than the CPU.
        ImportError: ``"onnx"`` without ``onnx``, ``onnxscript`` and ``onnxruntime`` installed.
    """
    device = torch.device(device)
    if name not in BACKENDS:
        raise ValueError(f"unknown back-end {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "torch":
        return _TorchBackend(model, device)
    on_cpu = device.type == "cpu"
    if name == "onnx" or (on_cpu and not cpu_has_native_bf16() and _onnx_available()):
        if not on_cpu:
            raise ValueError(f"the onnx back-end runs on the CPU only, not on {device}")
        if not _onnx_available():
            raise ImportError(
                "the onnx back-end needs the onnx, onnxscript and onnxruntime packages: "
                "pip install onnx onnxscript onnxruntime"
            )
        return _OnnxBackend(model, crop_size)
    bf16 = on_cpu and cpu_has_native_bf16()
    return _FastTorchBackend(model, device, bf16=bf16, trace=on_cpu, crop_size=crop_size, batch_size=batch_size)
