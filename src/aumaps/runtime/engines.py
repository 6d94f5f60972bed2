"""Inference engines: how registered crops go through the network, chosen for the machine.

An engine is a callable ``(N, S, S, 3) uint8 RGB crops -> (N, A, S/4, S/4) float32 maps``
(the last stack's output) with a preferred batch size. :func:`create_engine` builds one by
name:

``"auto"`` (the default)
    The fastest engine that holds its accuracy bound on this machine, in this order: an int8
    model made and accepted by ``aumaps quantize`` for these weights on this kind of CPU;
    on a CPU with native bfloat16, ``"fast"``; otherwise ``"onnx"`` (ONNX Runtime, float32)
    when it is installed, else ``"fast"``. On a GPU, ``"fast"``. An engine whose intensities
    stray more than ``max_error`` from float32 on the probe faces
    (:func:`~aumaps.runtime.probe.probe_crops`) is passed over: logged as information when
    another engine holds the bound, as a warning when only the float32 reference is left.
``"torch"``
    The float32 reference, unchanged from the BMVC 2018 release: eager PyTorch, NCHW, the
    checkpoint's modules as loaded. Tests compare it bit for bit with the release.
``"fast"``
    PyTorch at its fastest: BatchNorm folded, channels-last, bfloat16 on CPUs that compute it
    natively (the last 1x1 convolution in float32, so intensities keep float32 resolution),
    traced and frozen with TorchScript and oneDNN Graph fusion on the CPU, after checking on
    probe crops that the traced graph computes the module's maps (fusion miscomputes stacked
    hourglasses in batches, PyTorch 2.13: such a network runs eagerly instead).
``"onnx"``
    ONNX Runtime (all graph optimisations) on the exported float32 model.
``"openvino"``
    OpenVINO (optional: ``pip install openvino``) on the exported model, bfloat16 where native.
``"int8"``
    ONNX Runtime on the int8 model ``aumaps quantize`` made and accepted for these weights.

What is expensive to build (the ONNX export, the accuracy check on the probe faces) is kept
in the :class:`~aumaps.runtime.store.EngineStore`, so only the first run on a machine pays it.

Note: the oneDNN Graph fusion switch (``torch.jit.enable_onednn_fusion``) is process-wide;
``"fast"`` turns it on, which affects only TorchScript graphs.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..hardware import cpu_has_native_bf16
from ..model import AUHourglass, DeployableNet, fuse_batchnorm
from . import EngineUnavailable
from .probe import DEFAULT_MAX_ERROR, PROBE_REVISION, AccuracyReport, compare, probe_crops
from .store import EngineStore, machine_key, weights_digest

__all__ = [
    "BACKENDS",
    "Engine",
    "EngineUnavailable",
    "create_engine",
    "int8_key",
    "onnx_file",
]

log = logging.getLogger(__name__)

#: Names accepted by :func:`create_engine`.
BACKENDS = ("auto", "torch", "fast", "onnx", "openvino", "int8")

#: Probe faces an engine is checked on.
PROBES = 16


class Engine:
    """A ``crops -> maps`` callable with what is known about it.

    Attributes:
        name: what it is, e.g. ``"onnxruntime float32"``.
        batch_size: crops per call it runs fastest with.
        accuracy: its intensities against float32 on the probe faces (None for the reference).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[np.ndarray], np.ndarray],
        batch_size: int,
        accuracy: AccuracyReport | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self.batch_size = int(batch_size)
        self.accuracy = accuracy

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = np.ascontiguousarray(crops, dtype=np.uint8)
        return self._run(crops if crops.flags.writeable else crops.copy())

    def describe(self) -> str:
        """In words, for logs and reports."""
        if self.accuracy is None:
            return self.name
        return f"{self.name} (intensities within {self.accuracy.worst:.3f} of float32 on probe faces)"

    def __repr__(self) -> str:
        return f"Engine({self.describe()!r}, batch_size={self.batch_size})"


