"""aumaps.shards: ``--shard I/N``, one parser for studies and crop caches, light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aumaps.shards import check_shard, parse_shard


def test_parse_shard_reads_i_of_n_and_names_other_forms():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1) and parse_shard("2/3") == (2, 3) and parse_shard("11/12") == (11, 12)
    for bad in ("3/3", "4/3", "-1/3", "1 of 3", "a/b", "1/", "/2", "", "1.0/2", " 1/2"):
        with pytest.raises(ValueError, match=r"a shard is I/N with 0 <= I < N, got '.*'"):
            parse_shard(bad)


def test_check_shard():
    assert check_shard(0, 2) == (0, 2) and check_shard(4, 5) == (4, 5)
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match=f"got {index}/{count}"):
            check_shard(index, count)


def test_studies_and_prepare_use_the_one_parser_and_check():
    import aumaps.data.prepare
    import aumaps.shards
    import aumaps.study.discover
    from aumaps.data.cache import build_cache
    from aumaps.study.discover import select_shard

    assert aumaps.data.prepare.parse_shard is aumaps.shards.parse_shard
    assert aumaps.study.discover.parse_shard is aumaps.shards.parse_shard
    with pytest.raises(ValueError, match="a shard is I/N with 0 <= I < N, got 2/2"):
        build_cache("no-such-manifest.csv", "unused", (6,), shard=(2, 2))
    with pytest.raises(ValueError, match="a shard is I/N with 0 <= I < N, got 3/2"):
        select_shard([], 3, 2)


def test_the_parser_imports_neither_pytorch_nor_numpy():
    code = (
        "import sys, aumaps.shards, aumaps.study.discover; "
        "print('torch' in sys.modules, [m for m in sys.modules if m.startswith('aumaps.data')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "[]"]
    code = "import sys, aumaps.shards; print(sorted(m for m in ('numpy', 'pandas', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
