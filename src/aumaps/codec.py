"""The AU heatmap codec: AU intensities + landmarks ⇄ one heatmap per AU.

One object turns labels into training targets (:meth:`AUHeatmapCodec.encode`) and network
output back into labels (:meth:`AUHeatmapCodec.decode`); the data pipeline and inference use
the same instance, so the two cannot drift apart (MMPose's codec design).

The encoding is ``method.md`` §2: for AU *a* at intensity I, each of its centres c (placed by
:mod:`aumaps.aus`, taken to the map at c/4 and rounded to a pixel) contributes

    G(c + (i, j)) = I · exp(-(i² + j²) / (2σ(I)²))   for |i|, |j| ≤ window · I,  else 0,

and the AU's map is the pixel-wise maximum over its centres. The peak therefore equals the
intensity, the support grows with it, and I = 0 gives an all-zero map. σ is not published;
our choice (documented in ``docs/method-choices.md``) lets it grow with the intensity too:
σ(I) = ``sigma`` + ``sigma_growth`` · I.

Shapes: N faces, A AUs, C centres per AU (padded), H×W heatmap (``map_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import align
from .aus import MAX_INTENSITY, centres, get_au, resolve_aus
from .calibrate import MapCalibration
from .model import SHIFTS, mirror_average, shift_average

__all__ = ["AUHeatmapCodec", "Decoded", "MAX_INTENSITY"]


@dataclass
class Decoded:
    """What :meth:`AUHeatmapCodec.decode` reads off heatmaps.

    Attributes:
        intensities: ``(N, A)`` each map's maximum clamped to [0, 5].
        argmax: ``(N, A, 2)`` crop (x, y) of each map's maximum (NaN where the map is ≤ 0).
        peaks: ``(N, A, C, 2)`` crop (x, y) of up to C local maxima per AU (C = the AU's number
            of centres), strongest first; NaN where fewer peaks reach ``peak_threshold``.
        peak_values: ``(N, A, C)`` heatmap values at ``peaks`` (NaN likewise).
    """

    intensities: np.ndarray
    argmax: np.ndarray
    peaks: np.ndarray
    peak_values: np.ndarray


class AUHeatmapCodec:
    """Encode AU intensities as Gaussian heatmaps and decode them back.

    Args:
        aus: AU numbers in channel order, or a set name (``"bp4d"``).
        crop_size: side of the registered crop the landmarks live in.
        map_size: side of the square heatmap (crop point (x, y) sits at (x, y)·map/crop).
        sigma: Gaussian σ at intensity 0, in map pixels.
        sigma_growth: increase of σ per intensity unit.
        window: half-width of the Gaussian's support per intensity unit (|i|, |j| ≤ window·I).
        peak_threshold: smallest heatmap value reported as a peak by :meth:`decode`.
        calibration: the trained network's readout calibration (:mod:`aumaps.calibrate`, or
            its ``to_dict()``), applied to network maps by :meth:`calibrate`; ``None`` (the
            default, and every training target) leaves maps as they are.
        flip_test: the network reads each face and its mirror image, and its maps are the
            mean of the two (:meth:`network_maps`, which whoever runs the network calls:
            :meth:`aumaps.estimator.Estimator.heatmaps` and
            :func:`aumaps.evaluate.predict_loader`); part of the readout the calibration was
            fitted for, so it travels with it in the checkpoint.
        shift_test: the network also reads each face moved one map pixel right, left, down
            and up, and its maps are the mean of the five readings, each moved back
            (:func:`aumaps.model.shift_average`; with ``flip_test`` too, ten readings). Part of
            the readout like ``flip_test``.
    """

    def __init__(
        self,
        aus: str | Sequence[int] = "bp4d",
        crop_size: int = align.CROP_SIZE,
        map_size: int = 64,
        sigma: float = 1.0,
        sigma_growth: float = 0.25,
        window: float = 6.0,
        peak_threshold: float = 0.5,
        calibration: MapCalibration | dict | None = None,
        flip_test: bool = False,
        shift_test: bool = False,
    ) -> None:
        self.aus = resolve_aus(aus)
        self.crop_size = int(crop_size)
        self.map_size = int(map_size)
        self.sigma = float(sigma)
        self.sigma_growth = float(sigma_growth)
        self.window = float(window)
        self.peak_threshold = float(peak_threshold)
        if self.sigma <= 0 or self.sigma_growth < 0 or self.window <= 0:
            raise ValueError("sigma must be > 0, sigma_growth >= 0 and window > 0")
        self.n_centres = np.array([len(get_au(a).centres) for a in self.aus])
        self.calibration = MapCalibration.from_dict(calibration) if isinstance(calibration, dict) else calibration
        for name, value in (("flip_test", flip_test), ("shift_test", shift_test)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            if value and self.crop_size % self.map_size:
                raise ValueError(
                    f"{name} needs a crop size that is a multiple of the map size, got {crop_size} and {map_size}"
                )
        self.flip_test = flip_test
        self.shift_test = shift_test

    # -- configuration ---------------------------------------------------------------------
    @property
    def stride(self) -> float:
        """Crop pixels per heatmap pixel (4 for 256 → 64)."""
        return self.crop_size / self.map_size

    def readings(self, shift_test: bool | None = None) -> int:
        """How many times the network reads each face (:meth:`network_maps`, with its
        ``shift_test`` override): 1, 2 with the flip test, 5 with the shift test, 10 with both."""
        shifted = self.shift_test if shift_test is None else shift_test
        return (2 if self.flip_test else 1) * (len(SHIFTS) if shifted else 1)

    def to_dict(self) -> dict:
        """Plain-type description, stored in checkpoints and configs (``calibration`` only
        when there is one, ``flip_test`` and ``shift_test`` only when set)."""
        out = {
            "aus": list(self.aus),
            "crop_size": self.crop_size,
            "map_size": self.map_size,
            "sigma": self.sigma,
            "sigma_growth": self.sigma_growth,
            "window": self.window,
            "peak_threshold": self.peak_threshold,
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        if self.flip_test:
            out["flip_test"] = True
        if self.shift_test:
            out["shift_test"] = True
        return out

    @classmethod
    def from_dict(cls, cfg: dict) -> AUHeatmapCodec:
        """Inverse of :meth:`to_dict`."""
        return cls(**cfg)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"AUHeatmapCodec({args})"

    # -- encoding ------------------------------------------------------------------------
    def centres_in_map(self, landmarks: np.ndarray) -> np.ndarray:
        """``(N, A, C, 2)`` integer-valued map pixels of the AU centres (NaN = padding).

        Args:
            landmarks: ``(N, 68, 2)`` landmarks in crop coordinates.
        """
        return np.round(centres(landmarks, self.aus) / self.stride)

    def encode(self, landmarks: np.ndarray, intensities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmap targets for a batch of faces.

        Args:
            landmarks: ``(N, 68, 2)`` (or ``(68, 2)``) landmarks in crop coordinates.
            intensities: ``(N, A)`` (or ``(A,)``) AU intensities in [0, 5]; NaN = not coded.

        Returns:
            maps: ``(N, A, H, W)`` float32 targets (all zero for an uncoded AU).
            mask: ``(N, A)`` bool, False where the intensity is not coded (exclude from the loss).
        """
        lms = np.asarray(landmarks, dtype=np.float64)
        inten = np.asarray(intensities, dtype=np.float64)
        single = lms.ndim == 2
        if single:
            lms, inten = lms[None], inten[None]
        n, a = inten.shape[0], len(self.aus)
        if lms.shape != (n, 68, 2) or inten.shape != (n, a):
            raise ValueError(
                f"encode expects landmarks (N, 68, 2) and intensities (N, {a}) for AUs "
                f"{list(self.aus)}; got {lms.shape} and {inten.shape}"
            )
        mask = np.isfinite(inten)
        if np.any((inten[mask] < 0) | (inten[mask] > MAX_INTENSITY)):
            raise ValueError(f"intensities must lie in [0, {MAX_INTENSITY:g}] (NaN = not coded)")
        level = np.where(mask, inten, 0.0)[:, :, None, None, None]  # (N, A, 1, 1, 1)
        ctr = self.centres_in_map(lms)  # (N, A, C, 2)
        grid = np.arange(self.map_size, dtype=np.float64)
        di = grid[None, None, None, None, :] - ctr[..., 0, None, None]  # (N, A, C, 1, W)
        dj = grid[None, None, None, :, None] - ctr[..., 1, None, None]  # (N, A, C, H, 1)
        sigma = self.sigma + self.sigma_growth * level
        half = self.window * level
        g = level * np.exp(-(di**2 + dj**2) / (2.0 * sigma**2))
        inside = (np.abs(di) <= half) & (np.abs(dj) <= half)
        g = np.where(inside & np.isfinite(g), g, 0.0)
        maps = g.max(axis=2).astype(np.float32)
        return (maps[0], mask[0]) if single else (maps, mask)

    # -- decoding ------------------------------------------------------------------------
    def calibrate(self, maps: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Network maps with the readout calibration applied (unchanged without one).

        Apply it to the network's output, never to training targets; :meth:`read` does it
        and decodes the result.
        """
        return maps if self.calibration is None else self.calibration(maps)

    def network_maps(self, run, inputs, width_axis: int, shift_test: bool | None = None):
        """``run``'s ``(N, A, H, W)`` maps of ``inputs`` as this readout reads a network: once,
        or with ``flip_test`` averaged with the mirror images' (:func:`aumaps.model.mirror_average`),
        and with ``shift_test`` over small moves of each crop (:func:`aumaps.model.shift_average`);
        one call of ``run`` on all :attr:`readings`. ``width_axis`` is the inputs' image-width axis;
        ``shift_test`` overrides the codec's for this call (``False``: a fifth of the network
        time, as live cameras read)."""
        stride = int(self.stride)
        read = run
        if self.flip_test:
            read = lambda x: mirror_average(run, x, width_axis, stride=stride)  # noqa: E731
        shifted = self.shift_test if shift_test is None else shift_test
        return shift_average(read, inputs, width_axis, stride=stride) if shifted else read(inputs)

    def read(self, maps: np.ndarray | torch.Tensor) -> tuple[np.ndarray | torch.Tensor, Decoded]:
        """The network's ``(N, A, H, W)`` output, calibrated (:meth:`calibrate`), and its
        decoding (:meth:`decode` of the calibrated maps, the same peaks as the raw ones)."""
        calibrated = self.calibrate(maps)
        return calibrated, self.decode(calibrated, calibrated=True)

    def decode(self, heatmaps: np.ndarray | torch.Tensor, calibrated: bool = False) -> Decoded:
        """Intensities and peak locations from heatmaps.

        Args:
            heatmaps: ``(N, A, H, W)`` network output or targets (NumPy or torch).
            calibrated: the maps went through :meth:`calibrate`; ``peak_threshold`` is then
                taken through the same increasing function, so that the same local maxima are
                reported as peaks as from the uncalibrated maps.

        Returns:
            A :class:`Decoded` with crop-frame coordinates (map pixel × stride).
        """
        maps = torch.as_tensor(heatmaps).detach().float().cpu()
        if maps.ndim != 4 or maps.shape[1] != len(self.aus):
            raise ValueError(
                f"decode expects heatmaps (N, {len(self.aus)}, H, W) for AUs {list(self.aus)}, got {tuple(maps.shape)}"
            )
        n, a, h, w = maps.shape
        flat = maps.reshape(n, a, h * w)
        top, idx = flat.max(dim=-1)
        intensities = top.clamp(0.0, MAX_INTENSITY).numpy().astype(np.float64)
        argmax = self._index_to_crop(idx.numpy(), w)
        level = self._calibrated_level if calibrated else float
        argmax[top.numpy() <= level(0.0)] = np.nan  # a map that never rises above 0 has no location

        c = int(self.n_centres.max())
        local = maps == F.max_pool2d(maps, 3, stride=1, padding=1)
        scores = torch.where(local & (maps >= level(self.peak_threshold)), maps, torch.full_like(maps, -np.inf))
        vals, pidx = scores.reshape(n, a, h * w).topk(c, dim=-1)
        vals = vals.numpy().astype(np.float64)
        peaks = self._index_to_crop(pidx.numpy(), w)
        beyond = np.arange(c)[None, None, :] >= self.n_centres[None, :, None]
        missing = ~np.isfinite(vals) | beyond
        vals[missing] = np.nan
        peaks[missing] = np.nan
        return Decoded(intensities, argmax, peaks, vals)

    def _calibrated_level(self, value: float) -> float:
        """A raw map level in calibrated units."""
        return float(value if self.calibration is None else self.calibration(np.float32(value)))

    def _index_to_crop(self, idx: np.ndarray, width: int) -> np.ndarray:
        xy = np.stack([idx % width, idx // width], axis=-1).astype(np.float64)
        return xy * self.stride
