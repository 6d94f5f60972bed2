"""The network at run time: inference engines chosen for the machine, their accuracy checks,
the store of what is built once, ONNX export and int8 quantization.

``create_engine(name, model)`` is the entry point (:mod:`aumaps.runtime.engines`). Names are
imported on first use, so that reading a constant does not load PyTorch.
"""

import importlib

_LAZY = {
    "BACKENDS": "engines",
    "Engine": "engines",
    "create_engine": "engines",
    "DEFAULT_MAX_ERROR": "probe",
    "AccuracyReport": "probe",
}

__all__ = sorted([*_LAZY, "EngineUnavailable"])


class EngineUnavailable(RuntimeError):
    """An engine cannot be built here: a package is missing, or no int8 model was made."""


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
