"""Shards: one job's share of a larger piece of work, ``I/N`` (share ``I`` of ``N``, 0-based).

A study's videos (:func:`aumaps.study.discover.select_shard`) and a crop cache's rows
(:func:`aumaps.data.cache.build_cache`) are split between independent jobs this way;
``--shard I/N`` on the command line (``aumaps predict`` on a study, ``aumaps prepare``) is
read by :func:`parse_shard`. This module imports nothing but the standard library, so that a
study's command line, resumed or not, imports no PyTorch.
"""

from __future__ import annotations

__all__ = ["check_shard", "parse_shard"]


def check_shard(index: int, count: int) -> tuple[int, int]:
    """``(index, count)`` when ``0 <= index < count``.

    Raises:
        ValueError: another pair, named in the message.
    """
    if not 0 <= index < count:
        raise ValueError(f"a shard is I/N with 0 <= I < N, got {index}/{count}")
    return index, count


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) as ``(I, N)``; ``None`` stays ``None``.

    Raises:
        ValueError: another form (``"2/2"``, ``"-1/3"``, ``"1 of 3"``), named in the message.
    """
    if spec is None:
        return None
    i, _, n = spec.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise ValueError(f"a shard is I/N with 0 <= I < N, got {spec!r}")
    return int(i), int(n)