# -- the engines ------------------------------------------------------------------------------
def _torch_reference(model: AUHourglass, device: torch.device) -> Engine:
    net = DeployableNet(model).to(device).eval()

    @torch.inference_mode()
    def run(crops: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(crops).to(device)).cpu().numpy()

    return Engine("pytorch float32 (reference)", run, 16)


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


def _torch_fast(
    model: AUHourglass,
    device: torch.device,
    crop_size: int,
    store: EngineStore | None = None,
    digest: str | None = None,
) -> Engine:
    """Fused, channels-last, bfloat16 where native; traced with oneDNN fusion on the CPU.

    A traced graph is compiled for each input shape it meets, slowly at first; so that it
    meets only two, a call with other than ``batch_size`` crops runs them one by one.
    Whether the traced graph computes the module's maps (:func:`_same_maps`, seconds: it
    compiles both shapes) is checked once per weights and machine and kept in ``store``.
    """
    on_cpu = device.type == "cpu"
    bf16 = on_cpu and cpu_has_native_bf16()
    # bfloat16 runs fastest here in small batches (they stay in cache); float32 in larger ones
    batch = 4 if bf16 else 8
    net: Callable[[torch.Tensor], torch.Tensor] = (
        DeployableNet(_fast_model(model, bf16), torch.bfloat16 if bf16 else torch.float32).to(device).eval()
    )
    traced = False
    if on_cpu:
        store = store or EngineStore()
        key = {
            "engine": f"trace-check-{'bfloat16' if bf16 else 'float32'}",
            "weights": digest or weights_digest(model),
            "crop_size": crop_size,
            **machine_key(),
        }
        verdict = store.get(key)
        if verdict is None or verdict.facts["traced"]:
            example = torch.zeros((1, crop_size, crop_size, 3), dtype=torch.uint8)
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's notice
                    torch.jit.enable_onednn_fusion(True)
                    graph = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False))
                if verdict is None:
                    verdict = store.put(key, facts={"traced": _same_maps(graph, net, crop_size, batch)})
                if verdict.facts["traced"]:
                    net, traced = graph, True
            except (AttributeError, RuntimeError) as err:  # a torch without TorchScript
                log.debug("TorchScript tracing unavailable (%s); running the network eagerly", err)
        if verdict is not None and not verdict.facts["traced"]:
            log.info(
                "the fused TorchScript graph does not compute this network's maps (oneDNN Graph "
                "fusion miscomputes stacked hourglasses in batches); running it eagerly"
            )

    def run(crops: np.ndarray) -> np.ndarray:
        batch_in = torch.from_numpy(crops).to(device)
        with torch.no_grad():
            if not traced or len(batch_in) in (1, batch):
                return net(batch_in).cpu().numpy()
            return torch.cat([net(crop[None]) for crop in batch_in]).cpu().numpy()

    kind = "bfloat16" if bf16 else "float32"
    return Engine(f"pytorch {kind}, fused{', TorchScript' if traced else ''}", run, batch)


#: Largest |map difference| allowed between a traced graph and the module it was traced from
#: (the same arithmetic, reordered by fusion: ~1e-3 in bfloat16 where it works).
TRACE_TOLERANCE = 0.02


def _same_maps(graph: Callable, module: nn.Module, crop_size: int, batch: int) -> bool:
    """Whether a traced ``graph`` gives ``module``'s maps on probe crops, one by one and in a
    batch of ``batch``, once TorchScript has optimised it (its first call only profiles: a
    miscomputed fusion shows from the second)."""
    crops = torch.from_numpy(np.array(probe_crops(batch, crop_size=crop_size)))
    with torch.no_grad():
        expected = module(crops)
        for part in (crops[:1], crops):
            for _ in range(3):
                got = graph(part)
            if (
                not bool(torch.isfinite(got).all())
                or float((got - expected[: len(part)]).abs().max()) > TRACE_TOLERANCE
            ):
                return False
    return True


