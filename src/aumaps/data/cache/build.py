"""Building a crop cache: every manifest row registered once, in parallel, resumably.

:func:`build_cache` registers every row of a manifest — read the picture
(:mod:`aumaps.data.cache.frames`), take the manifest's landmarks or find the face, warp it into
the 256×256 crop of :mod:`aumaps.align` — and writes the results into the arrays of
:mod:`aumaps.data.cache.format`. Building is resumable: rows are processed in chunks, each
chunk's arrays are flushed before ``done.npy`` marks it, so an interrupted build (Ctrl-C, a
killed process) continues where it stopped when run again with the same arguments, and loses
at most the chunks that were in flight.

Rows whose image cannot be read, where no face is found, or whose landmarks cannot register
a face stay in the cache with ``valid = False`` (zero crop, NaN landmarks and matrix), so that
row ``i`` of the cache is always row ``i`` of the manifest; ``info.json`` lists them with the
reason.

**Video frames** are read by decoding each video once, from its start, in one unit of work.
Where a face must be found, it is followed with :class:`aumaps.tracking.FaceTracker` (the
tracker of the video pipeline: re-detection every ``redetect_every`` frames and whenever
tracking fails, appearance check included), and the largest tracked face is kept. A video is
processed whole, so resuming or sharding never changes its tracking.

**Shards** (``shard=(i, n)``) split a build between independent jobs, by whole videos and
whole image sequences (``subject``, ``sequence``): each writes its share into its own folder,
and :func:`merge_caches` joins the shards into the cache an unsharded build writes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...align import CROP_SIZE, registration_matrix, transform_points, warp_to_crop
from ...aus import column_name, resolve_aus
from ...landmarks import DlibFaceDetector, FaceLandmarker
from ...shards import check_shard
from ...tracking import FaceTracker
from ..manifest import landmarks_array, read_manifest, read_manifests, validate_manifest
from .format import (
    CACHE_FORMAT,
    FAILURE_KINDS,
    VERSION,
    CacheError,
    check_resumable,
    create,
    fingerprint,
    meta_table,
    open_arrays,
    read_info,
    read_meta,
    summary_text,
    write_info,
)
from .frames import InvalidRow, RowImages, frame_ref

__all__ = ["build_cache", "merge_caches"]

#: A unit of work: ``(R,)`` row numbers, their ``R`` image paths, and ``(R, 68, 2)``
#: manifest landmarks (``None``, or NaN rows, where faces must be detected).
Task = tuple[np.ndarray, list[str], np.ndarray | None]


def build_cache(
    manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | pd.DataFrame,
    out_dir: str | os.PathLike[str],
    aus: str | int | Iterable[int | str],
    landmarker: FaceLandmarker | None = None,
    workers: int = 1,
    progress: bool = True,
    resume: bool = True,
    chunk: int = 256,
    shard: tuple[int, int] | None = None,
    redetect_every: int = 30,
) -> Path:
    """Register every row of a manifest into a crop cache.

    Args:
        manifest: A manifest CSV file (read with :func:`~aumaps.data.manifest.read_manifest`),
            a list of them (one data set: :func:`~aumaps.data.manifest.read_manifests`) or a
            table (checked with :func:`~aumaps.data.manifest.validate_manifest`).
        out_dir: The cache folder; created if needed. Only the cache's own files in it are
            written.
        aus: The AUs whose intensities are stored, in this order (anything
            :func:`aumaps.aus.resolve_aus` accepts); each needs an ``AUxx_r`` column.
        landmarker: Finds faces in rows without landmarks; the largest face (box area) is
            used. ``None`` builds a default :class:`~aumaps.landmarks.FaceLandmarker` (dlib)
            where one is needed. With ``workers > 1`` it is handed to each worker process.
        workers: Processes that register rows; ``1`` works in this process. The cache is
            the same whatever the number. Workers are started with ``spawn``, so a script
            that uses them needs the usual ``if __name__ == "__main__":`` guard.
        progress: Show a progress bar and print the summary.
        resume: Continue an unfinished build in ``out_dir`` (or return a finished one as
            it is). ``False`` rebuilds from scratch whatever the folder holds.
        chunk: Image rows per unit of work (fewer when there are too few rows to give each
            worker one); a video is always one unit of work. An interruption loses at most
            the units in flight.
        shard: ``(i, n)``: build only shard ``i`` (0-based) of ``n``: every ``n``-th video or
            image sequence (``subject``, ``sequence``), in order of first appearance. The
            folder is then a shard, which :class:`CropCache` refuses: join the ``n``
            shards' folders with :func:`merge_caches`. ``None`` builds every row.
        redetect_every: In videos, run the face detector at least every this many frames
            of a video and track the landmarks in between (``1``: detect in every frame).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`, holding a complete cache.

    Raises:
        CacheError: ``resume`` is true and ``out_dir`` holds a cache built from another
            manifest, AU list or row count, or its files are damaged.
        aumaps.data.manifest.ManifestError: The manifest is invalid.
        KeyboardInterrupt: The build was interrupted; run it again to resume.
    """
    aus = resolve_aus(aus)
    if workers < 1 or chunk < 1 or redetect_every < 1:
        raise ValueError(
            f"workers, chunk and redetect_every must be at least 1, got {workers}, {chunk} and {redetect_every}"
        )
    if shard is not None:
        check_shard(*shard)
    if isinstance(manifest, pd.DataFrame):
        table = validate_manifest(manifest, aus)
    elif isinstance(manifest, (list, tuple)):
        table = validate_manifest(read_manifests(manifest), aus)
    else:
        table = read_manifest(manifest, aus)
    images = table["image"].tolist()
    landmarks = landmarks_array(table)
    intensities = table[[column_name(a) for a in aus]].to_numpy(dtype=np.float32)
    meta = meta_table(table)
    identity = {
        "format": CACHE_FORMAT,
        "version": VERSION,
        "aus": list(aus),
        "n": len(table),
        "source": table.attrs["source"],
        "fingerprint": fingerprint(meta, intensities, landmarks),
        "crop_size": CROP_SIZE,
    }
    refs = [frame_ref(image) for image in images]
    detected = np.ones(len(table), bool) if landmarks is None else np.isnan(landmarks).any(axis=(1, 2))
    if any(ref is not None and needs for ref, needs in zip(refs, detected)):
        identity["redetect_every"] = redetect_every  # tracking changes detected landmarks
    share = np.ones(len(table), dtype=bool)
    if shard is not None:
        identity["shard"] = list(shard)
        share = _shard_rows(table, refs, *shard)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = read_info(out) if resume else None
    if info is None:
        info = create(out, identity, meta, intensities)
    else:
        check_resumable(out, info, identity)
    if not info["complete"]:
        job = _Job(images, refs, landmarks, landmarker, redetect_every)
        _fill(out, info, job, share, workers, progress, chunk)
    if progress:
        print(summary_text(out, info["summary"]))
    return out


def merge_caches(
    shards: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], progress: bool = True
) -> Path:
    """Join the folders of a sharded build into one cache.

    Args:
        shards: The ``n`` folders that ``build_cache(..., shard=(i, n))`` wrote for
            ``i = 0..n-1``, in any order; each must be complete.
        out_dir: The merged cache's folder (created; cache files in it are replaced).
        progress: Print the summary.

    Returns:
        ``out_dir``, holding the cache an unsharded :func:`build_cache` of the same manifest
        and arguments writes (same arrays, ``meta.csv`` and ``info.json``).

    Raises:
        CacheError: A folder is not a complete shard, the shards come from different
            builds, or some shard is missing or given twice.
    """
    folders = [Path(folder) for folder in shards]
    infos = []
    for folder in folders:
        info = read_info(folder)
        if info is None or "shard" not in info:
            raise CacheError(f"'{folder}' is not a shard of a crop cache (build_cache(shard=...))")
        if not info["complete"]:
            raise CacheError(f"shard '{folder}' is incomplete; run its build again to resume it")
        infos.append(info)
    identity = {key: value for key, value in infos[0].items() if key not in ("shard", "complete", "summary")}
    n = infos[0]["shard"][1]
    for folder, info in zip(folders, infos):
        other = {key: value for key, value in info.items() if key not in ("shard", "complete", "summary")}
        if other != identity or info["shard"][1] != n:
            raise CacheError(f"shard '{folder}' comes from another build than '{folders[0]}'")
    given = sorted(info["shard"][0] for info in infos)
    if given != list(range(n)):
        raise CacheError(f"merging needs shards 0..{n - 1} once each, got {given}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = read_meta(folders[0] / "meta.csv")
    intensities = np.load(folders[0] / "intensities.npy")
    info = create(out, identity, meta, intensities)
    shutil.copyfile(folders[0] / "meta.csv", out / "meta.csv")  # byte for byte
    merged = open_arrays(out, info, mode="r+")
    failures: dict[int, dict] = {}
    for folder, shard_info in zip(folders, infos):
        arrays = open_arrays(folder, shard_info, mode="r")
        rows = np.flatnonzero(arrays["done"])
        if np.any(merged["done"][rows]):
            raise CacheError(f"shard '{folder}' overlaps another shard")
        for start in range(0, len(rows), 256):
            block = rows[start : start + 256]
            for name in ("crops", "landmarks", "matrices", "valid"):
                merged[name][block] = arrays[name][block]
        merged["done"][rows] = True
        failures.update((f["row"], f) for f in shard_info["summary"]["failures"])
    if not merged["done"].all():
        raise CacheError(f"the shards leave {int(np.count_nonzero(~merged['done']))} rows unwritten")
    for array in merged.values():
        array.flush()
    _finish(out, info, failures, np.ones(info["n"], dtype=bool))
    if progress:
        print(summary_text(out, info["summary"]))
    return out


def _shard_rows(table: pd.DataFrame, refs: list[tuple[str, int] | None], i: int, n: int) -> np.ndarray:
    """``(N,)`` bool: the rows of shard ``i`` of ``n``. Units (a video, or the image rows of
    one ``subject``/``sequence``) are numbered in order of first appearance; unit ``u``
    goes to shard ``u % n``."""
    keys = [
        ("video", ref[0]) if ref is not None else ("images", subject, sequence)
        for ref, subject, sequence in zip(refs, table["subject"], table["sequence"])
    ]
    units = pd.factorize(pd.Series(keys, dtype=object))[0]
    return units % n == i


class _Job:
    """What registering rows needs besides the cache folder: ``N`` image references, their
    parsed video frames (``None`` for images), ``(N, 68, 2)`` manifest landmarks or ``None``,
    the face finder, and the re-detection interval of video tracking."""

    def __init__(
        self,
        images: list[str],
        refs: list[tuple[str, int] | None],
        landmarks: np.ndarray | None,
        landmarker: FaceLandmarker | None,
        redetect_every: int,
    ) -> None:
        self.images = images
        self.refs = refs
        self.landmarks = landmarks
        self.landmarker = landmarker
        self.redetect_every = redetect_every

    def tasks(self, todo: np.ndarray, chunk: int, workers: int) -> list[Task]:
        """Units of work over the ``(M,)`` rows ``todo``: each video's rows (in frame order)
        form one task, image rows are cut into chunks; tasks are ordered by first row."""
        videos: dict[str, list[int]] = {}
        plain = []
        for row in todo:
            ref = self.refs[row]
            if ref is None:
                plain.append(row)
            else:
                videos.setdefault(ref[0], []).append(row)
        plain = np.asarray(plain, dtype=np.int64)
        chunk = max(1, min(chunk, -(-len(plain) // workers)))  # every worker gets some rows
        groups = [plain[start : start + chunk] for start in range(0, len(plain), chunk)]
        groups += [
            np.asarray(sorted(rows, key=lambda r: (self.refs[r][1], r)), dtype=np.int64) for rows in videos.values()
        ]
        groups.sort(key=lambda rows: int(rows.min()))
        return [
            (rows, [self.images[i] for i in rows], None if self.landmarks is None else self.landmarks[rows])
            for rows in groups
        ]


def _fill(out: Path, info: dict, job: _Job, share: np.ndarray, workers: int, progress: bool, chunk: int) -> None:
    """Register the rows of ``share`` (``(N,)`` bool) that ``done.npy`` does not mark yet,
    then mark the cache complete."""
    done = np.load(out / "done.npy", mmap_mode="r+")
    failures = {f["row"]: f for f in info["summary"]["failures"] if done[f["row"]]}
    todo = np.flatnonzero(~done & share)
    tasks = job.tasks(todo, chunk, workers)
    results = closing(_run(iter(tasks), out, job, min(workers, max(len(tasks), 1))))
    total = int(np.count_nonzero(share))
    bar = tqdm(total=total, initial=total - len(todo), unit="row", disable=not progress)
    try:
        with results as finished, bar:
            for rows, chunk_failures in finished:
                failures.update((f["row"], f) for f in chunk_failures)
                info["summary"] = {"failures": [failures[row] for row in sorted(failures)]}
                write_info(out, info)  # before done.npy: a stale failure is dropped on resume
                done[rows] = True
                done.flush()
                bar.update(len(rows))
    except BaseException:
        print(
            f"build stopped: {int(np.count_nonzero(done))} of {total} rows are saved in "
            f"'{out}'; run build_cache again with the same arguments to resume",
            file=sys.stderr,
        )
        raise
    _finish(out, info, failures, share)


def _finish(out: Path, info: dict, failures: dict[int, dict], share: np.ndarray) -> None:
    """Write the final summary over the ``(N,)`` bool ``share`` rows and mark the cache
    complete."""
    valid = np.load(out / "valid.npy", mmap_mode="r")
    intensities = np.load(out / "intensities.npy", mmap_mode="r")
    counts = {kind: sum(f["kind"] == kind for f in failures.values()) for kind in FAILURE_KINDS}
    info["summary"] = {
        "rows": int(np.count_nonzero(share)),
        "kept": int(np.count_nonzero(valid[share])),
        **counts,
        "unlabelled": int(np.count_nonzero(np.isnan(intensities[share]).all(axis=1))),
        "failures": [failures[row] for row in sorted(failures)],
    }
    info["complete"] = True
    write_info(out, info)


def _run(tasks: Iterator[Task], out: Path, job: _Job, workers: int) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Process ``tasks`` here (``workers == 1``) or in worker processes; yield each finished
    chunk. At most two chunks per worker are queued, so an interruption leaves little to
    cancel; a worker that dies makes the build fail (``BrokenProcessPool``) rather than hang.
    Workers are spawned, not forked: a fork taken while PyTorch's, OpenMP's or OpenCV's
    threads hold a lock can deadlock the child."""
    if workers == 1:
        writer = _RowWriter(out, job.landmarker, job.redetect_every)
        for task in tasks:
            yield task[0], writer(task)
        return
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(out, job.landmarker, job.redetect_every),
    )
    try:
        pending: set[Future] = set()
        for task in tasks:
            pending.add(pool.submit(_work, task))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in finished)
        yield from (future.result() for future in as_completed(pending))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _largest(faces):
    """The face with the largest box area."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


class _RowWriter:
    """Registers rows and writes them into the cache's memory maps by row number.

    Each process has its own; processes write disjoint rows, so no locking is needed.
    """

    def __init__(self, out: Path, landmarker: FaceLandmarker | None, redetect_every: int) -> None:
        self._landmarker = landmarker
        self.redetect_every = redetect_every
        self.crops = np.load(out / "crops.npy", mmap_mode="r+")
        self.landmarks = np.load(out / "landmarks.npy", mmap_mode="r+")
        self.matrices = np.load(out / "matrices.npy", mmap_mode="r+")
        self.valid = np.load(out / "valid.npy", mmap_mode="r+")
        self._images = RowImages()

    def __call__(self, task: Task) -> list[dict]:
        """Register one unit of work (a chunk of image rows, or one video's rows in frame
        order) and flush it.

        Returns:
            The task's invalid rows: ``{"row", "image", "kind", "reason"}`` dicts.
        """
        rows, images, landmarks = task
        video = frame_ref(images[0])
        sources = self._images.video_frames(video[0], images) if video else map(self._images.read, images)
        tracker = FaceTracker(self.landmarker, redetect_every=self.redetect_every) if video else None
        failures = []
        for k, (row, image, source) in enumerate(zip(rows, images, sources)):
            given = None if landmarks is None or np.isnan(landmarks[k]).any() else landmarks[k]
            try:
                crop, points, matrix = self._register(source, given, tracker)
                valid = True
            except InvalidRow as invalid:
                failure = {"row": int(row), "image": image, "kind": invalid.kind}
                failures.append({**failure, "reason": invalid.reason})
                crop, points, matrix, valid = 0, np.nan, np.nan, False
            self.crops[row], self.landmarks[row], self.matrices[row] = crop, points, matrix
            self.valid[row] = valid
        for array in (self.crops, self.landmarks, self.matrices, self.valid):
            array.flush()
        return failures

    def _register(
        self, source: np.ndarray | InvalidRow, landmarks: np.ndarray | None, tracker: FaceTracker | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row's ``(256, 256, 3)`` crop, ``(68, 2)`` crop landmarks and ``(2, 3)``
        matrix, from its image and ``(68, 2)`` landmarks (``None``: the largest face, found
        by the detector, or in a video followed by ``tracker``).

        Raises:
            InvalidRow: Unreadable image, no face, or landmarks that cannot register.
        """
        if isinstance(source, InvalidRow):
            raise source
        image = source
        if landmarks is None:
            faces = tracker.update(image) if tracker is not None else self.landmarker(image)
            landmarks = _largest(faces).landmarks if faces else None
            if landmarks is None:
                raise InvalidRow("no_face", "no face detected")
        try:
            matrix = registration_matrix(landmarks)
        except ValueError as error:
            raise InvalidRow("bad_landmarks", str(error)) from None
        return warp_to_crop(image, matrix), transform_points(landmarks, matrix), matrix

    @property
    def landmarker(self) -> FaceLandmarker:
        """The face finder, built on first use (rows with manifest landmarks need none)."""
        if self._landmarker is None:  # the largest face is kept: no search for small ones beside it
            self._landmarker = FaceLandmarker(detector=DlibFaceDetector(small_faces=False))
        return self._landmarker


_WORKER: _RowWriter | None = None


def _start_worker(out: Path, landmarker: FaceLandmarker | None, redetect_every: int) -> None:
    """Worker initialiser: open the memory maps once, and exit should the parent die
    (a killed build must not leave workers writing into a cache that is rebuilt)."""
    global _WORKER
    _WORKER = _RowWriter(out, landmarker, redetect_every)
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _work(task: Task) -> tuple[np.ndarray, list[dict]]:
    assert _WORKER is not None, "_start_worker has not run in this process"
    return task[0], _WORKER(task)
