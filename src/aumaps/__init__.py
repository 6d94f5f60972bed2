"""aumaps: joint facial Action Unit intensity estimation and localisation by heatmap regression.

The main entry points are imported lazily (``import aumaps`` stays cheap)::

    from aumaps import AUEstimator, AUHeatmapCodec, AUHourglass, load_checkpoint, list_pretrained
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "AUEstimator": "aumaps.predict",
    "FaceResult": "aumaps.results",
    "FrameResult": "aumaps.results",
    "list_pretrained": "aumaps.pretrained",
    "AUHeatmapCodec": "aumaps.codec",
    "AUHourglass": "aumaps.model",
    "load_checkpoint": "aumaps.weights",
    "save_checkpoint": "aumaps.weights",
    "CATALOGUE": "aumaps.aus",
    "AU_SETS": "aumaps.aus",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aumaps' has no attribute {name!r}")
