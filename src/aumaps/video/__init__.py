"""Videos, webcams and image sequences: AU intensities for every frame, at speed.

* :mod:`aumaps.video.sources`: frames of files, cameras and folders, decoded in a thread;
* :mod:`aumaps.video.analyser`: tracking, batched network, smoothing, :func:`process_video`;
* :mod:`aumaps.video.writers`: the overlay video (the CSV is :class:`aumaps.results.ResultWriter`).
"""

from .analyser import IntensitySmoother, VideoAnalyser, VideoSummary, process_video
from .sources import (
    VIDEO_EXTENSIONS,
    Frame,
    FrameReader,
    FrameSource,
    ImageSequenceSource,
    VideoFileSource,
    VideoOpenError,
    WebcamSource,
    is_video_file,
    open_source,
)
from .writers import OverlayWriter

__all__ = [
    "VIDEO_EXTENSIONS",
    "Frame",
    "FrameReader",
    "FrameSource",
    "ImageSequenceSource",
    "IntensitySmoother",
    "OverlayWriter",
    "VideoAnalyser",
    "VideoFileSource",
    "VideoOpenError",
    "VideoSummary",
    "WebcamSource",
    "is_video_file",
    "open_source",
    "process_video",
]