def _available(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def onnx_file(model: AUHourglass, crop_size: int, store: EngineStore | None, digest: str | None = None) -> str:
    """Path of ``model`` exported to ONNX (float32), from the store or exported now.

    ``digest`` is ``weights_digest(model)`` when the caller has it already."""
    from .export import onnx_model_bytes

    if not _available("onnx", "onnxscript"):
        raise EngineUnavailable("exporting to ONNX needs the onnx and onnxscript packages: pip install onnx onnxscript")
    store = store or EngineStore()
    key = {
        "engine": "onnx-export",
        "weights": digest or weights_digest(model),
        "crop_size": crop_size,
        **machine_key("onnx", "onnxscript"),
    }
    entry = store.get(key)
    if entry is None:
        log.info("exporting the network to ONNX once (kept in %s)", store.root)
        entry = store.put(
            key, artifact="model.onnx", write=lambda path: path.write_bytes(onnx_model_bytes(model, crop_size))
        )
    return str(entry.artifact)


def _ort_session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    # threads that spin after a call keep the cores from what runs between calls (tracking,
    # readout): in a video pipeline that costs more than waking them
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _onnxruntime(path: str, name: str, batch: int) -> Engine:
    session = _ort_session(path)
    input_name = session.get_inputs()[0].name
    return Engine(name, lambda crops: session.run(None, {input_name: crops})[0], batch)


def _openvino(path: str) -> Engine:
    import openvino

    precision = "bf16" if cpu_has_native_bf16() else "f32"
    core = openvino.Core()
    compiled = core.compile_model(
        core.read_model(path),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        },
    )
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(crops: np.ndarray) -> np.ndarray:
        return np.array(request.infer({0: crops})[output], dtype=np.float32)

    return Engine(f"openvino {'bfloat16' if precision == 'bf16' else 'float32'}", run, 4)


def int8_key(digest: str, crop_size: int) -> dict:
    """The store key of the int8 model of the weights with ``digest`` (:func:`weights_digest`)
    on this machine."""
    return {"engine": "onnxruntime-int8", "weights": digest, "crop_size": crop_size, **machine_key("onnxruntime")}


def _int8(digest: str, crop_size: int, store: EngineStore, max_error: float) -> Engine:
    if not _available("onnxruntime"):
        raise EngineUnavailable("the int8 engine needs onnxruntime: pip install onnxruntime")
    entry = store.get(int8_key(digest, crop_size))
    if entry is None:
        raise EngineUnavailable(
            "no int8 model of these weights for this machine: make one with "
            "`aumaps quantize --weights WEIGHTS --data CACHE` (it checks its accuracy)"
        )
    accuracy = AccuracyReport(**entry.facts["accuracy"])
    if accuracy.worst > max_error:
        raise EngineUnavailable(
            f"the int8 model of these weights is {accuracy.worst:.3f} off float32, beyond the bound {max_error:g}"
        )
    engine = _onnxruntime(str(entry.artifact), "onnxruntime int8 (quantized, checked)", 8)
    engine.accuracy = AccuracyReport(**{**entry.facts["accuracy"], "bound": max_error})
    return engine


# -- choosing and checking -------------------------------------------------------------------
def _checked(
    engine: Engine, reference: Engine, key: dict, store: EngineStore, crop_size: int, max_error: float
) -> Engine:
    """``engine`` with its accuracy on the probe faces (measured once per store key)."""
    entry = store.get(key)
    if entry is not None and "accuracy" in entry.facts:
        engine.accuracy = AccuracyReport(**{**entry.facts["accuracy"], "bound": max_error})
        return engine
    engine.accuracy = compare(engine, reference, probe_crops(PROBES, crop_size=crop_size), max_error)
    store.put(key, facts={"accuracy": engine.accuracy.to_dict(), "engine": engine.name})
    return engine


