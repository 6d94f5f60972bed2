"""Running a study: every item analysed once, resumably, in one or several processes.

:func:`run_study` is what ``aumaps predict STUDY --out-dir OUT`` runs:

1. **Plan.** The items (:func:`~aumaps.study.discover.discover_study`), this job's share
   (``shard=(i, n)``, or the ``torchrun`` rank's share read from ``RANK``/``WORLD_SIZE``:
   :func:`~aumaps.study.discover.select_shard`), and which are complete: an item is
   complete when its CSV exists under its final name and the run log says it was made from
   the same input with the same model and aumaps version
   (:func:`~aumaps.study.fingerprint.stale_reason`); ``force`` redoes everything.
2. **Analyse** the rest (:class:`~aumaps.study.analyse.Analyst`: each item written under a
   temporary name beside its CSV and renamed when everything about it is written), here or
   in ``workers`` processes (:mod:`aumaps.study.processes`). Kill the run at any moment: no
   partial CSV or report ever carries a final name, and the next run redoes exactly the
   items without a complete one (and removes the temporary files a killed run left). An item
   that fails is logged with the reason (a worker process that died: with the signal); the
   study goes on. With workers, the parent frees its own model before they start.
3. **Log** (:class:`~aumaps.study.runlog.RunLog`) as items finish, and show one progress bar
   over the frames of the whole share, with frames/s and the time left. The log always ends
   in a final state (``complete``, ``failed`` or ``interrupted``) with the counts, whatever
   stopped the run (short of ``kill -9`` of this process itself).
4. **Under torchrun**, wait for the other ranks (:class:`~aumaps.study.processes.Ranks`):
   every rank exits with the largest status, and rank 0 writes the study page.

Ctrl-C or SIGTERM (a job scheduler's) stops the study: the videos being analysed stop (their
temporary files are removed), the log says ``interrupted``, and a later run resumes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import leftovers, remove
from .analyse import Analyst
from .discover import StudyItem, discover_study, launcher_shard, log_name, select_shard
from .fingerprint import ModelKey, input_fingerprint, stale_reason
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
        interrupted: stopped by Ctrl-C or SIGTERM.
        counts: items per log status.
        ranks_status: under ``torchrun``, the largest exit status over the ranks.
        redone: items whose CSV existed but was made again, by CSV path: why (their input
            or model changed, ``--force``).
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
    redone: dict[str, str] = field(default_factory=dict)

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


def _remove_leftovers(out: Path, item: StudyItem) -> None:
    """The temporary files and folders a killed run left for this item's CSV and report
    (never taken as results)."""
    for leftover in leftovers(out / item.csv) + leftovers(out / item.report):
        remove(leftover)


def _refresh_times(entry: dict[str, Any], item: StudyItem) -> None:
    """A complete item whose files were found the same by their contents (a copy, a touch):
    its entry takes their new times, so the next run needs no contents to tell."""
    with contextlib.suppress(OSError):
        now_ = input_fingerprint(item, content=False)
        if entry["input"].get("stat") != now_["stat"]:
            entry["input"] = {**entry["input"], **now_}


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block (in the main thread), SIGTERM, what job schedulers send before they
    kill, does what Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        current = signal.getsignal(signal.SIGINT)
        if callable(current):  # Python's (raises KeyboardInterrupt) or a video's (stops it where it is)
            current(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


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
        with _terminate_as_interrupt():
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


def _run(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: Path,
    options: StudyOptions,
    estimator: Any,
    shard: tuple[int, int] | None,
) -> StudyRun:
    """:func:`run_study` in one job."""
    items = discover_study(paths, out, options.sequence)
    if shard is not None:
        items = select_shard(items, *shard)
    out.mkdir(parents=True, exist_ok=True)
    if not options.force:  # forced, every item is made again: nothing would be mixed
        check_compatible(out, options.results_key())
    runlog = RunLog(
        out / log_name(shard),
        {
            "study": [str(Path(p).resolve()) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)],
            "out_dir": str(out.resolve()),
            "shard": list(shard) if shard else None,
            "launcher": "torchrun" if launcher_shard() else None,
            "command": command_line(),
            "options": {
                **{k: v for k, v in asdict(options).items() if k not in StudyOptions().results_key()},
                "results": options.results_key(),
            },
        },
    )
    known = [log.get("made_with", {}).get("weights_file") for log in runlog.earlier_logs]
    key = ModelKey.of(estimator.checkpoint.path if estimator is not None else options.weights, known)
    runlog.update(made_with=key.entry())
    todo, redone = [], {}
    for item in items:
        entry = {"kind": item.kind, "source": str(item.source)}
        reason = None
        if (out / item.csv).is_file():
            reason = "--force" if options.force else stale_reason(runlog.earlier.get(item.csv), item, key)
            if reason is None:
                runlog.complete(item.csv, entry)
                _refresh_times(runlog.items[item.csv], item)
                continue
            redone[item.csv] = reason
        _remove_leftovers(out, item)
        runlog.set(item.csv, {**entry, "status": "pending"} | ({"redo": reason} if reason else {}))
        todo.append(item)
    run = StudyRun(out, runlog.path, items, runlog.items, shard, redone=redone)
    try:
        if todo:
            run.frames, run.seconds, run.interrupted = _analyse(todo, out, options, estimator, runlog, key, redone)
        if options.report and not run.interrupted:
            _reports_from_csvs(out, items, runlog)
    except KeyboardInterrupt:  # outside the analysis (building the model, the reports)
        run.interrupted = True
    except BaseException as err:
        runlog.update(error=f"{type(err).__name__}: {err}")
        runlog.finish("failed")  # never left "running"
        raise
    finally:
        run.counts = runlog.counts()
    runlog.finish("interrupted" if run.interrupted else ("failed" if run.failed else "complete"))
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
        reporting.write_report(
            out / item.report,
            table,
            aus,
            title=str(item.source),
            facts={"peak frames": "not shown (report made from the CSV)"},
        )
        entry["report"] = f"{item.report}/index.html"


def _free_memory() -> None:
    """Give back what a dropped model held: Python's cycles, PyTorch's cached GPU memory."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _analyse(
    todo: list[StudyItem],
    out: Path,
    options: StudyOptions,
    estimator: Any,
    runlog: RunLog,
    key: ModelKey,
    redone: dict[str, str],
) -> tuple[int, float, bool]:
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
    if key.weights_sha256 is None:  # the weights were fetched just now
        key = ModelKey.of(ckpt.path, [key.weights_file])
    runlog.update(
        machine=describe_machine()
        if workers == 1
        else f"{describe_machine()}; {workers} workers of {threads} thread(s)",
        model={"weights": options.weights, "path": str(ckpt.path), "aus": list(ckpt.aus), "card": ckpt.card},
        made_with=key.entry(),
        engine=estimator.engine.describe(),
        device=device,
        workers=workers,
        threads_per_worker=threads,
    )
    runlog.save()
    del ckpt
    if workers > 1:  # the parent's model is not needed while the workers load theirs
        estimator = None
        _free_memory()
    expected = {item.csv: _frame_count(item) for item in todo}
    known = [n for n in expected.values() if n is not None]
    guess = int(sum(known) / len(known)) if known else 0
    expected = {k: guess if n is None else n for k, n in expected.items()}
    bar = tqdm(
        total=sum(expected.values()), unit="frame", desc="study", disable=not options.progress, dynamic_ncols=True
    )
    done = {"items": 0, "failed": 0, "frames": 0}

    def finished(item: StudyItem, entry: dict[str, Any]) -> None:
        if entry["status"] == "failed" and redone.get(item.csv, "--force") != "--force":
            remove(out / item.csv)  # the earlier CSV describes another input or model
            remove(out / item.report)
            entry["error"] = f"{entry.get('error')}; the earlier CSV was removed ({redone[item.csv]})"
        runlog.set(item.csv, entry)
        runlog.save(force=entry["status"] == "done")  # what made a CSV is on disk as soon as the CSV
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
            interrupted = analyse_here(todo, Analyst(estimator, out, options, key), bar.update, finished)
        else:
            interrupted = analyse_in_workers(
                todo,
                out,
                options,
                device,
                workers,
                threads,
                bar.update,
                finished,
                say=lambda text: bar.write(text, file=sys.stderr),
                model_key=key,
            )
    seconds = time.perf_counter() - start
    return done["frames"], seconds, interrupted
