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

**Video frames** (``video.avi#123``, 0-based) are read by decoding each video once, from its
start, in one unit of work: the frames the manifest names are registered as they go by.
Where a face must be detected, it is tracked from the previous frame instead
(:class:`_Tracker`): the landmark predictor runs on a box placed from the previous
landmarks, and the detector runs only on the video's first frame, every ``redetect_every``
frames, and whenever the tracked landmarks move or change size implausibly or leave the
image. A video is processed whole, so resuming or sharding never changes its tracking.
**Zip members** (``F001.zip#F001/T1/0001.jpg``) are read from the archive without
extracting it.

**Shards** (``shard=(i, n)``) split a build between independent jobs, by whole videos and
whole image sequences (``subject``, ``sequence``): each writes its share into its own folder,
and :func:`merge_caches` joins the shards into the cache an unsharded build writes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..align import CROP_SIZE, registration_matrix, transform_points, warp_to_crop
from ..aus import column_name, resolve_aus
from ..images import ImageReadError, read_image
from ..landmarks import DlibFaceDetector, Face, FaceLandmarker, landmark_extent
from .manifest import (
    LANDMARK_COLUMNS,
    SPLITS,
    au_columns,
    landmarks_array,
    read_manifest,
    read_manifests,
    validate_manifest,
)

__all__ = ["CACHE_FORMAT", "CacheError", "CropCache", "build_cache", "merge_caches"]

#: ``info.json``'s ``format`` entry; ``version`` changes when the layout does.
CACHE_FORMAT = "aumaps-crop-cache"
_VERSION = 1
#: The reasons a row can be invalid, as ``info.json`` counts them.
_FAILURE_KINDS = ("unreadable", "no_face", "bad_landmarks")
#: A video frame reference, ``video.avi#123``.
_VIDEO_FRAME = re.compile(r"(.+)#(\d+)")
#: A member of a zip archive, ``F001.zip#F001/T1/0001.jpg``.
_ZIP_MEMBER = re.compile(r"(.+?\.zip)#(.+)", re.IGNORECASE)
#: A split selector over a ``meta.csv`` column: ``fold=1``, ``fold!=1``.
_SELECTOR = re.compile(r"(\w+)(!?=)(.*)")
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
            f"workers, chunk and redetect_every must be at least 1, got {workers}, {chunk} "
            f"and {redetect_every}"
        )
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if isinstance(manifest, pd.DataFrame):
        table = validate_manifest(manifest, aus)
    elif isinstance(manifest, (list, tuple)):
        table = validate_manifest(read_manifests(manifest), aus)
    else:
        table = read_manifest(manifest, aus)
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
    refs = [_frame_ref(image) for image in images]
    detected = np.ones(len(table), bool) if landmarks is None else np.isnan(landmarks).any(axis=(1, 2))
    if any(ref is not None and needs for ref, needs in zip(refs, detected)):
        identity["redetect_every"] = redetect_every  # tracking changes detected landmarks
    share = np.ones(len(table), dtype=bool)
    if shard is not None:
        identity["shard"] = list(shard)
        share = _shard_rows(table, refs, *shard)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = _read_info(out) if resume else None
    if info is None:
        info = _create(out, identity, meta, intensities)
    else:
        _check_resumable(out, info, identity)
    if not info["complete"]:
        job = _Job(images, refs, landmarks, landmarker, redetect_every)
        _fill(out, info, job, share, workers, progress, chunk)
    if progress:
        print(_summary_text(out, info["summary"]))
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
        info = _read_info(folder)
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
    meta = _read_meta(folders[0] / "meta.csv")
    intensities = np.load(folders[0] / "intensities.npy")
    info = _create(out, identity, meta, intensities)
    shutil.copyfile(folders[0] / "meta.csv", out / "meta.csv")  # byte for byte
    merged = _open_arrays(out, info, mode="r+")
    failures: dict[int, dict] = {}
    for folder, shard_info in zip(folders, infos):
        arrays = _open_arrays(folder, shard_info, mode="r")
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
        if "shard" in info:
            i, n = info["shard"]
            raise CacheError(
                f"'{self.path}' is shard {i} of {n} of a crop cache; join the shards with "
                f"merge_caches (aumaps prepare merge) and open the result"
            )
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
            split: ``"train"``, ``"val"`` or ``"test"``; ``None`` for all rows; or a
                selector over a ``meta.csv`` column, ``COLUMN=VALUE`` or ``COLUMN!=VALUE``
                (e.g. ``fold=1`` and ``fold!=1`` for the test and training subjects of a
                k-fold protocol's first fold).
            valid_only: Leave out rows without a usable face.

        Returns:
            ``(M,)`` int64 ascending row numbers.

        Raises:
            ValueError: Unknown ``split`` or selector column, or the manifest had no
                ``split`` column.
        """
        keep = self.valid.copy() if valid_only else np.ones(len(self), dtype=bool)
        selector = _SELECTOR.fullmatch(split) if split is not None else None
        if selector is not None:
            column, operator, value = selector.groups()
            if column not in self.meta:
                raise ValueError(
                    f"no column {column!r} in the cache '{self.path}' to select {split!r} by; "
                    f"its columns: {', '.join(self.meta.columns)}"
                )
            chosen = (self.meta[column].astype(str) == value).to_numpy()
            keep &= chosen if operator == "=" else ~chosen
        elif split is not None:
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


def _frame_ref(image: str) -> tuple[str, int] | None:
    """``(video path, 0-based frame)`` of a ``video.avi#123`` reference; ``None`` for an
    image (or a zip member, or a file whose name happens to end in ``#123``)."""
    match = _VIDEO_FRAME.fullmatch(image)
    if match is None or os.path.exists(image):
        return None
    return match.group(1), int(match.group(2))


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
    keys = list(identity) + [key for key in ("redetect_every", "shard") if key in info and key not in identity]
    differ = [key for key in keys if info.get(key) != identity.get(key)]
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
            np.asarray(sorted(rows, key=lambda r: (self.refs[r][1], r)), dtype=np.int64)
            for rows in videos.values()
        ]
        groups.sort(key=lambda rows: int(rows.min()))
        return [
            (rows, [self.images[i] for i in rows], None if self.landmarks is None else self.landmarks[rows])
            for rows in groups
        ]


def _fill(
    out: Path, info: dict, job: _Job, share: np.ndarray, workers: int, progress: bool, chunk: int
) -> None:
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
                _write_info(out, info)  # before done.npy: a stale failure is dropped on resume
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
    counts = {kind: sum(f["kind"] == kind for f in failures.values()) for kind in _FAILURE_KINDS}
    info["summary"] = {
        "rows": int(np.count_nonzero(share)),
        "kept": int(np.count_nonzero(valid[share])),
        **counts,
        "unlabelled": int(np.count_nonzero(np.isnan(intensities[share]).all(axis=1))),
        "failures": [failures[row] for row in sorted(failures)],
    }
    info["complete"] = True
    _write_info(out, info)


def _run(
    tasks: Iterator[Task], out: Path, job: _Job, workers: int
) -> Iterator[tuple[np.ndarray, list[dict]]]:
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


def _largest(faces: list[Face]) -> Face:
    """The face with the largest box area."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


class _Tracker:
    """The largest face's landmarks frame after frame in one video, detecting only when
    needed.

    At each detection the detector's box is recorded relative to the landmarks' bounding
    box (centre and size); on the next frames the landmark predictor runs on a box placed
    the same way around the previous landmarks. Tracking is lost, and the detector runs,
    when the new landmarks' centre moves more than ``max_shift`` face sizes, their size
    changes by more than ``max_scale`` (relative), they leave the image by more than a
    tenth of a face, or ``redetect_every`` frames have passed since the last detection.

    Attributes:
        detections: How many frames the detector has run on.
    """

    def __init__(
        self,
        landmarker: FaceLandmarker,
        redetect_every: int,
        max_shift: float = 0.3,
        max_scale: float = 0.2,
    ) -> None:
        self.landmarker = landmarker
        self.redetect_every = redetect_every
        self.max_shift = max_shift
        self.max_scale = max_scale
        self.detections = 0
        self._last: np.ndarray | None = None
        self._box_model = np.zeros(4)  # detector box minus landmark centre, in face sizes
        self._since = 0

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """``(68, 2)`` landmarks of the face in ``image`` (``H×W×3`` uint8 RGB), or
        ``None`` when the detector finds none."""
        if self._last is not None and self._since < self.redetect_every:
            centre, size = landmark_extent(self._last)
            box = np.tile(centre, 2) + self._box_model * size
            points = self.landmarker.landmarks_for_boxes(image, box[None])[0]
            if self._plausible(points, centre, size, image.shape):
                self._last = points
                self._since += 1
                return points
        self.detections += 1
        faces = self.landmarker(image)
        if not faces:
            self._last = None
            return None
        face = _largest(faces)
        centre, size = landmark_extent(face.landmarks)
        self._box_model = (face.box - np.tile(centre, 2)) / max(size, 1e-6)
        self._last = face.landmarks
        self._since = 1
        return face.landmarks

    def _plausible(
        self, points: np.ndarray, centre: np.ndarray, size: float, shape: tuple[int, ...]
    ) -> bool:
        new_centre, new_size = landmark_extent(points)
        margin = 0.1 * new_size
        inside = bool(
            np.all(points >= -margin) and np.all(points[:, 0] <= shape[1] - 1 + margin)
            and np.all(points[:, 1] <= shape[0] - 1 + margin)
        )
        moved = float(np.linalg.norm(new_centre - centre)) / max(size, 1e-6)
        return inside and moved <= self.max_shift and abs(new_size / max(size, 1e-6) - 1) <= self.max_scale


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
        self._archives: dict[str, zipfile.ZipFile] = {}

    def __call__(self, task: Task) -> list[dict]:
        """Register one unit of work (a chunk of image rows, or one video's rows in frame
        order) and flush it.

        Returns:
            The task's invalid rows: ``{"row", "image", "kind", "reason"}`` dicts.
        """
        rows, images, landmarks = task
        video = _frame_ref(images[0])
        sources = self._video_frames(video[0], images) if video else map(self._read, images)
        tracker = _Tracker(self.landmarker, self.redetect_every) if video else None
        failures = []
        for k, (row, image, source) in enumerate(zip(rows, images, sources)):
            given = None if landmarks is None or np.isnan(landmarks[k]).any() else landmarks[k]
            try:
                crop, points, matrix = self._register(source, given, tracker)
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

    def _read(self, image: str) -> np.ndarray | _InvalidRow:
        """An image file or zip member as ``H×W×3`` uint8 RGB, or why it cannot be read."""
        member = _ZIP_MEMBER.fullmatch(image)
        if member is None or os.path.exists(image):
            try:
                return read_image(image)
            except ImageReadError as error:
                return _InvalidRow("unreadable", error.reason)
        archive, name = member.groups()
        try:
            if archive not in self._archives:
                self._archives[archive] = zipfile.ZipFile(archive)
            data = self._archives[archive].read(name)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            return _InvalidRow("unreadable", f"cannot read '{name}' from '{archive}': {error}")
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            return _InvalidRow("unreadable", f"'{name}' in '{archive}' is not a decodable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    @staticmethod
    def _video_frames(path: str, images: list[str]) -> Iterator[np.ndarray | _InvalidRow]:
        """The frames ``images`` name (``path#index``, in ascending order), decoded in one
        pass from the start of the video; frames that cannot be decoded are
        :class:`_InvalidRow` values."""
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                problem = "missing" if not os.path.exists(path) else "not a readable video"
                for _ in images:
                    yield _InvalidRow("unreadable", f"cannot open video '{path}' ({problem})")
                return
            position = -1  # the last frame decoded or skipped
            last_index, frame = -1, None
            for image in images:
                index = _frame_ref(image)[1]
                if index != last_index:
                    while position < index - 1 and capture.grab():
                        position += 1
                    frame = None
                    if position == index - 1:
                        ok, bgr = capture.read()
                        position, frame = (index, bgr) if ok else (position, None)
                    last_index = index
                if frame is not None:
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                else:
                    yield _InvalidRow(
                        "unreadable", f"frame {index} cannot be decoded (the video ends before it)"
                    )
        finally:
            capture.release()

    def _register(
        self, source: np.ndarray | _InvalidRow, landmarks: np.ndarray | None, tracker: _Tracker | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row's ``(256, 256, 3)`` crop, ``(68, 2)`` crop landmarks and ``(2, 3)``
        matrix, from its image and ``(68, 2)`` landmarks (``None``: detect the largest face,
        or track it with ``tracker`` in a video).

        Raises:
            _InvalidRow: Unreadable image, no face, or landmarks that cannot register.
        """
        if isinstance(source, _InvalidRow):
            raise source
        image = source
        if landmarks is None:
            if tracker is not None:
                landmarks = tracker(image)
            else:
                faces = self.landmarker(image)
                landmarks = _largest(faces).landmarks if faces else None
            if landmarks is None:
                raise _InvalidRow("no_face", "no face detected")
        try:
            matrix = registration_matrix(landmarks)
        except ValueError as error:
            raise _InvalidRow("bad_landmarks", str(error)) from None
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
