"""Data-set writer: :func:`make_dataset` renders subjects (in parallel worker processes if
asked) and writes PNG images and a manifest in the format of ``docs/data-format.md``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...aus import column_name, resolve_aus
from ...results import write_table
from ..manifest import LANDMARK_COLUMNS, assign_splits
from .canvas import CANVAS
from .geometry import _AU_ORDER, REVISION, check_revision
from .population import make_identity
from .rendering import render_sequence
from .sampling import intensity_curves, sample_sides


@dataclass(frozen=True)
class _SubjectJob:
    index: int
    seed: int
    frames: int
    sequence_length: int
    aus: tuple[int, ...]
    size: int
    procedural: float
    out_dir: str
    revision: int


def _render_subject(job: _SubjectJob) -> list[dict[str, object]]:
    """Render and write every frame of one subject; its manifest rows (without split)."""
    identity = make_identity(job.index, job.seed, job.procedural)
    folder = Path(job.out_dir, "images", identity.subject)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    starts = range(0, job.frames, job.sequence_length)
    for q, start in enumerate(starts):
        length = min(job.sequence_length, job.frames - start)
        rng = np.random.default_rng(np.random.SeedSequence([job.seed, job.index, q, 0x5E]))
        curves = intensity_curves(rng, length, job.aus)
        sides = sample_sides(rng)
        sequence = f"q{q:02d}"
        frames = render_sequence(identity, curves, rng, True, job.size, sides, job.revision)
        for frame, (image, lms) in enumerate(frames):
            name = f"{sequence}_{frame:05d}.png"
            _, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            (folder / name).write_bytes(data.tobytes())
            row: dict[str, object] = {
                "image": f"images/{identity.subject}/{name}",
                "subject": identity.subject,
                "sequence": sequence,
                "frame": frame,
            }
            row.update({column_name(au): curves[au][frame] for au in _AU_ORDER})
            lms = np.round(lms, 3)
            row.update({f"x_{i}": lms[i, 0] for i in range(68)})
            row.update({f"y_{i}": lms[i, 1] for i in range(68)})
            row["source"] = identity.source
            row["revision"] = job.revision
            rows.append(row)
    return rows


def _run(jobs: list[_SubjectJob], workers: int) -> Iterator[list[dict[str, object]]]:
    """The rows of each job, in order, rendered here or by ``workers`` processes."""
    if workers <= 1:
        yield from map(_render_subject, jobs)
        return
    # "spawn", not fork: forking a process that already runs PyTorch/OpenMP threads can
    # deadlock the children; each worker renders with one OpenCV thread
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=cv2.setNumThreads, initargs=(1,)
    ) as pool:
        yield from pool.map(_render_subject, jobs)


def make_dataset(
    out_dir: str | os.PathLike[str],
    n_subjects: int = 60,
    frames_per_subject: int = 50,
    aus: str | Iterable[int] = "all",
    seed: int = 0,
    size: int = CANVAS,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    workers: int = 1,
    progress: bool = True,
    sequence_length: int = 10,
    procedural: float = 0.5,
    first_subject: int = 0,
    revision: int = REVISION,
) -> Path:
    """Write a synthetic AU data set: PNG images and a manifest (``docs/data-format.md``).

    Subject ``i`` is :func:`make_identity` ``(i, seed, procedural)``; its frames form
    sequences of ``sequence_length`` frames whose intensities follow smooth curves
    (:func:`intensity_curves`) under one scene with a drifting head
    (:func:`render_sequence`). Every random choice derives from ``(seed, subject,
    sequence)``, so the same arguments give byte-identical files whatever ``workers``.

    Args:
        out_dir: Folder to write into (created); images go to
            ``images/<subject>/<sequence>_<frame:05d>.png``.
        n_subjects: Number of identities (at least 3 for three non-empty splits).
        frames_per_subject: Frames per subject.
        aus: AUs that may be active; the manifest has a column for every catalogue AU
            (inactive ones are 0), so one data set serves any AU set.
        seed: Seed of everything.
        size: Side of the square images.
        splits: Shares of subjects in train, val and test (subject-disjoint, by
            :func:`aumaps.data.manifest.assign_splits` with ``seed``).
        workers: Processes rendering subjects in parallel.
        progress: Show a progress bar.
        sequence_length: Frames per sequence.
        procedural: Share of drawn identities (the rest vary the real photos).
        first_subject: Index of the first identity: subjects ``first_subject ..
            first_subject + n_subjects - 1``. A set made with the same ``seed`` and
            ``first_subject`` past another set's last subject holds new identities with new
            names, so the two can be trained on together (``aumaps prepare manifest A B``).
        revision: The generator's revision (:data:`~.geometry.REVISION`, the latest): an older
            one renders a data set made with it again, byte for byte.

    Returns:
        Path of ``manifest.csv``: ``image, subject, sequence, frame, split``, ``AUxx_r`` for
        every catalogue AU, ``x_0..x_67, y_0..y_67`` (exact landmarks in image pixels) and
        ``source`` (what the identity was made from) and ``revision`` (the generator's).
    """
    if n_subjects < 1 or frames_per_subject < 1 or sequence_length < 1:
        raise ValueError("n_subjects, frames_per_subject and sequence_length must be at least 1")
    if first_subject < 0:
        raise ValueError(f"first_subject must be at least 0, got {first_subject}")
    if n_subjects < np.count_nonzero(splits):
        raise ValueError(f"{n_subjects} subject(s) cannot fill the splits {tuple(splits)}")
    revision = check_revision(revision)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    allowed = resolve_aus(aus)
    jobs = [
        _SubjectJob(i, seed, frames_per_subject, sequence_length, allowed, size, procedural, str(out), revision)
        for i in range(first_subject, first_subject + n_subjects)
    ]
    rows: list[dict[str, object]] = []
    total = n_subjects * frames_per_subject
    with tqdm(total=total, unit="img", disable=not progress, desc="synth") as bar:
        for subject_rows in _run(jobs, workers):
            rows.extend(subject_rows)
            bar.update(len(subject_rows))
    table = assign_splits(pd.DataFrame(rows), splits, seed)
    columns = [
        "image",
        "subject",
        "sequence",
        "frame",
        "split",
        *(column_name(a) for a in _AU_ORDER),
        *LANDMARK_COLUMNS,
        "source",
        "revision",
    ]
    path = out / "manifest.csv"
    write_table(table[columns], path, float_format="%.3f", lineterminator="\n")  # formula-like text gets a '
    return path