def create_engine(
    name: str,
    model: AUHourglass,
    device: str | torch.device = "cpu",
    crop_size: int = 256,
    max_error: float = DEFAULT_MAX_ERROR,
    store: EngineStore | None = None,
) -> Engine:
    """The engine ``name`` (one of :data:`BACKENDS`) for ``model`` on ``device``.

    Args:
        name: see the module docstring.
        model: the network, in eval mode; ``"torch"`` uses it as is, the others a copy.
        device: torch device. ``"onnx"``, ``"openvino"`` and ``"int8"`` run on the CPU only.
        crop_size: side of the registered crops.
        max_error: the largest |intensity - float32| a fast engine may show on the probe
            faces; ``"auto"`` passes over engines beyond it, the others warn.
        store: where exported models and accuracy checks are kept (default: the user cache).

    Raises:
        ValueError: unknown name, or a CPU-only engine asked for on another device.
        EngineUnavailable: its packages are missing, or (``"int8"``) no accepted int8 model.
    """
    device = torch.device(device)
    if name not in BACKENDS:
        raise ValueError(f"unknown back-end {name!r}; choose one of {', '.join(BACKENDS)}")
    model = model.eval()
    reference = _torch_reference(model, device)
    if name == "torch":
        return reference
    on_cpu = device.type == "cpu"
    if name in ("onnx", "openvino", "int8") and not on_cpu:
        raise ValueError(f"the {name} back-end runs on the CPU only, not on {device}")
    store = store or EngineStore()
    digest = weights_digest(model)
    if name == "int8":
        return _int8(digest, crop_size, store, max_error)
    if name != "auto":
        engine = _build(name, model, digest, device, crop_size, store, reference, max_error)
        if not engine.accuracy.accepted:
            log.warning("the %s back-end is beyond the accuracy bound here: %s", name, engine.accuracy)
        return engine
    candidates = ["fast"]
    if on_cpu:
        candidates = ["fast", "onnx"] if cpu_has_native_bf16() else ["onnx", "fast"]
        try:
            return _int8(digest, crop_size, store, max_error)
        except EngineUnavailable:
            pass
    passed_over = []
    for candidate in candidates:
        try:
            engine = _build(candidate, model, digest, device, crop_size, store, reference, max_error)
        except EngineUnavailable as err:
            log.debug("%s", err)
            continue
        if engine.accuracy.accepted:
            for message in passed_over:  # another engine holds the bound: nothing for the user to do
                log.info("%s; using %s", message, engine.name)
            return engine
        passed_over.append(f"not using {engine.name}: {engine.accuracy}")
    for message in passed_over:  # left with the slow reference: worth a warning
        log.warning("%s", message)
    return reference


def _build(
    name: str,
    model: AUHourglass,
    digest: str,
    device: torch.device,
    crop_size: int,
    store: EngineStore,
    reference: Engine,
    max_error: float,
) -> Engine:
    if name == "fast":
        engine = _torch_fast(model, device, crop_size, store, digest)
        libraries: tuple[str, ...] = ()
    elif name == "onnx":
        if not _available("onnxruntime"):
            raise EngineUnavailable("the onnx back-end needs onnxruntime: pip install onnxruntime")
        engine = _onnxruntime(onnx_file(model, crop_size, store, digest), "onnxruntime float32", 8)
        libraries = ("onnxruntime",)
    else:
        if not _available("openvino"):
            raise EngineUnavailable("the openvino back-end needs OpenVINO: pip install openvino")
        engine = _openvino(onnx_file(model, crop_size, store, digest))
        libraries = ("openvino",)
    key = {
        "engine": f"check-{engine.name}",
        "weights": digest,
        "crop_size": crop_size,
        "device": device.type,
        "probe": PROBE_REVISION,
        **machine_key(*libraries),
    }
    return _checked(engine, reference, key, store, crop_size, max_error)
