"""The pretrained registry: named models, each with its card, in the manner of timm.

``--weights NAME`` / ``AUEstimator(weights=NAME)`` accepts every name registered here;
``aumaps info`` lists them with their cards. An entry says where the weights come from
(bundled with the package, or downloaded once into the user cache), their SHA-256 where it is
pinned (a file that does not match is refused), the licence, the AUs of the output channels,
the input the network expects, the paper, and what it was trained on.

Checkpoint files written by aumaps carry their own card and codec; an entry's card is what
is known about the file before it is read (and all that is known for the BMVC 2018 release,
which carries none).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PAPER",
    "REGISTRY",
    "WeightsError",
    "cache_dir",
    "PretrainedModel",
    "get_pretrained",
    "list_pretrained",
    "register_pretrained",
]

#: The method every registered model implements.
PAPER = (
    "Sanchez-Lozano, Tzimiropoulos, Valstar: Joint Action Unit localisation and intensity estimation "
    "through heatmap regression, BMVC 2018 (arXiv 1805.03487)"
)


def input_description(crop_size: int = 256) -> str:
    """What a network of this architecture takes, for its crop size."""
    return (
        f"{crop_size}x{crop_size} RGB crop registered on landmarks 8, 36, 45 (aumaps.align), values / 255 "
        "in [0, 1], no mean subtraction"
    )


#: What the paper's network takes (256x256 crops).
INPUT = input_description(256)
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PretrainedModel:
    """One registered model.

    Attributes:
        name: the name ``--weights`` takes.
        description: one line.
        filename: the file's name (in the package, or in the user cache once downloaded).
        url: where it is downloaded from; ``None`` when it ships with aumaps.
        sha256: the file's SHA-256, or ``None`` where the publisher gives none to pin.
        licence: the terms the weights come under.
        aus: AU numbers of the output channels, in order.
        trained_on: the training data.
        input: the input normalisation the network expects.
        paper: the method.
        notes: anything a user must know before trusting its numbers.
    """

    name: str
    description: str
    filename: str
    url: str | None
    sha256: str | None
    licence: str
    aus: tuple[int, ...]
    trained_on: str
    input: str = INPUT
    paper: str = PAPER
    notes: str = ""

    @property
    def bundled(self) -> bool:
        """Whether the file ships inside the aumaps package."""
        return self.url is None

    def path(self) -> Path:
        """Where the file is (bundled) or goes (downloaded, in the user cache)."""
        if self.bundled:
            return _PACKAGE / "pretrained" / self.filename
        return cache_dir() / self.filename

    def card(self) -> dict[str, Any]:
        """The entry as a plain dict (what ``aumaps info`` prints)."""
        card = asdict(self)
        card["aus"] = list(self.aus)
        card["source"] = self.url or f"bundled with aumaps ({self.path()})"
        return card

    def mismatch(self, path: Path) -> str | None:
        """Why ``path`` is not this model's file (its SHA-256 differs from the pinned one), or
        None when it matches or nothing is pinned."""
        if self.sha256 is None:
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == self.sha256:
            return None
        return (
            f"{path} is not the '{self.name}' model: its SHA-256 is {digest}, expected {self.sha256}. "
            "Delete it and let aumaps fetch it again, or reinstall aumaps."
        )


def cache_dir() -> Path:
    """The user cache (downloaded weights, built engines): ``$AUMAPS_CACHE``, else
    ``$XDG_CACHE_HOME/aumaps``, else ``~/.cache/aumaps``. It is not created here."""
    if os.environ.get("AUMAPS_CACHE"):
        return Path(os.environ["AUMAPS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "aumaps"
    return Path.home() / ".cache" / "aumaps"


class WeightsError(RuntimeError):
    """A checkpoint could not be found, fetched, read, or paired with the model/AU list."""


REGISTRY: dict[str, PretrainedModel] = {}


def register_pretrained(entry: PretrainedModel, overwrite: bool = False) -> None:
    """Add ``entry`` to the registry under ``entry.name``."""
    if entry.name in REGISTRY and not overwrite:
        raise ValueError(f"a pretrained model named {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry


def get_pretrained(name: str) -> PretrainedModel:
    """The registered entry ``name``.

    Raises:
        KeyError: no such entry (the message lists the registered names).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no pretrained model named {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None


def list_pretrained() -> list[PretrainedModel]:
    """Every registered entry, by name."""
    return [REGISTRY[name] for name in sorted(REGISTRY)]


#: Where every image the bundled model was trained on came from (its card repeats it).
TRAINING_SOURCES = (
    "aumaps synthetic AU faces (aumaps.data.synth, docs/synthetic.md), made from: scikit-image's astronaut "
    "(NASA portrait of Eileen Collins, public domain) and matplotlib's grace_hopper.jpg (U.S. Navy portrait, "
    "public domain); backgrounds from scikit-image's brick, grass, gravel, coffee, chelsea, cell (CC0) and "
    "rocket, hubble_deep_field, clock, text (public domain); everything else drawn by aumaps' code. No BP4D, "
    "no DISFA, no real AU data."
)

register_pretrained(
    PretrainedModel(
        name="default",
        description="OpenFace's 17 AUs from a small stacked hourglass (2 stacks, width 96, 128x128 crops) "
        "bundled with aumaps, trained on aumaps' synthetic AU faces only",
        filename="aumaps-openface17.pt",
        url=None,
        sha256="b18d3066e0a69bbd17c182dc86c12a81234b92236a5c7a7a7f79b18a532bb116",
        licence="MIT (as aumaps); every image it was trained on is public domain or CC0",
        aus=(1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45),
        trained_on=TRAINING_SOURCES
        + " Recipe: configs/openface17.yaml, configs/openface17-more.yaml, configs/openface17-stack2.yaml,"
        " configs/openface17-faces.yaml, configs/openface17-rev3.yaml,"
        " configs/openface17-wide.yaml, configs/openface17-wide-more.yaml, configs/openface17-wide-faces.yaml,"
        " configs/openface17-wide-longer.yaml, configs/openface17-peak-halves.yaml,"
        " configs/openface17-peak-long.yaml, configs/openface17-peak-faces.yaml,"
        " configs/openface17-peak-faces-polish.yaml, configs/openface17-peak-fresh-faces.yaml,"
        " configs/openface17-peak-fresh-faces-polish.yaml, configs/openface17-peak-fresher-faces.yaml,"
        " configs/openface17-peak-fresher-faces-polish.yaml, configs/openface17-mean-peak.yaml,"
        " configs/openface17-mean-peak-polish.yaml, configs/openface17-mean3-peak.yaml,"
        " configs/openface17-mean3-peak-polish.yaml, configs/openface17-mean4-peak.yaml,"
        " configs/openface17-mean4-peak-polish.yaml, configs/openface17-mean5-peak.yaml,"
        " configs/openface17-mean5-peak-polish.yaml (the -mean*-peak stages start from the mean of the polish"
        " stages before them), then the mean of the weights of the -peak-fresh-faces-polish,"
        " -peak-fresher-faces-polish, -mean-peak-polish, -mean3-peak-polish, -mean4-peak-polish and"
        " -mean5-peak-polish stages (aumaps average);"
        " read with the flip test and the shift test (each face read as registered and mirrored, each also"
        " moved one map pixel right, left, down and up: the mean of the ten readings' maps) and its maps"
        " calibrated on the validation faces (aumaps calibrate --flip-test --shift-test).",
        input=input_description(128),
        notes="trained on synthetic faces only: its intensities on real faces are not validated against human FACS "
        "coding (see its card: what the transfer check shows and cannot); for exploring, teaching and "
        "pipelines that need a permissively licensed 17-AU model, not for clinical or high-stakes use",
    )
)

register_pretrained(
    PretrainedModel(
        name="official",
        description="the BMVC 2018 release (AUdetector.pth.tar): the paper's hourglass, width 256",
        filename="AUdetector.pth.tar",
        url="https://esanchezlozano.github.io/files/AUdetector.pth.tar",
        sha256=None,
        licence="no licence stated by the authors (release repository ESanchezLozano/Action-Units-Heatmaps): "
        "research use, cite the paper",
        aus=(6, 10, 12, 14, 17),
        trained_on="BP4D (FERA 2015)",
        notes="the publisher gives no checksum, so none is pinned; the file is checked against the published "
        "architecture when it is read",
    )
)
