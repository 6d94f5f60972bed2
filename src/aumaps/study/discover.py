"""What a study holds: its videos and folders of images, each with the CSV it gets, and the
share of them one job takes.

A study is one or several folder trees (and/or files). :func:`discover_study` lists its
**items**, sorted by their path relative to the study, each with the CSV it gets under the
output folder, mirroring the tree:

* a video ``a/b/clip.mp4`` (by suffix, :data:`aumaps.video.VIDEO_EXTENSIONS`) →
  ``a/b/clip.csv``;
* the images directly inside a folder ``a/b/`` (:data:`aumaps.images.IMAGE_EXTENSIONS`) →
  one ``a/b/images.csv`` (one row per image and face, with the ``file`` column);
* with ``sequence=True``, a folder of frames ``a/b/`` is one video instead → ``a/b.csv``
  (the study folder itself → ``NAME.csv``).

Where two items of one folder would get the same CSV (``clip.mp4`` and ``clip.avi``, or a
video named ``images.mp4`` beside images), those videos keep their suffix:
``clip.mp4.csv``, ``clip.avi.csv``. Hidden files and folders (``.name``) and the output
folder, should it lie inside the study, are not searched.

:func:`select_shard` gives shard ``i`` of ``n`` (items ``i, i + n, i + 2n, …`` of the sorted
list), so ``n`` jobs that see the same tree cover every item exactly once;
:func:`launcher_shard` reads the share a ``torchrun`` rank takes from its environment.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..images import IMAGE_EXTENSIONS, list_images
from ..shards import check_shard, parse_shard  # parse_shard re-exported (public here before)
from ..video import VIDEO_EXTENSIONS, is_video_file

__all__ = [
    "EmptyStudyError",
    "StudyItem",
    "discover_study",
    "holds_videos",
    "launcher_shard",
    "log_name",
    "parse_shard",
    "select_shard",
]

#: The CSV of the images directly inside a folder.
IMAGES_CSV = "images.csv"


class EmptyStudyError(ValueError):
    """A folder given to a study holds nothing aumaps can read."""


@dataclass(frozen=True)
class StudyItem:
    """One unit of a study: a video, a folder of frames, or the images of one folder.

    Attributes:
        kind: ``"video"`` (a video file), ``"sequence"`` (a folder of frames analysed as a
            video) or ``"images"`` (a folder's images, each on its own).
        source: where it is (the file or the folder).
        name: its path relative to the study (POSIX), the key of the shard split; folders of
            images end with ``/``.
        csv: its CSV's path relative to the output folder (POSIX); also its key in the run log.
        files: the image files of an ``"images"`` item, in natural order.
    """

    kind: str
    source: Path
    name: str
    csv: str
    files: tuple[Path, ...] = ()

    @property
    def report(self) -> str:
        """Its report folder relative to the output folder (``a/clip_report``)."""
        return self.csv[: -len(".csv")] + "_report"


def _walk(root: Path, skip: Path | None) -> Iterable[tuple[Path, list[str]]]:
    """``(folder, file names)`` of the tree under ``root``, hidden entries and ``skip`` left out."""
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            s for s in subfolders if not s.startswith(".") and (skip is None or (here / s).resolve() != skip)
        )
        yield here, sorted(f for f in files if not f.startswith("."))


def _folder_name(rel: PurePosixPath) -> str:
    """A folder's item name: ``a/b/``, or ``./`` for the study folder itself."""
    return "./" if rel == PurePosixPath(".") else f"{rel.as_posix()}/"


def _items_of_folder(root: Path, prefix: PurePosixPath, skip: Path | None, sequence: bool) -> list[StudyItem]:
    """The items of the tree under ``root``, named ``prefix/relative path``."""
    # per output folder: (CSV stem claimed, kind, source, item name, image files)
    claims: dict[PurePosixPath, list[tuple[str, str, Path, str, tuple[Path, ...]]]] = {}
    for folder, files in _walk(root, skip):
        rel = prefix / folder.relative_to(root).as_posix()
        for name in files:
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                claims.setdefault(rel, []).append(
                    (Path(name).stem, "video", folder / name, (rel / name).as_posix(), ())
                )
        if any(Path(name).suffix.lower() in IMAGE_EXTENSIONS for name in files):
            images = tuple(list_images(folder, recursive=False))
            if not sequence:
                claims.setdefault(rel, []).append((Path(IMAGES_CSV).stem, "images", folder, _folder_name(rel), images))
            elif rel.name:  # a folder of frames a/b -> a/b.csv
                claims.setdefault(rel.parent, []).append((rel.name, "sequence", folder, _folder_name(rel), images))
            else:  # the study folder itself is one sequence -> NAME.csv
                claims.setdefault(rel, []).append((root.resolve().name, "sequence", folder, _folder_name(rel), images))
    items = []
    for out_folder, entries in claims.items():
        taken = Counter(claim for claim, *_ in entries)
        for claim, kind, source, name, files in entries:
            stem = source.name if kind == "video" and taken[claim] > 1 else claim
            items.append(StudyItem(kind, source, name, (out_folder / f"{stem}.csv").as_posix(), files))
    return items


def discover_study(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    sequence: bool = False,
) -> list[StudyItem]:
    """The items of a study (see the module docstring), sorted by :attr:`StudyItem.name`.

    Args:
        paths: one folder (the results mirror its tree), or several folders and files (each
            folder's tree goes under the folder's name; files go to the top).
        out_dir: the output folder; not searched should it lie inside a study folder.
        sequence: folders of frames are videos (``--sequence``).

    Raises:
        FileNotFoundError: a path does not exist.
        EmptyStudyError: a folder holds no video and no image.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    skip = Path(out_dir).resolve() if out_dir is not None else None
    items: list[StudyItem] = []
    loose: list[Path] = []
    names: Counter[str] = Counter()
    csvs: Counter[str] = Counter()
    for path in paths:
        if path.is_dir():
            prefix = PurePosixPath(".") if len(paths) == 1 else PurePosixPath(_unique(path.resolve().name, names))
            found = _items_of_folder(path, prefix, skip, sequence)
            if not found:
                raise EmptyStudyError(
                    f"'{path}' holds no video ({' '.join(sorted(VIDEO_EXTENSIONS))}) and no image "
                    f"({' '.join(sorted(IMAGE_EXTENSIONS))}) that aumaps can read"
                )
            items += found
        elif path.exists():
            loose.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: '{path}'")
    images = tuple(p for p in loose if p.suffix.lower() in IMAGE_EXTENSIONS)
    for path in loose:
        if path not in images:  # videos, and files of any other suffix: opening them says what they are
            stem = _unique(path.stem if is_video_file(path) else path.name, csvs)
            items.append(StudyItem("video", path, _unique(path.name, names), f"{stem}.csv"))
    if images:
        items.append(StudyItem("images", images[0].parent, "./", f"{_unique(Path(IMAGES_CSV).stem, csvs)}.csv", images))
    items.sort(key=lambda item: item.name)
    return items


def _unique(name: str, used: Counter[str]) -> str:
    """``name``, or ``name_2``, ``name_3``… when taken already."""
    used[name] += 1
    return name if used[name] == 1 else f"{name}_{used[name]}"


def holds_videos(folder: str | os.PathLike[str]) -> bool:
    """Whether the tree under ``folder`` holds a video (hidden entries left out)."""
    return any(
        Path(name).suffix.lower() in VIDEO_EXTENSIONS for _, files in _walk(Path(folder), None) for name in files
    )


def select_shard(items: Sequence[StudyItem], index: int, count: int) -> list[StudyItem]:
    """Shard ``index`` (0-based) of ``count``: items ``index, index + count, …`` of the list
    sorted by name. The ``count`` shards are disjoint and cover every item."""
    check_shard(index, count)
    ordered = sorted(items, key=lambda item: item.name)
    return ordered[index::count]


def launcher_shard(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` when launched by ``torchrun`` (or any launcher that sets them)
    with more than one process; ``None`` otherwise."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        return None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return rank, world


def log_name(shard: tuple[int, int] | None) -> str:
    """The run log's file name: ``run.json``, or ``run.shard-I-of-N.json`` for a shard (each
    shard writes its own, so no two jobs ever write the same file)."""
    return "run.json" if shard is None else f"run.shard-{shard[0]}-of-{shard[1]}.json"
