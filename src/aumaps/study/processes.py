"""The processes a study runs in: this one, ``workers`` on this machine, or ``torchrun``'s ranks.

* **Here** (:func:`analyse_here`): one item after the other in this process.
* **Workers** (:func:`analyse_in_workers`): N processes started with ``spawn`` (as
  :func:`aumaps.data.cache.build_cache` does: a fork taken while PyTorch's or OpenCV's threads
  hold a lock can deadlock), each with its own estimator and :func:`threads_per_process`
  PyTorch threads, so that N workers never ask for more threads than the cores; items are
  handed out one at a time as workers free up, and each worker tells the parent of the
  frames it has done for the progress bar. Workers ignore Ctrl-C (the parent handles it; a
  video being analysed still stops on it) and exit should the parent die.
* **torchrun ranks** (:class:`Ranks`): each rank analyses its share on its own, on GPU
  ``LOCAL_RANK`` where there are GPUs (:func:`device_for`); they meet once, at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from .analyse import Analyst
from .discover import StudyItem, launcher_shard
from .options import StudyOptions

__all__ = [
    "Ranks",
    "analyse_here",
    "analyse_in_workers",
    "build_estimator",
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

    return AUEstimator(weights=options.weights, detector=options.detector, device=device,
                       batch_size=options.batch_size, backend=options.backend, max_error=options.max_error)


# -- inside a worker ---------------------------------------------------------------------

_ANALYST: Analyst | None = None
_MESSAGES: Any = None


def _start_worker(options: StudyOptions, out_dir: Path, device: str, threads: int, messages: Any,
                  parent: int) -> None:
    """Worker initialiser: its threads, its estimator; Ctrl-C is the parent's business (a
    video being analysed still stops on it, see :func:`aumaps.video.process_video`); exit
    should the parent die."""
    global _ANALYST, _MESSAGES
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    _ANALYST = Analyst(build_estimator(options, device), out_dir, options)
    _MESSAGES = messages


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _work(item: StudyItem) -> dict[str, Any]:
    """Analyse ``item`` in a worker, telling the parent of frames done every 0.2 s."""
    assert _ANALYST is not None, "_start_worker has not run in this process"
    pending = [0, time.monotonic()]

    def on_frames(n: int) -> None:
        pending[0] += n
        if time.monotonic() - pending[1] > 0.2:
            _MESSAGES.put(pending[0])
            pending[:] = [0, time.monotonic()]

    entry = _ANALYST(item, on_frames)
    if pending[0]:
        _MESSAGES.put(pending[0])
    return entry


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


def analyse_here(todo: list[StudyItem], analyst: Analyst, on_frames: Callable[[int], None],
                 finished: Finished) -> bool:
    """Analyse the items in this process, one after the other; whether Ctrl-C stopped it."""
    for item in todo:
        try:
            entry = analyst(item, on_frames)
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside a video
            finished(item, {"kind": item.kind, "source": str(item.source), "status": "interrupted", "frames": 0})
            return True
        finished(item, entry)
        if entry["status"] == "interrupted":
            return True
    return False


def analyse_in_workers(todo: list[StudyItem], out: Path, options: StudyOptions, device: str, workers: int,
                       threads: int, on_frames: Callable[[int], None], finished: Finished,
                       say: Callable[[str], None] = print) -> bool:
    """Analyse the items in ``workers`` processes of ``threads`` PyTorch threads, one item per
    free worker; whether Ctrl-C stopped it (the videos being analysed then stop and are
    logged ``interrupted``)."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(options, out, device, threads, messages, os.getpid()))
    waiting = list(reversed(todo))
    running: dict[Future, StudyItem] = {}
    interrupted = False

    def drain() -> None:
        while True:
            try:
                on_frames(messages.get_nowait())
            except queue.Empty:
                return

    def collect(futures) -> None:
        for future in futures:
            item = running.pop(future)
            try:
                entry = future.result()
            except Exception as err:  # noqa: BLE001 - the worker died (killed, out of memory)
                entry = {"kind": item.kind, "source": str(item.source), "status": "failed", "frames": 0,
                         "error": f"worker process failed: {type(err).__name__}: {err}"}
            finished(item, entry)

    try:
        while waiting or running:
            while waiting and len(running) < workers:
                item = waiting.pop()
                running[pool.submit(_work, item)] = item
            ready, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            collect(ready)
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping the videos being analysed (their files are not kept)")
        try:
            ready, _ = wait(running, timeout=60)
            collect(ready)
        except KeyboardInterrupt:
            pass
        for item in running.values():
            finished(item, {"kind": item.kind, "source": str(item.source), "status": "interrupted", "frames": 0})
        running.clear()
    finally:
        drain()
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    return interrupted
