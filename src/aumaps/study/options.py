"""How a study is analysed: :class:`StudyOptions`, the options of ``aumaps predict`` that a
study uses, and which of them change the results (a study is never resumed across those)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..runtime.probe import DEFAULT_MAX_ERROR
from .baseline import BASELINE_FORMS, DEFAULT_PERCENTILE

__all__ = ["StudyOptions"]


@dataclass
class StudyOptions:
    """How a study is analysed (the ``aumaps predict`` options of the same names).

    Attributes:
        weights, detector, device, batch_size, backend, max_error, shift_test: the estimator's
            (:class:`aumaps.predict.AUEstimator`); ``device`` None: the CPU, or under
            ``torchrun`` on a machine with GPUs ``cuda:LOCAL_RANK``.
        redetect_every, smooth: video analysis (``smooth``: an
            :meth:`~aumaps.video.IntensitySmoother.parse` spec).
        fps, sequence: folders of frames are videos at ``fps`` (``--sequence``).
        baseline: None, ``"scalar"`` or ``"map"``: add per-track corrected intensities
            (:mod:`aumaps.study.baseline`); ``baseline_percentile``: the neutral's percentile.
        report: an HTML report per video (``CSV_report/index.html``) and the study page
            (``index.html``, unsharded runs).
        workers: processes on this machine.
        shard: ``(i, n)``: analyse only shard ``i`` of ``n``.
        force: analyse every item again, complete or not (``--force``).
        progress: show the progress bar.
    """

    weights: str = "default"
    detector: str = "dlib"
    device: str | None = None
    batch_size: int | None = None
    backend: str = "auto"
    max_error: float = DEFAULT_MAX_ERROR
    shift_test: bool | None = None
    redetect_every: int = 30
    smooth: str | None = None
    fps: float = 30.0
    sequence: bool = False
    baseline: str | None = None
    baseline_percentile: float = DEFAULT_PERCENTILE
    report: bool = False
    workers: int = 1
    shard: tuple[int, int] | None = None
    force: bool = False
    progress: bool = True

    def check(self) -> None:
        """Raise ValueError for options that cannot work together, before any work."""
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.baseline is not None and self.baseline not in BASELINE_FORMS:
            raise ValueError(f"--baseline must be one of {', '.join(BASELINE_FORMS)}, got {self.baseline!r}")
        if not 0 <= self.baseline_percentile <= 100:
            raise ValueError(f"the baseline percentile must lie in [0, 100], got {self.baseline_percentile}")
        if self.baseline == "map" and self.smooth:
            raise ValueError(
                "--baseline map reads the unsmoothed AU maps: it cannot be combined with --smooth "
                "(the scalar baseline can)"
            )
        if self.smooth:
            from ..video import IntensitySmoother

            IntensitySmoother.parse(self.smooth)

    def results_key(self) -> dict[str, Any]:
        """The options that change what a CSV holds: a study is never resumed across them
        (the model's own key, weights digest and aumaps version, is each item's:
        :mod:`aumaps.study.fingerprint`)."""
        keep = (
            "weights",
            "detector",
            "backend",
            "max_error",
            "shift_test",
            "redetect_every",
            "smooth",
            "fps",
            "sequence",
            "baseline",
            "baseline_percentile",
        )
        return {name: getattr(self, name) for name in keep}
