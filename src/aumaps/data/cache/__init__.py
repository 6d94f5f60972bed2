"""The preprocessed crop cache that training reads (``docs/data-format.md`` §2).

* :mod:`aumaps.data.cache.format`: the folder's layout and :class:`CropCache`, its reader;
* :mod:`aumaps.data.cache.build`: :func:`build_cache` (resumable, parallel, sharded) and
  :func:`merge_caches`;
* :mod:`aumaps.data.cache.frames`: reading a row's picture (image files, zip members, video
  frames).
"""

from .build import build_cache, merge_caches
from .format import CACHE_FORMAT, CacheError, CropCache

__all__ = ["CACHE_FORMAT", "CacheError", "CropCache", "build_cache", "merge_caches"]
