"""The model picker: which models the page may choose, their cards, and loaded estimators.

Offered, each under an id the page sends back (never a path):

* ``default``: the model bundled with aumaps;
* ``official``: the BMVC 2018 release, only if its file is already in the user cache (the
  server never downloads on a click);
* ``file:NAME``: each checkpoint (``*.pt``, ``*.pth``, ``*.pth.tar``, ``*.ckpt``) directly in
  the folder given by ``--models DIR``, and the file given by ``--weights PATH``.

:meth:`ModelCatalogue.shared` gives the one estimator per model that photos and live
sessions share: its network runs under a lock held for a few faces at a time
(:meth:`SharedEstimator.analyse`), while each live session and each photo worker finds faces
and places landmarks with its own detector (:meth:`ModelCatalogue.new_landmarker`), so a
photo being searched for faces never holds up a live view. :meth:`ModelCatalogue.load`
gives a fresh estimator for a video job's worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..landmarks import FaceLandmarker
from ..predict import AUEstimator
from ..pretrained import REGISTRY, get_pretrained
from ..readout import FaceInput
from ..results import FaceResult
from ..weights import WeightsError, load_checkpoint

__all__ = ["CHECKPOINT_SUFFIXES", "ModelCatalogue", "ModelChoice", "SharedEstimator"]

log = logging.getLogger(__name__)

#: File name endings taken for checkpoints in ``--models DIR``.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt")


@dataclass
class ModelChoice:
    """One model the page may pick.

    Attributes:
        id: what the page sends (``default``, ``official``, ``file:NAME``).
        label: shown in the picker.
        weights: what :class:`~aumaps.predict.AUEstimator` is given (a registry name or a path).
        card: the model card shown beside the results.
    """

    id: str
    label: str
    weights: str | Path
    card: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """What ``/api/models`` says about it."""
        return {"id": self.id, "label": self.label, "card": self.card}


@dataclass
class SharedEstimator:
    """An estimator shared by photos and live sessions. Its network runs only under
    ``lock``, taken for at most ``chunk`` faces at a time; its detector is not used (each
    caller has its own: :meth:`ModelCatalogue.new_landmarker`)."""

    estimator: AUEstimator
    lock: threading.Lock
    chunk: int = 4

    def analyse(self, image: np.ndarray, faces: list[FaceInput], shift_test: bool | None = None) -> list[FaceResult]:
        """Register ``faces`` of an RGB uint8 image, run the network on their crops (the lock
        held for :attr:`chunk` crops at a time, so a group photo lets live frames in between)
        and read the maps out; as :meth:`aumaps.estimator.Estimator.analyse`. ``shift_test``
        overrides the model's (live frames: ``False``)."""
        estimator = self.estimator
        kept, matrices, crops = estimator.register(image, faces)
        parts = []
        for start in range(0, max(len(crops), 1), self.chunk):
            with self.lock:
                parts.append(estimator.heatmaps(crops[start : start + self.chunk], shift_test=shift_test))
        return estimator.read(np.concatenate(parts), matrices, crops, kept)


def _registry_card(name: str) -> dict[str, Any]:
    card = get_pretrained(name).card()
    return {k: v for k, v in card.items() if k not in ("filename", "url", "sha256")}


def _file_card(path: Path) -> dict[str, Any]:
    """The card a checkpoint file carries (read from the file), or why it cannot be read."""
    try:
        checkpoint = load_checkpoint(path)
    except (WeightsError, OSError) as err:
        return {"name": path.name, "error": str(err)}
    card = {"name": path.name, **{k: v for k, v in checkpoint.card.items() if isinstance(v, (str, int, float, list))}}
    card["aus"] = list(checkpoint.aus)
    card["source"] = f"checkpoint {path.name}"
    return card


