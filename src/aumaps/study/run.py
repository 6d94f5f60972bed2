"""Running a study: every item analysed once, resumably, in one or several processes.

:func:`run_study` is what ``aumaps predict STUDY --out-dir OUT`` runs:

1. **Plan.** The items (:func:`~aumaps.study.discover.discover_study`), this job's share
   (``shard=(i, n)``, or the ``torchrun`` rank's share read from ``RANK``/``WORLD_SIZE``:
   :func:`~aumaps.study.discover.select_shard`), and which are complete: an item is
   complete when its CSV exists under its final name. Nothing else counts.
2. **Analyse** the rest (:class:`~aumaps.study.analyse.Analyst`: each item written under a
   temporary name beside its CSV and renamed when everything about it is written), here or
   in ``workers`` processes (:mod:`aumaps.study.processes`). Kill the run at any moment: no
   partial CSV ever carries a final name, and the next run redoes exactly the items without
   one (and removes the temporary files a killed run left). An item that fails is logged
   with the reason; the study goes on.
3. **Log** (:class:`~aumaps.study.runlog.RunLog`) as items finish, and show one progress bar
   over the frames of the whole share, with frames/s and the time left.
4. **Under torchrun**, wait for the other ranks (:class:`~aumaps.study.processes.Ranks`):
   every rank exits with the largest status, and rank 0 writes the study page.

Ctrl-C stops the study: the videos being analysed stop (their temporary files are removed),
the log says ``interrupted``, and a later run resumes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .analyse import Analyst
from .discover import StudyItem, discover_study, launcher_shard, log_name, select_shard
from .options import StudyOptions
from .processes import (
    Ranks,
    analyse_here,
    analyse_in_workers,
    build_estimator,
    device_for,
    threads_here,
    threads_per_process,
)
from .runlog import RunLog, check_compatible, command_line

__all__ = ["StudyOptions", "StudyRun", "run_study"]

log = logging.getLogger(__name__)


@dataclass
class StudyRun:
    """What :func:`run_study` did.

    Attributes:
        out_dir: the output folder.
        log_path: this job's run log.
        items: this job's items (its shard), in order.
        entries: their log entries, by CSV path.
        shard: ``(i, n)`` or None.
        frames: frames analysed by this run.
        seconds: wall time of the analysis.
        interrupted: stopped by Ctrl-C.
        counts: items per log status.
        ranks_status: under ``torchrun``, the largest exit status over the ranks.
    """

    out_dir: Path
    log_path: Path
    items: list[StudyItem]
    entries: dict[str, dict[str, Any]]
    shard: tuple[int, int] | None = None
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    ranks_status: int | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The entries of the items that failed."""
        return [e for e in self.entries.values() if e["status"] == "failed"]

    @property
    def own_status(self) -> int:
        """This job's: 130 when interrupted, 1 when an item failed, else 0."""
        return 130 if self.interrupted else (1 if self.failed else 0)

    @property
    def exit_status(self) -> int:
        """:attr:`own_status`; under ``torchrun``, the largest of all ranks' (every rank
        exits with it, once all are done)."""
        return self.own_status if self.ranks_status is None else max(self.own_status, self.ranks_status)


def _frame_count(item: StudyItem) -> int | None:
    """Frames the item announces (None: unknown)."""
    if item.kind != "video":
        return len(item.files)
    import cv2

    capture = cv2.VideoCapture(str(item.source))
    try:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0
    finally:
        capture.release()
    return int(count) if count and count > 0 else None


def _remove_leftovers(csv_path: Path) -> None:
    """The temporary files a killed run left for this CSV (never taken as results)."""
    for leftover in csv_path.parent.glob(f".{csv_path.name}.*.part"):
        leftover.unlink(missing_ok=True)


def _shard(options: StudyOptions) -> tuple[int, int] | None:
    launched = launcher_shard()
    if options.shard is not None and launched is not None:
        raise ValueError("--shard under torchrun: each rank takes its own share already; give one or the other")
    return options.shard if options.shard is not None else launched


def run_study(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: StudyOptions | None = None,
    estimator: Any = None,
) -> StudyRun:
    """Analyse a study into ``out_dir`` (see the module docstring).

    Args:
        paths: the study folder (or several folders and files, see
            :func:`~aumaps.study.discover.discover_study`).
        out_dir: the output folder (created): one CSV per item mirroring the study's tree,
            the run log, reports.
        options: how (default :class:`StudyOptions()`).
        estimator: an :class:`~aumaps.predict.AUEstimator` to use instead of building one
            from the options (``workers=1`` only).

    Returns:
        A :class:`StudyRun`; its ``exit_status`` is what ``aumaps predict`` exits with.

    Raises:
        FileNotFoundError: a path does not exist.
        EmptyStudyError: a folder holds nothing aumaps can read.
        ValueError: options that do not go together, or ``out_dir`` holds results of other
            options.
    """
    options = options or StudyOptions()
    options.check()
    if estimator is not None and options.workers > 1:
        raise ValueError("an estimator object can be used by workers=1 only")
    out = Path(out_dir)
    shard = _shard(options)
    ranks = Ranks.join() if options.shard is None else None
    try:
        run = _run(paths, out, options, estimator, shard)
        if ranks is not None:
            run.ranks_status = ranks.status(run.own_status)
            if ranks.rank == 0 and options.report and run.ranks_status != 130:
                from .page import write_study_page

                write_study_page(out)  # every rank is done: the page covers the whole study
            ranks.leave()
    except BaseException:
        if ranks is not None:  # torchrun stops the other ranks when this one exits with the error
            ranks.abandon()
        raise
    return run


