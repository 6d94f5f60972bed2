"""Background work that must not slow the live views: photos and video jobs run in thread
pools whose threads have a lower scheduling priority.

A live view analyses a camera frame every few tens of milliseconds; a 12-megapixel photo
keeps dlib's detector busy for seconds, a video job for minutes. Both run in their own
threads (never on the event loop) and, on Linux, at ``nice`` +:data:`BACKGROUND_NICE`
(per thread; threads they start, such as an engine's, inherit it), so that when the cores
are contended the live sessions' threads get them first and the background work takes
what is left. Elsewhere the pools are ordinary thread pools.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["BACKGROUND_NICE", "BackgroundPool", "lower_priority"]

log = logging.getLogger(__name__)

#: How much lower than the server's the background threads' priority is (Linux ``nice``).
BACKGROUND_NICE = 10


def lower_priority(amount: int = BACKGROUND_NICE) -> bool:
    """Lower the calling thread's scheduling priority by ``amount`` (Linux only: there a
    thread's ``nice`` value is its own). Returns whether it was lowered."""
    if not sys.platform.startswith("linux") or amount <= 0:
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + amount))
    except OSError as err:  # not permitted here: the work still runs, at the usual priority
        log.debug("could not lower a background thread's priority: %s", err)
        return False
    return True


class BackgroundPool(ThreadPoolExecutor):
    """A thread pool whose threads run at a lower priority (:func:`lower_priority`).

    Args:
        workers: threads.
        name: their name prefix (shown by debuggers and ``top -H``).
    """

    def __init__(self, workers: int, name: str) -> None:
        super().__init__(max_workers=max(1, int(workers)), thread_name_prefix=name, initializer=lower_priority)
