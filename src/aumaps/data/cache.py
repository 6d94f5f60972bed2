"""The preprocessed crop cache that training reads (``docs/data-format.md`` §2).

:func:`build_cache` registers every row of a manifest once — read the image, take the
manifest's landmarks or detect them, warp the face into the 256×256 crop of
:mod:`aumaps.align` — and writes the results into ``.npy`` files that training memory-maps
(:class:`CropCache`). Building is resumable: rows are processed in chunks, each chunk's
arrays are flushed before ``done.npy`` marks it, so an interrupted build (Ctrl-C, a killed
process) continues where it stopped when run again with the same arguments, and loses at most
the chunks that were in flight.

Rows whose image cannot be read, where no face is found, or whose landmarks cannot register
a face stay in the cache with ``valid = False`` (zero crop, NaN landmarks and matrix), so that
row ``i`` of the cache is always row ``i`` of the manifest; ``info.json`` lists them with the
reason.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..align import CROP_SIZE, registration_matrix, transform_points, warp_to_crop
from ..aus import column_name, resolve_aus
from ..images import ImageReadError, read_image
from ..landmarks import FaceLandmarker
from .manifest import (
    LANDMARK_COLUMNS,
    SPLITS,
    au_columns,
    landmarks_array,
    read_manifest,
    validate_manifest,
)

__all__ = ["CACHE_FORMAT", "CacheError", "CropCache", "build_cache"]

#: ``info.json``'s ``format`` entry; ``version`` changes when the layout does.
CACHE_FORMAT = "aumaps-crop-cache"
_VERSION = 1
#: The reasons a row can be invalid, as ``info.json`` counts them.
_FAILURE_KINDS = ("unreadable", "no_face", "bad_landmarks")
#: Entries of ``info.json`` that must match for a build to resume.
_IDENTITY = ("format", "version", "aus", "n", "source", "fingerprint", "crop_size")
#: A video frame reference, ``video.avi#123``.
_VIDEO_FRAME = re.compile(r"(.+)#(\d+)")
#: How many invalid rows the printed summary names.
_PRINTED = 10

#: A unit of work: ``(R,)`` row numbers, their ``R`` image paths, and ``(R, 68, 2)``
#: manifest landmarks (``None``, or NaN rows, where faces must be detected).
Task = tuple[np.ndarray, list[str], np.ndarray | None]


class CacheError(RuntimeError):
    """A cache folder that cannot be used as asked: incomplete, damaged, or built from
    other inputs."""


class _InvalidRow(Exception):
    """A row that cannot be registered; ``kind`` is one of :data:`_FAILURE_KINDS`."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _array_specs(n: int, n_aus: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of each array file of a cache of ``n`` rows and ``n_aus`` AUs."""
    return {
        "crops": ((n, CROP_SIZE, CROP_SIZE, 3), np.uint8),
        "landmarks": ((n, 68, 2), np.float32),
        "intensities": ((n, n_aus), np.float32),
        "matrices": ((n, 2, 3), np.float64),
        "done": ((n,), np.bool_),
        "valid": ((n,), np.bool_),
    }


def build_cache(
    manifest: str | os.PathLike[str] | pd.DataFrame,
    out_dir: str | os.PathLike[str],
    aus: str | int | Iterable[int | str],
    landmarker: FaceLandmarker | None = None,
    workers: int = 1,
    progress: bool = True,
    resume: bool = True,
    chunk: int = 256,
) -> Path:
    """Register every row of a manifest into a crop cache.

    Args:
        manifest: A manifest CSV file (read with :func:`~aumaps.data.manifest.read_manifest`)
            or a table (checked with :func:`~aumaps.data.manifest.validate_manifest`).
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
        chunk: Rows per unit of work (fewer when there are too few rows to give each worker
            one); an interruption loses at most the chunks in flight.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`, holding a complete cache.

    Raises:
        CacheError: ``resume`` is true and ``out_dir`` holds a cache built from another
            manifest, AU list or row count, or its files are damaged.
        aumaps.data.manifest.ManifestError: The manifest is invalid.
        NotImplementedError: The manifest names video frames (``video.avi#123``).
        KeyboardInterrupt: The build was interrupted; run it again to resume.
    """
    aus = resolve_aus(aus)
    if workers < 1 or chunk < 1:
        raise ValueError(f"workers and chunk must be at least 1, got {workers} and {chunk}")
    if isinstance(manifest, pd.DataFrame):
        table = validate_manifest(manifest, aus)
    else:
        table = read_manifest(manifest, aus)
    _refuse_video_frames(table)
    images = table["image"].tolist()
    landmarks = landmarks_array(table)
    intensities = table[[column_name(a) for a in aus]].to_numpy(dtype=np.float32)
    meta = _meta(table)
    identity = {
        "format": CACHE_FORMAT,
        "version": _VERSION,
        "aus": list(aus),
        "n": len(table),
        "source": table.attrs["source"],
        "fingerprint": _fingerprint(meta, intensities, landmarks),
        "crop_size": CROP_SIZE,
    }

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = _read_info(out) if resume else None
    if info is None:
        info = _create(out, identity, meta, intensities)
    else:
        _check_resumable(out, info, identity)
    if not info["complete"]:
        _fill(out, info, images, landmarks, landmarker, workers, progress, chunk)
    if progress:
        print(_summary_text(out, info["summary"]))
    return out