def _run(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out: Path, options: StudyOptions,
         estimator: Any, shard: tuple[int, int] | None) -> StudyRun:
    """:func:`run_study` in one job."""
    items = discover_study(paths, out, options.sequence)
    if shard is not None:
        items = select_shard(items, *shard)
    out.mkdir(parents=True, exist_ok=True)
    check_compatible(out, options.results_key())
    runlog = RunLog(out / log_name(shard), {
        "study": [str(Path(p).resolve()) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)],
        "out_dir": str(out.resolve()),
        "shard": list(shard) if shard else None,
        "launcher": "torchrun" if launcher_shard() else None,
        "command": command_line(),
        "options": {**{k: v for k, v in asdict(options).items() if k not in StudyOptions().results_key()},
                    "results": options.results_key()},
    })
    todo = []
    for item in items:
        entry = {"kind": item.kind, "source": str(item.source)}
        if (out / item.csv).is_file():
            runlog.complete(item.csv, entry)
        else:
            _remove_leftovers(out / item.csv)
            runlog.set(item.csv, {**entry, "status": "pending"})
            todo.append(item)
    run = StudyRun(out, runlog.path, items, runlog.items, shard)
    if todo:
        run.frames, run.seconds, run.interrupted = _analyse(todo, out, options, estimator, runlog)
    if options.report:
        _reports_from_csvs(out, items, runlog)
    runlog.finish("interrupted" if run.interrupted else ("failed" if run.failed else "complete"))
    run.counts = runlog.counts()
    if options.report and shard is None and not run.interrupted:
        from .page import write_study_page

        write_study_page(out)
    return run


def _reports_from_csvs(out: Path, items: list[StudyItem], runlog: RunLog) -> None:
    """Reports of complete videos that have none (a resumed run asked for reports that an
    earlier one did not write): from the CSV, without peak frames (those need the video)."""
    from .. import report as reporting
    from .summary import csv_aus

    for item in items:
        entry = runlog.items[item.csv]
        if item.kind == "images" or entry["status"] != "complete" or (out / item.report / "index.html").is_file():
            continue
        aus = csv_aus(out / item.csv)
        table = reporting.load_series(out / item.csv, aus)
        reporting.write_report(out / item.report, table, aus, title=str(item.source),
                               facts={"peak frames": "not shown (report made from the CSV)"})
        entry["report"] = f"{item.report}/index.html"


def _analyse(todo: list[StudyItem], out: Path, options: StudyOptions, estimator: Any,
             runlog: RunLog) -> tuple[int, float, bool]:
    """Analyse ``todo`` here or in workers, logging as items finish; (frames, seconds,
    interrupted)."""
    from tqdm.auto import tqdm

    from ..hardware import describe_machine

    device = device_for(options)
    workers = min(options.workers, len(todo))
    threads = threads_here() if workers == 1 else threads_per_process(workers)
    if estimator is None:  # with workers too: the options are checked, the engine built once, the log told
        estimator = build_estimator(options, device)
    ckpt = estimator.checkpoint
    runlog.update(
        machine=describe_machine() if workers == 1 else f"{describe_machine()}; {workers} workers of {threads} "
        "thread(s)",
        model={"weights": options.weights, "path": str(ckpt.path), "aus": list(ckpt.aus), "card": ckpt.card},
        engine=estimator.engine.describe(), device=device, workers=workers, threads_per_worker=threads)
    runlog.save()
    expected = {item.csv: _frame_count(item) for item in todo}
    known = [n for n in expected.values() if n is not None]
    guess = int(sum(known) / len(known)) if known else 0
    expected = {k: guess if n is None else n for k, n in expected.items()}
    bar = tqdm(total=sum(expected.values()), unit="frame", desc="study", disable=not options.progress,
               dynamic_ncols=True)
    done = {"items": 0, "failed": 0, "frames": 0}

    def finished(item: StudyItem, entry: dict[str, Any]) -> None:
        runlog.set(item.csv, entry)
        runlog.save(force=False)
        done["items"] += 1
        done["frames"] += entry["frames"]
        if entry["status"] == "failed":
            done["failed"] += 1
            bar.write(f"failed: {item.name}: {entry['error']}", file=sys.stderr)
        elif entry.get("problems"):
            bar.write(f"{item.name}: " + "; ".join(entry["problems"][:3]), file=sys.stderr)
        if entry["frames"] != expected[item.csv]:  # the count announced was off, or the item failed
            bar.total += entry["frames"] - expected[item.csv]
            bar.refresh()
        bar.set_postfix_str(f"{done['items']}/{len(todo)} items, {done['failed']} failed", refresh=False)

    start = time.perf_counter()
    with bar:
        if workers == 1:
            interrupted = analyse_here(todo, Analyst(estimator, out, options), bar.update, finished)
        else:
            del estimator
            interrupted = analyse_in_workers(todo, out, options, device, workers, threads, bar.update, finished,
                                             say=lambda text: bar.write(text, file=sys.stderr))
    seconds = time.perf_counter() - start
    return done["frames"], seconds, interrupted