class ModelCatalogue:
    """The models on offer and the estimators loaded from them.

    Args:
        weights: the model selected when the page opens: a registry name or a checkpoint path.
        models_dir: a folder of checkpoints to offer as well.
        backend: the inference engine (see :class:`~aumaps.estimator.Estimator`).
        device: the torch device the networks run on (``cpu``, ``cuda``, ``cuda:1``...).
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] = "default",
        models_dir: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        device: str = "cpu",
    ) -> None:
        self.backend = backend
        self.device = device
        self.models_dir = Path(models_dir) if models_dir else None
        if self.models_dir is not None and not self.models_dir.is_dir():
            raise FileNotFoundError(f"--models: no such folder of checkpoints: '{self.models_dir}'")
        self._choices: dict[str, ModelChoice] = {}
        self._lock = threading.Lock()
        self._shared: dict[str, SharedEstimator] = {}
        self._loading: dict[str, threading.Lock] = {}
        self.initial = self._add_initial(weights)

    def _add_initial(self, weights: str | os.PathLike[str]) -> str:
        if isinstance(weights, str) and weights in REGISTRY:
            return weights
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"--weights: '{weights}' is neither a registered model "
                f"({', '.join(sorted(REGISTRY))}) nor a checkpoint file"
            )
        choice = ModelChoice(f"file:{path.name}", path.name, path.resolve(), _file_card(path))
        self._choices[choice.id] = choice
        return choice.id

    def choices(self) -> list[ModelChoice]:
        """The models on offer now (the cache and the folder are looked at again each time)."""
        found: dict[str, ModelChoice] = {}
        for name in sorted(REGISTRY):
            entry = get_pretrained(name)
            if entry.bundled or entry.path().is_file() or name == self.initial:
                with self._lock:
                    found[name] = self._choices.setdefault(
                        name,
                        ModelChoice(
                            name,
                            f"{name} ({'bundled' if entry.bundled else 'from the cache'})",
                            name,
                            _registry_card(name),
                        ),
                    )
        if self.models_dir is not None:
            for path in sorted(self.models_dir.iterdir()):
                if path.is_file() and path.name.lower().endswith(CHECKPOINT_SUFFIXES):
                    key = f"file:{path.name}"
                    with self._lock:
                        known = self._choices.get(key)
                    if known is None or known.weights != path.resolve():
                        known = ModelChoice(key, path.name, path.resolve(), _file_card(path))
                        with self._lock:
                            self._choices[key] = known
                    found[key] = known
        with self._lock:
            initial = self._choices.get(self.initial)
        if initial is not None:
            found.setdefault(initial.id, initial)
        return list(found.values())

    def get(self, model_id: str | None) -> ModelChoice:
        """The choice ``model_id`` (the initial one for ``None``).

        Raises:
            KeyError: no such model on offer (the message lists those that are).
        """
        model_id = model_id or self.initial
        offered = {c.id: c for c in self.choices()}
        if model_id not in offered:
            raise KeyError(f"no model {model_id!r} on offer; choose one of: {', '.join(offered)}")
        return offered[model_id]

    def load(self, model_id: str | None) -> AUEstimator:
        """A new estimator for ``model_id`` (for one thread's use).

        Raises:
            KeyError: no such model; WeightsError: its file cannot be loaded.
        """
        choice = self.get(model_id)
        if choice.card.get("error"):
            raise WeightsError(choice.card["error"])
        estimator = AUEstimator(weights=choice.weights, backend=self.backend, device=self.device)
        own = {k: v for k, v in (estimator.checkpoint.card or {}).items() if isinstance(v, (str, int, float))}
        choice.card.update({**own, **choice.card, "engine": estimator.engine.describe()})
        return estimator

    @staticmethod
    def new_landmarker() -> FaceLandmarker:
        """A face detector and landmark predictor of one's own (dlib's detector keeps state
        while it runs: one per thread that detects); the estimators' is the same kind."""
        return FaceLandmarker()

    def shared(self, model_id: str | None) -> SharedEstimator:
        """The estimator photos and live sessions share for ``model_id`` (loaded once)."""
        key = self.get(model_id).id
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per model, others wait for it
            with self._lock:
                if key in self._shared:
                    return self._shared[key]
            shared = SharedEstimator(self.load(key), threading.Lock())
            with self._lock:
                self._shared[key] = shared
            return shared