class CropCache:
    """A complete crop cache, memory-mapped read-only.

    Args:
        path: The folder :func:`build_cache` wrote.

    Attributes:
        path: The folder.
        info: ``info.json`` as a dict.
        aus: AU numbers, the column order of :attr:`intensities`.
        crops: ``(N, 256, 256, 3)`` uint8 RGB registered crops (zero where invalid).
        landmarks: ``(N, 68, 2)`` float32 landmarks in crop pixels (NaN where invalid).
        intensities: ``(N, A)`` float32, NaN = not coded.
        matrices: ``(N, 2, 3)`` float64 image→crop affines (NaN where invalid).
        valid: ``(N,)`` bool, False where the row has no usable face.
        meta: ``N`` rows of ``image, subject, sequence, frame, split`` and the manifest's
            extra columns (text; ``frame`` int64; ``split`` empty when the manifest had
            none).

    Raises:
        FileNotFoundError: No ``info.json`` in ``path``.
        CacheError: The build has not finished ("run build_cache again to resume"), or
            the files do not match ``info.json``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        info = _read_info(self.path)
        if info is None:
            raise FileNotFoundError(f"no crop cache in '{self.path}' (info.json is missing)")
        if not info["complete"]:
            done = self.path / "done.npy"
            written = np.count_nonzero(np.load(done, mmap_mode="r")) if done.is_file() else 0
            raise CacheError(
                f"the crop cache '{self.path}' is incomplete ({written} of {info['n']} rows "
                f"written); run build_cache again to resume it"
            )
        self.info: dict = info
        self.aus: tuple[int, ...] = tuple(info["aus"])
        arrays = _open_arrays(self.path, info, mode="r")
        self.crops: np.ndarray = arrays["crops"]
        self.landmarks: np.ndarray = arrays["landmarks"]
        self.intensities: np.ndarray = arrays["intensities"]
        self.matrices: np.ndarray = arrays["matrices"]
        self.valid: np.ndarray = arrays["valid"]
        self.meta: pd.DataFrame = _read_meta(self.path / "meta.csv")
        if len(self.meta) != len(self):
            raise CacheError(f"'{self.path}': meta.csv has {len(self.meta)} rows, not {len(self)}")

    def __len__(self) -> int:
        return int(self.info["n"])

    def indices(self, split: str | None = None, valid_only: bool = True) -> np.ndarray:
        """Row numbers of the samples to use.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``; ``None`` for all rows.
            valid_only: Leave out rows without a usable face.

        Returns:
            ``(M,)`` int64 ascending row numbers.

        Raises:
            ValueError: Unknown ``split``, or the manifest had no ``split`` column.
        """
        keep = self.valid.copy() if valid_only else np.ones(len(self), dtype=bool)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
            splits = self.meta["split"].to_numpy()
            if not np.any(splits != ""):
                raise ValueError(
                    f"the manifest of '{self.path}' had no split column; give it one "
                    f"(aumaps.data.manifest.assign_splits) and build the cache again"
                )
            keep &= splits == split
        return np.flatnonzero(keep).astype(np.int64)


def _refuse_video_frames(table: pd.DataFrame) -> None:
    """Raise for rows that name a video frame, which the cache cannot read yet."""
    for image in table["image"]:
        match = _VIDEO_FRAME.fullmatch(image)
        if match and not os.path.exists(image):
            raise NotImplementedError(
                f"'{image}' names frame {match.group(2)} of a video; build_cache reads image "
                f"files only for now: extract the frames to images and list those"
            )


def _meta(table: pd.DataFrame) -> pd.DataFrame:
    """``meta.csv``'s columns: the descriptive ones, then the extras (no AUs, no landmarks)."""
    dropped = au_columns(table.columns) + [c for c in LANDMARK_COLUMNS if c in table]
    meta = table.drop(columns=dropped)
    if "split" not in meta:
        meta.insert(list(meta.columns).index("frame") + 1, "split", "")
    return meta.reset_index(drop=True)


def _read_meta(path: Path) -> pd.DataFrame:
    meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    meta["frame"] = meta["frame"].astype(np.int64)
    return meta


