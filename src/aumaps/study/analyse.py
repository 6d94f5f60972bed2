"""One item of a study analysed into its CSV: a video (or a folder of frames) through
:func:`aumaps.video.process_video`, the images of a folder through
:func:`aumaps.predict.predict_files`.

Everything an item writes goes to a temporary name beside its CSV
(:func:`aumaps.atomic.atomic_path`) and is renamed only when the item is finished, corrected
intensities (:mod:`aumaps.study.baseline`) included; whatever goes wrong (the video cannot be
opened, no frame decodes, any error), the item ends ``failed`` with the reason and nothing
under its final name. Ctrl-C during a video ends it ``interrupted``, likewise. The report
is written into a temporary folder and takes its name after the CSV; the report an earlier
analysis left goes before the new CSV takes its name, so a report beside a CSV is always that
CSV's.

Each entry records what the CSV was made from (:mod:`aumaps.study.fingerprint`): the input's
fingerprint, taken before the item is read, and the model's key.

:class:`Analyst` is what the study runs in its own process or in each worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_folder, atomic_path, remove
from .baseline import MapStore, correct_csv
from .discover import StudyItem
from .fingerprint import ModelKey, input_fingerprint
from .options import StudyOptions
from .runlog import now

__all__ = ["Analyst"]

log = logging.getLogger(__name__)


class _Interrupted(Exception):
    """Ctrl-C stopped a video: its outputs must not be kept."""


class Analyst:
    """Analyses one item at a time into the output folder (in this process or a worker).

    Args:
        estimator: the :class:`~aumaps.predict.AUEstimator` (its AUs are the CSV's).
        out_dir: the study's output folder.
        options: the study's options (smoothing, baseline, reports...).
        model_key: what each entry records as ``made_with`` (default: none known).
    """

    def __init__(self, estimator: Any, out_dir: Path, options: StudyOptions, model_key: ModelKey | None = None) -> None:
        self.estimator = estimator
        self.out_dir = out_dir
        self.options = options
        self.model_key = model_key or ModelKey(None)

    def __call__(self, item: StudyItem, on_frames: Callable[[int], None]) -> dict[str, Any]:
        """Analyse ``item``, calling ``on_frames(n)`` as frames are done; its run-log entry
        (``status`` ``done``, ``failed`` with ``error``, or ``interrupted``)."""
        start = time.perf_counter()
        entry: dict[str, Any] = {
            "kind": item.kind,
            "source": str(item.source),
            "status": "failed",
            "frames": 0,
            "error": None,
        }
        try:
            entry["input"] = input_fingerprint(item)  # before reading: a change while it is read shows next time
            if item.kind == "images":
                entry |= self._images(item, on_frames)
            else:
                entry |= self._video(item, on_frames)
            entry["status"] = "done"
            entry["made_with"] = self.model_key.entry()
        except _Interrupted:
            entry["status"] = "interrupted"
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            raise
        except Exception as err:  # a broken item is reported and the study goes on
            entry["error"] = f"{type(err).__name__}: {err}" if not isinstance(err, (OSError, ValueError)) else str(err)
            log.debug("%s failed", item.name, exc_info=True)
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 3)
            entry["finished"] = now()
        if entry["frames"] and entry["seconds"]:
            entry["fps"] = round(entry["frames"] / entry["seconds"], 2)
        return entry

    def _video(self, item: StudyItem, on_frames: Callable[[int], None]) -> dict[str, Any]:
        from ..video import ImageSequenceSource, IntensitySmoother, VideoFileSource, process_video

        opts = self.options
        source = ImageSequenceSource(item.source, opts.fps) if item.kind == "sequence" else VideoFileSource(item.source)
        csv_path = self.out_dir / item.csv
        report_path = self.out_dir / item.report
        store = MapStore(csv_path.parent) if opts.baseline == "map" else None
        try:

            def on_result(result) -> None:
                on_frames(1)
                if store is not None:
                    store.add(result.faces)  # in the order of the CSV's face rows

            # the report's folder takes its name after the CSV (the outer block ends last)
            with contextlib.ExitStack() as outputs:
                report = outputs.enter_context(atomic_folder(report_path)) if opts.report else None
                temporary = outputs.enter_context(atomic_path(csv_path))
                summary = process_video(
                    self.estimator,
                    source,
                    temporary,
                    report=report,
                    smoother=IntensitySmoother.parse(opts.smooth) if opts.smooth else None,
                    redetect_every=opts.redetect_every,
                    progress=False,
                    on_result=on_result,
                )
                if summary.interrupted:
                    raise _Interrupted(item.name)
                if summary.frames == summary.unreadable:  # not one frame decoded
                    raise ValueError("; ".join(summary.problems) or f"{item.source}: no frame could be decoded")
                estimate = None
                if opts.baseline:
                    with atomic_path(temporary) as corrected:
                        estimate = correct_csv(
                            temporary, corrected, self.estimator.aus, opts.baseline, opts.baseline_percentile, store
                        )
                remove(report_path)  # an earlier analysis's report never stands beside this CSV
        finally:
            if store is not None:
                store.close()
        entry = {
            "frames": summary.frames,
            "frames_with_face": summary.frames_with_face,
            "tracks": summary.face_ids,
            "unreadable": summary.unreadable,
            "problems": summary.problems,
        }
        if estimate is not None:
            entry["baseline"] = {"form": opts.baseline, "percentile": opts.baseline_percentile, "tracks": estimate}
        if report is not None and "report" in summary.outputs:
            entry["report"] = f"{item.report}/index.html"
        return entry

    def _images(self, item: StudyItem, on_frames: Callable[[int], None]) -> dict[str, Any]:
        from ..predict import predict_files, write_image_csv

        images = faces = with_face = 0
        problems: list[str] = []
        with atomic_path(self.out_dir / item.csv) as temporary:
            results = write_image_csv(
                predict_files(self.estimator, item.files, progress=False), temporary, self.estimator.aus
            )
            for result in results:
                on_frames(1)
                if result.error:
                    problems.append(result.error)
                    continue
                images += 1
                faces += len(result.faces)
                with_face += bool(result.faces)
            if not images:
                raise ValueError(f"no image of '{item.source}' could be read: " + "; ".join(problems[:3]))
        return {
            "frames": images,
            "frames_with_face": with_face,
            "faces": faces,
            "unreadable": len(problems),
            "problems": problems,
        }
