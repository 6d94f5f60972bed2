"""The processes a study runs in: this one, ``workers`` on this machine, or ``torchrun``'s ranks.

* **Here** (:func:`analyse_here`): one item after the other in this process.
* **Workers** (:func:`analyse_in_workers`): N processes started with ``spawn`` (as
  :func:`aumaps.data.cache.build_cache` does: a fork taken while PyTorch's or OpenCV's threads
  hold a lock can deadlock), each with its own estimator and :func:`threads_per_process`
  PyTorch threads, so that N workers never ask for more threads than the cores; items are
  handed out one at a time as workers free up, and each worker tells the parent of the
  frames it has done for the progress bar. Each worker is a process of its own with its own
  pipe, so a worker that dies (``kill -9``, the out-of-memory killer) fails only the item it
  had, named with the signal, and a new worker takes its place. Workers ignore Ctrl-C (the
  parent handles it; a video being analysed still stops on it), end on SIGTERM with their
  temporary files removed, and exit should the parent die.
* **torchrun ranks** (:class:`Ranks`): each rank analyses its share on its own, on GPU
  ``LOCAL_RANK`` where there are GPUs (:func:`device_for`); they meet once, at the end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import connection
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..atomic import leftovers, remove
from .analyse import Analyst
from .discover import StudyItem, launcher_shard
from .fingerprint import ModelKey
from .options import StudyOptions

__all__ = [
    "Ranks",
    "analyse_here",
    "analyse_in_workers",
    "build_estimator",
    "death_cause",
    "device_for",
    "threads_here",
    "threads_per_process",
]

#: Called with each finished item and its log entry.
Finished = Callable[[StudyItem, dict[str, Any]], None]


def _cores() -> int:
    """The CPU budget of this process: ``OMP_NUM_THREADS`` when set, else the CPUs it may
    run on divided between the ``torchrun`` ranks of this machine."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) if launcher_shard() else 1
    return max(1, cores // max(local, 1))


def threads_per_process(workers: int) -> int:
    """PyTorch threads for each of ``workers`` worker processes: this process's CPU budget
    (``OMP_NUM_THREADS`` when set, else the CPUs it may run on divided between the
    ``torchrun`` ranks of this machine) divided between them, at least 1."""
    return max(1, _cores() // workers)


def threads_here() -> int:
    """The PyTorch threads of this process when it analyses the items itself: under
    ``torchrun``, set to :func:`threads_per_process` (1 worker); PyTorch's own choice otherwise."""
    import torch

    if launcher_shard() is not None:
        torch.set_num_threads(threads_per_process(1))
    return torch.get_num_threads()


def device_for(options: StudyOptions) -> str:
    """``options.device``; else under ``torchrun`` with GPUs ``cuda:LOCAL_RANK``; else the CPU."""
    if options.device:
        return options.device
    if launcher_shard() is not None:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"


def build_estimator(options: StudyOptions, device: str) -> Any:
    """The :class:`~aumaps.predict.AUEstimator` the options describe, on ``device``."""
    from ..predict import AUEstimator

    return AUEstimator(
        weights=options.weights,
        detector=options.detector,
        device=device,
        batch_size=options.batch_size,
        backend=options.backend,
        max_error=options.max_error,
        shift_test=options.shift_test,
    )


# -- inside a worker ---------------------------------------------------------------------


def _worker_main(
    conn: Connection, options: StudyOptions, out_dir: Path, device: str, threads: int, model_key: ModelKey, parent: int
) -> None:
    """A worker process: build its estimator, say ``("ready",)``, then analyse each item the
    parent sends (``None``: stop), telling it ``("frames", n)`` every 0.2 s and ``("done",
    entry)`` at the end of each item. A worker that cannot start says ``("error", why)``.

    Ctrl-C is the parent's business (a video being analysed still stops on it, see
    :func:`aumaps.video.process_video`); SIGTERM ends the worker, its temporary files removed;
    it exits should the parent die."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    try:
        import cv2
        import torch
        from tqdm.auto import tqdm

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing semaphore, which a killed worker would leak
        analyst = Analyst(build_estimator(options, device), out_dir, options, model_key)
    except Exception as err:
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready",))
    pending = [0, time.monotonic()]

    def on_frames(n: int) -> None:
        pending[0] += n
        if time.monotonic() - pending[1] > 0.2:
            conn.send(("frames", pending[0]))
            pending[:] = [0, time.monotonic()]

    while True:
        try:
            item = conn.recv()
        except EOFError:  # the parent is gone
            return
        if item is None:
            return
        entry = analyst(item, on_frames)
        if pending[0]:
            conn.send(("frames", pending[0]))
            pending[0] = 0
        conn.send(("done", entry))


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM in a worker: unwind (temporary files are removed on the way) and exit."""
    raise SystemExit(128 + signum)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def death_cause(exitcode: int | None) -> str:
    """Why a worker process ended, in words: the signal that killed it (SIGKILL: what the
    kernel's out-of-memory killer sends), or its exit status."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0 or exitcode > 128:
        number = -exitcode if exitcode < 0 else exitcode - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        how = "killed by" if exitcode < 0 else "ended on"
        note = " (the kernel's out-of-memory killer sends it when memory runs out)" if number == signal.SIGKILL else ""
        return f"{how} {name} (signal {number}){note}"
    return f"it exited with status {exitcode}"


# -- torchrun's ranks -------------------------------------------------------------------


class Ranks:
    """The processes ``torchrun`` started for a study. Each analyses its share on its own;
    they meet once, at the end, so that no rank exits before the others are done (torchrun
    stops every rank as soon as one exits with an error, and a failed video makes a rank
    exit with 1) and all exit with the same status. A Gloo group whatever the device: one
    integer crosses it; its timeout is long, since ranks finish far apart."""

    def __init__(self) -> None:
        from datetime import timedelta

        import torch.distributed as dist

        self._joined = not dist.is_initialized()
        if self._joined:
            dist.init_process_group("gloo", timeout=timedelta(days=30))
        self.rank = dist.get_rank()

    @classmethod
    def join(cls) -> Ranks | None:
        """The group, when launched by ``torchrun`` (or any launcher that sets
        ``MASTER_ADDR`` besides ``RANK`` and ``WORLD_SIZE``); None otherwise."""
        if launcher_shard() is None or "MASTER_ADDR" not in os.environ:
            return None
        return cls()

    def status(self, own: int) -> int:
        """The largest exit status over the ranks, once every rank has one."""
        import torch
        import torch.distributed as dist

        value = torch.tensor([own], dtype=torch.int64)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item())

    def leave(self) -> None:
        """Wait for every rank (rank 0 may still be writing the study page), then leave."""
        import torch.distributed as dist

        if self._joined and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def abandon(self) -> None:
        """Leave without waiting (this rank stops on an error)."""
        import torch.distributed as dist

        if self._joined and dist.is_initialized():
            dist.destroy_process_group()


# -- here, or in workers ----------------------------------------------------------------


def analyse_here(todo: list[StudyItem], analyst: Analyst, on_frames: Callable[[int], None], finished: Finished) -> bool:
    """Analyse the items in this process, one after the other; whether Ctrl-C stopped it."""
    for item in todo:
        told = [0]

        def counting(n: int, told: list[int] = told) -> None:
            told[0] += n
            on_frames(n)

        try:
            entry = analyst(item, counting)
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside a video
            on_frames(-told[0])
            finished(item, {"kind": item.kind, "source": str(item.source), "status": "interrupted", "frames": 0})
            return True
        on_frames(entry["frames"] - told[0])  # frames of an item that ended without its CSV do not count
        finished(item, entry)
        if entry["status"] == "interrupted":
            return True
    return False


class _Worker:
    """One worker process, the parent's end of its pipe, and the item it is analysing."""

    def __init__(self, context: Any, args: tuple) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, *args), name="aumaps-study-worker")
        self.process.start()
        child.close()
        self.ready = False
        self.error: str | None = None  # why it could not start
        self.item: StudyItem | None = None
        self.frames = 0  # frames of the current item told so far

    def receive(self) -> list[tuple]:
        """The messages waiting in the pipe (all of them, also after the process ended)."""
        messages = []
        try:
            while self.conn.poll():
                messages.append(self.conn.recv())
        except (EOFError, OSError):
            pass
        return messages

    def give(self, item: StudyItem | None) -> bool:
        """Send an item (None: stop); False when the process is gone."""
        try:
            self.conn.send(item)
        except (BrokenPipeError, OSError):
            return False
        self.item = item
        self.frames = 0
        return True

    def stop(self, timeout: float) -> None:
        """Ask it to stop, then make sure it does (SIGTERM, then SIGKILL)."""
        if self.process.is_alive() and self.item is None:
            self.give(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def analyse_in_workers(
    todo: list[StudyItem],
    out: Path,
    options: StudyOptions,
    device: str,
    workers: int,
    threads: int,
    on_frames: Callable[[int], None],
    finished: Finished,
    say: Callable[[str], None] = print,
    model_key: ModelKey | None = None,
) -> bool:
    """Analyse the items in ``workers`` processes of ``threads`` PyTorch threads, one item per
    free worker; whether Ctrl-C stopped it (the videos being analysed then stop and are
    logged ``interrupted``).

    A worker that dies (``kill -9``, the out-of-memory killer, a crash in a native library)
    fails only the item it was analysing, named with the signal; a new worker takes its place
    and the study goes on. Workers that cannot start (three in a row) fail the items left.
    """
    context = multiprocessing.get_context("spawn")
    args = (options, out, device, threads, model_key or ModelKey(None), os.getpid())
    waiting = list(reversed(todo))
    pool: list[_Worker] = []
    interrupted = False
    start_failures = 0
    last_error: str | None = None

    def unfinished(item: StudyItem, status: str, error: str | None = None) -> dict[str, Any]:
        entry = {"kind": item.kind, "source": str(item.source), "status": status, "frames": 0}
        return entry | ({"error": error} if error else {})

    def handle(worker: _Worker, message: tuple) -> None:
        nonlocal start_failures, last_error
        if message[0] == "frames":
            worker.frames += message[1]
            on_frames(message[1])
        elif message[0] == "ready":
            worker.ready, start_failures = True, 0
        elif message[0] == "error":
            start_failures += 1
            worker.error = last_error = message[1]
            say(f"a worker process could not start: {message[1]}")
        elif message[0] == "done" and worker.item is not None:
            item, worker.item, entry = worker.item, None, message[1]
            on_frames(entry["frames"] - worker.frames)  # frames of an item that ended without its CSV do not count
            if entry["status"] == "interrupted" and not interrupted:  # its worker alone was stopped
                entry |= {"status": "failed", "error": "its worker process was interrupted (SIGINT)"}
            finished(item, entry)

    def clean_after(worker: _Worker) -> None:
        """Remove what the ended worker was writing for its item (temporary names carry its pid)."""
        item = worker.item
        for leftover in leftovers(out / item.csv) + leftovers(out / item.report):
            if f".{worker.process.pid}-" in leftover.name:
                remove(leftover)

    def bury(worker: _Worker) -> None:
        """The worker's process has ended: its item (if any) fails, naming why."""
        nonlocal start_failures, last_error
        for message in worker.receive():
            handle(worker, message)
        pool.remove(worker)
        worker.process.join()
        cause = death_cause(worker.process.exitcode)
        worker.conn.close()
        if not worker.ready and worker.error is None:
            start_failures += 1
            last_error = f"a worker process ended while starting: {cause}"
            say(last_error)
        if worker.item is not None:
            item = worker.item
            clean_after(worker)
            on_frames(-worker.frames)  # its frames do not count
            status = "interrupted" if interrupted else "failed"
            finished(
                item,
                unfinished(
                    item,
                    status,
                    None if interrupted else f"the worker process analysing it died: {cause}; the other items went on",
                ),
            )

    def hire() -> None:
        """Workers for the items left, up to ``workers``."""
        while start_failures < 3 and len(pool) < min(workers, sum(w.item is not None for w in pool) + len(waiting)):
            pool.append(_Worker(context, args))

    try:
        hire()
        while waiting or any(w.item is not None for w in pool):
            if start_failures >= 3:
                for item in reversed(waiting):
                    finished(
                        item,
                        unfinished(
                            item,
                            "failed",
                            f"not analysed: worker processes could not start ({last_error or 'see above'})",
                        ),
                    )
                waiting.clear()
                if not any(w.item is not None for w in pool):
                    break
            for worker in pool:
                if worker.ready and worker.item is None and waiting:
                    item = waiting.pop()
                    if not worker.give(item):
                        waiting.append(item)
            ready = connection.wait([w.conn for w in pool] + [w.process.sentinel for w in pool], timeout=1.0)
            for worker in list(pool):
                if worker.conn in ready:
                    for message in worker.receive():
                        handle(worker, message)
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    bury(worker)
            if waiting:
                hire()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping the videos being analysed (their files are not kept)")
        busy = [w for w in pool if w.item is not None]
        for worker in busy:  # the first Ctrl-C stops a video where it is (see process_video)
            with contextlib.suppress(OSError):
                os.kill(worker.process.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        try:
            while any(w.item is not None for w in pool) and time.monotonic() < deadline:
                ready = connection.wait([w.conn for w in pool] + [w.process.sentinel for w in pool], timeout=0.5)
                for worker in list(pool):
                    if worker.conn in ready:
                        for message in worker.receive():
                            handle(worker, message)
                    if worker.process.sentinel in ready:
                        bury(worker)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
    finally:
        for worker in pool:
            worker.stop(timeout=10 if not interrupted else 2)
        for worker in pool:
            if worker.item is not None:  # stopped before it said how its item ended
                clean_after(worker)
                on_frames(-worker.frames)
                finished(
                    worker.item,
                    unfinished(
                        worker.item,
                        "interrupted" if interrupted else "failed",
                        None if interrupted else "the study stopped",
                    ),
                )
    return interrupted