def _fingerprint(meta: pd.DataFrame, intensities: np.ndarray, landmarks: np.ndarray | None) -> str:
    """SHA-256 of everything a cache is built from, to tell a resumable build from another."""
    digest = hashlib.sha256(meta.to_csv(index=False).encode())
    digest.update(np.ascontiguousarray(intensities).tobytes())
    if landmarks is not None:
        digest.update(np.ascontiguousarray(landmarks).tobytes())
    return digest.hexdigest()


def _read_info(folder: Path) -> dict | None:
    path = folder / "info.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        message = f"'{path}' is not valid JSON ({error}); rebuild with resume=False"
        raise CacheError(message) from None


def _write_info(folder: Path, info: dict) -> None:
    """Replace ``info.json`` atomically, so that a kill never leaves half a file."""
    temporary = folder / "info.json.tmp"
    temporary.write_text(json.dumps(info, indent=1))
    os.replace(temporary, folder / "info.json")


def _create(out: Path, identity: dict, meta: pd.DataFrame, intensities: np.ndarray) -> dict:
    """Lay out an empty cache; ``info.json`` is written last, so it marks a usable layout."""
    (out / "info.json").unlink(missing_ok=True)
    for name, (shape, dtype) in _array_specs(len(meta), intensities.shape[1]).items():
        array = np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        if name == "intensities":
            array[:] = intensities
        array.flush()
        del array
    meta.to_csv(out / "meta.csv", index=False)
    info = {**identity, "complete": False, "summary": {"failures": []}}
    _write_info(out, info)
    return info


def _check_resumable(out: Path, info: dict, identity: dict) -> None:
    differ = [key for key in _IDENTITY if info.get(key) != identity[key]]
    if differ:
        details = "; ".join(
            f"{key}: {_short(info.get(key))} there, {_short(identity[key])} now" for key in differ
        )
        raise CacheError(
            f"'{out}' holds a crop cache built from other inputs ({details}); pass "
            f"resume=False to rebuild it, or choose another folder"
        )
    _open_arrays(out, info, mode="r")  # shapes and dtypes are checked on opening


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:12] + "…"


def _open_arrays(folder: Path, info: dict, mode: str) -> dict[str, np.ndarray]:
    """Memory-map the cache's arrays, checking them against ``info``."""
    arrays = {}
    for name, (shape, dtype) in _array_specs(info["n"], len(info["aus"])).items():
        path = folder / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode=mode)
        except (OSError, ValueError) as error:
            raise CacheError(f"cannot open '{path}' ({error}); rebuild with resume=False") from None
        if array.shape != shape or array.dtype != dtype:
            raise CacheError(
                f"'{path}' holds {array.dtype} {array.shape}, expected {np.dtype(dtype)} "
                f"{shape}; rebuild with resume=False"
            )
        arrays[name] = array
    return arrays


