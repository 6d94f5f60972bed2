"""The PyTorch data set over a preprocessed crop cache: crops in, heatmap targets out.

Targets come from the same :class:`~aumaps.codec.AUHeatmapCodec` that decodes predictions,
computed from the (augmented) crop-frame landmarks, so centres follow every augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import AUHeatmapCodec
from ..model import network_input
from .augment import AugmentConfig, augment, rescale
from .cache import CropCache

__all__ = ["AUHeatmapDataset"]


class AUHeatmapDataset(Dataset):
    """Samples of a :class:`~aumaps.data.cache.CropCache`, with targets for ``codec.aus``.

    Args:
        cache: the preprocessed data set.
        indices: cache rows to use (e.g. ``cache.indices("train")``).
        codec: AU list and heatmap geometry of the targets. The cache may hold more AUs.
        augment: augmentation strengths, or ``None`` for none (validation).
        seed: with :meth:`set_epoch`, fixes every sample's augmentation: sample ``i`` of
            epoch ``e`` is the same whatever the worker or batch it lands in.

    Crops are brought to ``codec.crop_size`` (the cache's crops may be larger: a model on
    128×128 crops trains from a 256×256 cache). Each item is a dict: ``image`` (3×S×S float
    in [0, 1]), ``heatmaps`` (A×H×W float),
    ``mask`` (A bool, False = not coded), ``intensities`` (A float, NaN = not coded),
    ``index`` (the cache row).
    """

    def __init__(
        self,
        cache: CropCache,
        indices: np.ndarray,
        codec: AUHeatmapCodec,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        missing = [a for a in codec.aus if a not in cache.aus]
        if missing:
            raise ValueError(f"the cache at {cache.path} has no labels for AU(s) {missing}; it holds {list(cache.aus)}")
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.codec = codec
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.columns = [list(cache.aus).index(a) for a in codec.aus]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[k])
        crop = np.asarray(self.cache.crops[row])
        landmarks = np.asarray(self.cache.landmarks[row], dtype=np.float64)
        intensities = np.asarray(self.cache.intensities[row, self.columns], dtype=np.float64)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, row])
            crop, landmarks = augment(crop, landmarks, rng, self.augment, self.codec.crop_size)
        else:
            crop, landmarks = rescale(crop, landmarks, self.codec.crop_size)
        maps, mask = self.codec.encode(landmarks, intensities)
        return {
            "image": network_input(torch.from_numpy(np.array(crop))).contiguous(),
            "heatmaps": torch.from_numpy(maps),
            "mask": torch.from_numpy(mask),
            "intensities": torch.from_numpy(intensities.astype(np.float32)),
            "landmarks": torch.from_numpy(landmarks.astype(np.float32)),
            "index": torch.tensor(row),
        }
