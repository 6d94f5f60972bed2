"""Where the time goes: wall time per stage of a pipeline (decode, detect, landmarks, ...)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StageTimes"]


class StageTimes:
    """Seconds spent in each stage of a pipeline.

    ``with times("detect"): ...`` adds the block's wall time to ``times.seconds["detect"]``.
    Each stage is timed by one thread (decoding runs in its own thread, overlapping the rest).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