def _fill(
    out: Path,
    info: dict,
    images: list[str],
    landmarks: np.ndarray | None,
    landmarker: FaceLandmarker | None,
    workers: int,
    progress: bool,
    chunk: int,
) -> None:
    """Register the rows ``done.npy`` does not mark yet, then mark the cache complete."""
    done = np.load(out / "done.npy", mmap_mode="r+")
    failures = {f["row"]: f for f in info["summary"]["failures"] if done[f["row"]]}
    todo = np.flatnonzero(~done)
    chunk = max(1, min(chunk, -(-len(todo) // workers)))  # every worker gets some rows
    n_chunks = -(-len(todo) // chunk)
    tasks = (
        (rows, [images[i] for i in rows], None if landmarks is None else landmarks[rows])
        for rows in (todo[start : start + chunk] for start in range(0, len(todo), chunk))
    )
    results = closing(_run(tasks, out, landmarker, min(workers, max(n_chunks, 1))))
    bar = tqdm(total=len(done), initial=len(done) - len(todo), unit="row", disable=not progress)
    try:
        with results as finished, bar:
            for rows, chunk_failures in finished:
                failures.update((f["row"], f) for f in chunk_failures)
                info["summary"] = {"failures": [failures[row] for row in sorted(failures)]}
                _write_info(out, info)  # before done.npy: a stale failure is dropped on resume
                done[rows] = True
                done.flush()
                bar.update(len(rows))
    except BaseException:
        print(
            f"build stopped: {int(np.count_nonzero(done))} of {len(done)} rows are saved in "
            f"'{out}'; run build_cache again with the same arguments to resume",
            file=sys.stderr,
        )
        raise
    valid = np.load(out / "valid.npy", mmap_mode="r")
    intensities = np.load(out / "intensities.npy", mmap_mode="r")
    counts = {kind: sum(f["kind"] == kind for f in failures.values()) for kind in _FAILURE_KINDS}
    info["summary"] = {
        "rows": len(done),
        "kept": int(np.count_nonzero(valid)),
        **counts,
        "unlabelled": int(np.count_nonzero(np.isnan(intensities).all(axis=1))),
        "failures": [failures[row] for row in sorted(failures)],
    }
    info["complete"] = True
    _write_info(out, info)


def _run(
    tasks: Iterator[Task], out: Path, landmarker: FaceLandmarker | None, workers: int
) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Process ``tasks`` here (``workers == 1``) or in worker processes; yield each finished
    chunk. At most two chunks per worker are queued, so an interruption leaves little to
    cancel; a worker that dies makes the build fail (``BrokenProcessPool``) rather than hang.
    Workers are spawned, not forked: a fork taken while PyTorch's, OpenMP's or OpenCV's
    threads hold a lock can deadlock the child."""
    if workers == 1:
        writer = _RowWriter(out, landmarker)
        for task in tasks:
            yield task[0], writer(task)
        return
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(out, landmarker),
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


class _RowWriter:
    """Registers rows and writes them into the cache's memory maps by row number.

    Each process has its own; processes write disjoint rows, so no locking is needed.
    """

    def __init__(self, out: Path, landmarker: FaceLandmarker | None) -> None:
        self._landmarker = landmarker
        self.crops = np.load(out / "crops.npy", mmap_mode="r+")
        self.landmarks = np.load(out / "landmarks.npy", mmap_mode="r+")
        self.matrices = np.load(out / "matrices.npy", mmap_mode="r+")
        self.valid = np.load(out / "valid.npy", mmap_mode="r+")

    def __call__(self, task: Task) -> list[dict]:
        """Register one chunk and flush it.

        Returns:
            The chunk's invalid rows: ``{"row", "image", "kind", "reason"}`` dicts.
        """
        rows, images, landmarks = task
        failures = []
        for k, (row, image) in enumerate(zip(rows, images)):
            given = None if landmarks is None or np.isnan(landmarks[k]).any() else landmarks[k]
            try:
                crop, points, matrix = self._register(image, given)
                valid = True
            except _InvalidRow as invalid:
                failure = {"row": int(row), "image": image, "kind": invalid.kind}
                failures.append({**failure, "reason": invalid.reason})
                crop, points, matrix, valid = 0, np.nan, np.nan, False
            self.crops[row], self.landmarks[row], self.matrices[row] = crop, points, matrix
            self.valid[row] = valid
        for array in (self.crops, self.landmarks, self.matrices, self.valid):
            array.flush()
        return failures

    def _register(
        self, image_path: str, landmarks: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row's ``(256, 256, 3)`` crop, ``(68, 2)`` crop landmarks and ``(2, 3)``
        matrix, from its image and ``(68, 2)`` landmarks (``None``: detect the largest face).

        Raises:
            _InvalidRow: Unreadable image, no face, or landmarks that cannot register.
        """
        try:
            image = read_image(image_path)
        except ImageReadError as error:
            raise _InvalidRow("unreadable", error.reason) from None
        if landmarks is None:
            faces = self.landmarker(image)
            if not faces:
                raise _InvalidRow("no_face", "no face detected")
            largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            landmarks = largest.landmarks
        try:
            matrix = registration_matrix(landmarks)
        except ValueError as error:
            raise _InvalidRow("bad_landmarks", str(error)) from None
        return warp_to_crop(image, matrix), transform_points(landmarks, matrix), matrix

    @property
    def landmarker(self) -> FaceLandmarker:
        """The face finder, built on first use (rows with manifest landmarks need none)."""
        if self._landmarker is None:
            self._landmarker = FaceLandmarker()
        return self._landmarker


_WORKER: _RowWriter | None = None


def _start_worker(out: Path, landmarker: FaceLandmarker | None) -> None:
    """Worker initialiser: open the memory maps once, and exit should the parent die
    (a killed build must not leave workers writing into a cache that is rebuilt)."""
    global _WORKER
    _WORKER = _RowWriter(out, landmarker)
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _work(task: Task) -> tuple[np.ndarray, list[dict]]:
    assert _WORKER is not None, "_start_worker has not run in this process"
    return task[0], _WORKER(task)


def _summary_text(out: Path, summary: dict) -> str:
    """The printed account of a finished build."""
    lines = [
        f"crop cache '{out}': {summary['kept']} of {summary['rows']} rows kept; "
        f"{summary['no_face']} without a face, {summary['unreadable']} with unreadable images, "
        f"{summary['bad_landmarks']} with unusable landmarks; "
        f"{summary['unlabelled']} without labels (every AU empty)"
    ]
    failures = summary["failures"]
    lines += [f"  row {f['row']}: {f['image']}: {f['reason']}" for f in failures[:_PRINTED]]
    if len(failures) > _PRINTED:
        lines.append(f"  ... and {len(failures) - _PRINTED} more, listed in {out / 'info.json'}")
    return "\n".join(lines)
