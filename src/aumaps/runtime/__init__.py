"""The network at run time: inference engines chosen for the machine, their accuracy checks,
the store of what is built once, ONNX export and int8 quantization.

``create_engine(name, model)`` is the entry point (:mod:`aumaps.runtime.engines`).
"""

from .engines import BACKENDS, Engine, EngineUnavailable, create_engine
from .probe import DEFAULT_MAX_ERROR, AccuracyReport

__all__ = ["BACKENDS", "DEFAULT_MAX_ERROR", "AccuracyReport", "Engine", "EngineUnavailable", "create_engine"]
