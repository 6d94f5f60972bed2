"""Videos, webcams and image sequences: AU intensities for every frame, at speed.

* :mod:`aumaps.video.sources`: frames of files, cameras and folders, decoded in a thread;
* :mod:`aumaps.video.analyser`: tracking, batched network, smoothing, :func:`process_video`;
* :mod:`aumaps.video.writers`: the overlay video (the CSV is :class:`aumaps.results.ResultWriter`).
"""

import importlib

_LAZY = {
    "IntensitySmoother": "analyser",
    "VideoAnalyser": "analyser",
    "VideoSummary": "analyser",
    "process_video": "analyser",
    "VIDEO_EXTENSIONS": "sources",
    "Frame": "sources",
    "FrameReader": "sources",
    "FrameSource": "sources",
    "ImageSequenceSource": "sources",
    "VideoFileSource": "sources",
    "VideoOpenError": "sources",
    "WebcamSource": "sources",
    "is_video_file": "sources",
    "open_source": "sources",
    "OverlayWriter": "writers",
}


def __getattr__(name: str):
    """Names are imported on first use, so that asking which files are videos does not load
    the network's stack (PyTorch): ``aumaps.video.is_video_file`` costs only OpenCV."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
