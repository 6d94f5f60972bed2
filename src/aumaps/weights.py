"""Loading and saving network weights; the model card travels with the weights.

Two file formats are read:

* **aumaps checkpoints**, written by :func:`save_checkpoint`: a dict of plain Python types
  and tensors that states its architecture, its AU list (the channel order of the maps),
  the heatmap codec it was trained with and a free-form model card, so that inference never
  has to be told how a model was trained;
* **the BMVC 2018 release** (``AUdetector.pth.tar``) or any file with the same layout: a
  dict with a ``state_dict`` entry, or a bare state dict, keys possibly prefixed with
  ``module.``. The architecture is read off the key names and shapes; the AU list is the
  release's, :data:`OFFICIAL_AUS`.

Every file is read with ``torch.load(..., weights_only=True)``: a file that needs
arbitrary Python objects to unpickle is refused, never executed. Every failure raises
:class:`WeightsError` with a message naming the file and saying what to do.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .atomic import atomic_path
from .codec import AUHeatmapCodec
from .model import AUHourglass
from .pretrained import REGISTRY, WeightsError, cache_dir, get_pretrained

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "OFFICIAL_AUS",
    "OFFICIAL_CARD",
    "OFFICIAL_FILENAME",
    "OFFICIAL_URL",
    "Checkpoint",
    "DEFAULT_WEIGHTS",
    "WeightsError",
    "average_checkpoints",
    "average_weights",
    "cache_dir",
    "download_official",
    "load_checkpoint",
    "save_checkpoint",
]

OFFICIAL_URL = get_pretrained("official").url
OFFICIAL_FILENAME = get_pretrained("official").filename
OFFICIAL_AUS = get_pretrained("official").aus
OFFICIAL_CARD = {
    "name": "BMVC 2018 release (AUdetector.pth.tar)",
    "trained_on": get_pretrained("official").trained_on,
    "source": OFFICIAL_URL,
}
#: The model shipped inside the package (``--weights default``), see :mod:`aumaps.pretrained`.
DEFAULT_WEIGHTS = get_pretrained("default").path()
_PUBLISHED_ARCH = {"num_aus": 5, "num_stacks": 1, "depth": 4, "width": 256}
FORMAT = "aumaps-checkpoint"
FORMAT_VERSION = 1

_MAX_LISTED = 5
_PLAIN_SCALARS = (str, int, float, bool, type(None))


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the network, in eval mode, on the CPU.
        aus: AU numbers in the channel order of the model's maps (length A).
        codec: the heatmap codec it was trained with (an :class:`~aumaps.codec.AUHeatmapCodec`;
            a plain dict of its parameters is turned into one; ``None`` means the defaults for
            ``aus``, as for the BMVC 2018 release, which states none). Its crop and map sizes
            must be ones the network can honour.
        card: free-form model card (name, training data, source...); may be empty.
        path: the file it was read from.
        kind: ``"aumaps"`` for a file written by :func:`save_checkpoint`, ``"official"``
            for the BMVC 2018 release layout.

    Raises:
        WeightsError: the codec cannot be built, lists other AUs than ``aus``, or has a
            crop or map size the network cannot honour.
    """

    model: AUHourglass
    aus: tuple[int, ...]
    codec: AUHeatmapCodec | dict[str, Any] | None
    card: dict[str, Any]
    path: Path
    kind: str

    def __post_init__(self) -> None:
        self.aus = tuple(int(a) for a in self.aus)
        self.codec = _codec(self.path, self.codec, self.aus)
        _check_geometry(self.path, self.model, self.codec)


def _codec(path: Path, codec: AUHeatmapCodec | dict[str, Any] | None, aus: tuple[int, ...]) -> AUHeatmapCodec:
    if codec is None:
        return AUHeatmapCodec(aus)
    if isinstance(codec, dict):
        try:
            codec = AUHeatmapCodec.from_dict({"aus": list(aus), **codec})
        except (TypeError, ValueError, KeyError) as err:
            raise WeightsError(f"{path} states a heatmap codec aumaps cannot build ({codec}): {err}") from err
    if codec.aus != aus:
        raise WeightsError(
            f"{path} is inconsistent: its codec lists AUs {list(codec.aus)} but its model outputs AUs {list(aus)}"
        )
    return codec


def _check_geometry(path: Path, model: AUHourglass, codec: AUHeatmapCodec) -> None:
    """The network maps an S×S crop to (S/4)×(S/4) maps and halves its input ``depth`` times
    in the hourglass: a codec whose sizes it cannot honour is an error, not wrong numbers."""
    depth = int(getattr(model, "config", {}).get("depth", 4))
    if codec.map_size * 4 != codec.crop_size:
        raise WeightsError(
            f"{path}: the network's maps are a quarter of its input, so a {codec.crop_size}-pixel "
            f"crop gives {codec.crop_size / 4:g}-pixel maps, but the codec says {codec.map_size}"
        )
    if codec.crop_size % (4 * 2**depth):
        raise WeightsError(
            f"{path}: a hourglass of depth {depth} needs crops whose side is a multiple of "
            f"{4 * 2**depth}; the codec asks for {codec.crop_size}"
        )


def download_official(dest: Path | None = None, timeout: float = 30, url: str = OFFICIAL_URL) -> Path:
    """Return the path of the BMVC 2018 checkpoint, downloading it first if needed.

    Args:
        dest: file to download to; default ``cache_dir() / "AUdetector.pth.tar"``. If it
            already exists it is returned without any network access.
        timeout: seconds to wait for the server before giving up.
        url: where to fetch it from (any URL urllib opens, ``file://`` included).

    The file is written to a temporary file beside ``dest`` and moved into place only once
    complete, so an interrupted download never leaves a partial ``dest`` behind.

    Raises:
        WeightsError: the download failed; the message says where to put the file by hand.
    """
    dest = Path(dest) if dest is not None else cache_dir() / OFFICIAL_FILENAME
    if dest.is_file():
        return dest
    try:
        with atomic_path(dest) as temporary, open(temporary, "wb") as out:
            _fetch(url, out, timeout)
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise WeightsError(
            f"Downloading the published weights from {url} failed ({_reason(err)}); this machine may be "
            f"offline or unable to reach the server. Download {url} by hand (a browser will do), then either "
            f"put the file at {dest} or pass `--weights /path/to/{dest.name}`."
        ) from err
    return dest


def _fetch(url: str, out: Any, timeout: float) -> None:
    """Copy the body at ``url`` into the binary file ``out``, with a progress bar when the
    size is known; raise OSError when fewer bytes arrive than announced."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=total is None) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"incomplete download: received {received} of {total} bytes")


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)
    return str(err) or type(err).__name__


def save_checkpoint(
    path: str | os.PathLike[str],
    model: AUHourglass,
    aus: tuple[int, ...] | list[int],
    codec: AUHeatmapCodec | dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its description to ``path`` in the aumaps format; return the path.

    The file holds a dict of plain Python types and CPU tensors only (so it reads back with
    ``weights_only=True``)::

        {"format": "aumaps-checkpoint", "format_version": 1, "arch": model.config,
         "aus": [int, ...], "codec": dict | None, "card": dict | None, "state_dict": {...}}

    ``aus`` gives the AU of each output channel (length A = ``model.config["num_aus"]``).
    ``codec`` is the :class:`~aumaps.codec.AUHeatmapCodec` the model was trained with (or
    its ``to_dict()``). ``card`` may contain only dicts with string keys, lists, tuples,
    strings, numbers, booleans and None. The write is atomic (temporary file + rename).

    Raises:
        WeightsError: the AU list does not match the model's channels, or ``codec``/``card``
            hold something other than plain values.
    """
    path = Path(path)
    aus = [int(au) for au in aus]
    if len(aus) != model.config["num_aus"]:
        raise WeightsError(
            f"Cannot save {path}: the model has {model.config['num_aus']} AU channels, "
            f"the AU list {aus} has {len(aus)}."
        )
    if isinstance(codec, AUHeatmapCodec):
        codec = codec.to_dict()
    for field, value in (("codec", codec), ("card", card)):
        bad = _first_non_plain(value)
        if bad is not None:
            raise WeightsError(
                f"Cannot save {path}: {field} must hold only plain values (dict, list, str, number, bool, "
                f"None), found {type(bad).__name__} {bad!r:.60}."
            )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": dict(model.config),
        "aus": aus,
        "codec": codec,
        "card": card,
        "state_dict": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def average_weights(weights: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]) -> Checkpoint:
    """The element-wise mean of several checkpoints of one network (a "model soup", as timm's
    ``avg_checkpoints.py``), in memory; :func:`average_checkpoints` writes it.

    Checkpoints along one training run, or fine-tuned from one another, lie in one basin of the
    loss, and the mean of their weights usually reads held-out faces better than any of them.
    Floating-point tensors (weights and BatchNorm statistics) are averaged in float64 and kept
    in their own dtype; integer buffers (BatchNorm's batch counts) are the last file's. The
    result carries the last file's card, less what describes that one run (its config, epochs,
    validation ICC and calibration), with ``averaged_from`` naming the inputs, and the codec
    *without* a readout calibration, flip test or shift test: those were fitted on one network's maps, so
    calibrate the mean again (``aumaps calibrate``).

    Args:
        weights: two or more checkpoints (paths or registered names) of one architecture, AU
            list and codec (the calibration, flip test and shift test aside).

    Raises:
        WeightsError: fewer than two inputs, or an input that differs from the first in
            architecture, AUs or codec (the message names it and the difference).
    """
    if isinstance(weights, (str, os.PathLike)) or len(weights) < 2:
        raise WeightsError(f"averaging needs a list of at least two checkpoints, got {weights!r}")
    ckpts = [load_checkpoint(w) for w in weights]
    first = ckpts[0]

    def bare_codec(ckpt: Checkpoint) -> dict[str, Any]:
        return {k: v for k, v in ckpt.codec.to_dict().items() if k not in ("calibration", "flip_test", "shift_test")}

    for name, ckpt in zip(weights[1:], ckpts[1:]):
        for what, mine, theirs in (
            ("architecture", ckpt.model.config, first.model.config),
            ("AUs", list(ckpt.aus), list(first.aus)),
            ("codec", bare_codec(ckpt), bare_codec(first)),
        ):
            if mine != theirs:
                raise WeightsError(
                    f"cannot average {name} with {weights[0]}: their {what} differ ({mine} against {theirs})"
                )
    states = [c.model.state_dict() for c in ckpts]
    mean = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            mean[key] = (sum(s[key].double() for s in states) / len(states)).to(value.dtype)
        else:
            mean[key] = value
    model = AUHourglass(**first.model.config)
    model.load_state_dict(mean)
    # what describes one run (its config, epochs, validation figure, calibration) is not the mean's
    per_run = ("calibration", "registry", "config", "epochs_trained", "val_icc")
    card = {k: v for k, v in ckpts[-1].card.items() if k not in per_run}
    card["averaged_from"] = [str(w) for w in weights]
    codec = AUHeatmapCodec.from_dict({"aus": list(first.aus), **bare_codec(first)})
    return Checkpoint(model.eval(), first.aus, codec, card, Path(str(weights[-1])), "aumaps")


def average_checkpoints(
    weights: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...],
    out: str | os.PathLike[str],
) -> Path:
    """Write :func:`average_weights` of ``weights`` to ``out`` (atomically); return the path.
    ``train.init`` given a list of checkpoints starts from the same mean."""
    soup = average_weights(weights)
    return save_checkpoint(out, soup.model, soup.aus, soup.codec, soup.card)


def _first_non_plain(value: Any) -> Any | None:
    """The first value inside ``value`` that ``weights_only`` loading would refuse, else None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return key
            bad = _first_non_plain(item)
            if bad is not None:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        return next((bad for item in value if (bad := _first_non_plain(item)) is not None), None)
    return None if isinstance(value, _PLAIN_SCALARS) else value


def load_checkpoint(
    weights: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    url: str | None = OFFICIAL_URL,
    aus: tuple[int, ...] | list[int] | None = None,
) -> Checkpoint:
    """Load a checkpoint into a ready-to-use :class:`Checkpoint`.

    Args:
        weights: a name of the pretrained registry (:mod:`aumaps.pretrained`:
            ``"default"``, the model bundled with aumaps; ``"official"``, the BMVC 2018
            release, downloaded into :func:`cache_dir` on first use), or the path of an
            aumaps checkpoint or of a file in the release's layout.
        map_location: passed to ``torch.load``; the returned model is on the CPU.
        url: where ``"official"`` is downloaded from.
        aus: the AU list the caller expects; if given and different from the checkpoint's,
            loading fails instead of silently mislabelling the maps.

    Raises:
        WeightsError: the file is missing, not a safe PyTorch checkpoint, not an AU
            hourglass, does not match the architecture (missing/unexpected keys, shapes),
            states no AU list for a number of AUs other than the release's, or does not
            match ``aus``.
    """
    if isinstance(weights, str) and weights in REGISTRY:
        entry = get_pretrained(weights)
        path = entry.path()
        if entry.bundled and not path.is_file():
            raise WeightsError(
                f"this installation of aumaps has no bundled '{weights}' model ({path} is missing). Pass "
                "`--weights official` (the BMVC 2018 release) or the path of a checkpoint."
            )
        if not entry.bundled:
            path = download_official(path, url=url if weights == "official" else entry.url)
        mismatch = entry.mismatch(path)
        if mismatch:
            raise WeightsError(mismatch)
        try:
            ckpt = _load_file(path, map_location, aus)
        except WeightsError as err:
            if entry.bundled:
                raise
            raise WeightsError(f"{err} If the download was damaged, delete {path} and try again.") from err
        ckpt.card = {
            **{k: v for k, v in entry.card().items() if k in ("licence", "paper", "input", "source")},
            **ckpt.card,
            "registry": weights,
        }
        return ckpt
    return _load_file(Path(weights), map_location, aus)


def _load_file(path: Path, map_location: str | torch.device, aus: tuple[int, ...] | list[int] | None) -> Checkpoint:
    if not path.is_file():
        raise WeightsError(
            f"Weights file {path} does not exist. Pass the path of an aumaps checkpoint or of "
            f'{OFFICIAL_FILENAME}, or "official" (`--weights official`) to download the published model.'
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch.load raises many types for foreign or damaged files
        raise WeightsError(
            f"{path} is not a safe PyTorch checkpoint: it is not a checkpoint, it is corrupted, or it contains "
            f"arbitrary Python objects, which aumaps refuses to unpickle for safety ({_first_line(err)})."
        ) from err
    if not isinstance(payload, dict):
        raise WeightsError(f"{path} holds a {type(payload).__name__}, not a checkpoint dict.")

    if payload.get("format") == FORMAT:
        return _from_aumaps(path, payload, aus)
    return _from_state_dict_file(path, payload, aus)


def _first_line(err: BaseException) -> str:
    """A one-line summary of a ``torch.load`` error (its most informative line)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    detail = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
    detail = detail.split(" Please use ")[0]
    return f"{type(err).__name__}: {detail}" if detail else type(err).__name__


def _from_aumaps(path: Path, payload: dict[str, Any], aus: tuple[int, ...] | list[int] | None) -> Checkpoint:
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path} is an aumaps checkpoint of format version {version!r}; this aumaps reads up to version "
            f"{FORMAT_VERSION}. Upgrade aumaps."
        )
    arch, state_dict, file_aus = payload.get("arch"), payload.get("state_dict"), payload.get("aus")
    if not isinstance(arch, dict) or not isinstance(state_dict, dict) or not isinstance(file_aus, list):
        raise WeightsError(
            f"{path} is a damaged aumaps checkpoint: its 'arch', 'aus' or 'state_dict' entry is missing."
        )
    try:
        model = AUHourglass(**arch)
    except TypeError as err:
        raise WeightsError(f"{path} states an architecture this aumaps cannot build: {arch} ({err}).") from err
    file_aus = tuple(int(au) for au in file_aus)
    if len(file_aus) != arch.get("num_aus"):
        raise WeightsError(
            f"{path} is inconsistent: checkpoint has {arch.get('num_aus')} AU channels, "
            f"its AU list {list(file_aus)} has {len(file_aus)}."
        )
    _check_aus(path, len(file_aus), file_aus, aus)
    _load_state_dict(path, model, state_dict)
    return Checkpoint(model, file_aus, payload.get("codec"), dict(payload.get("card") or {}), path, "aumaps")


def _from_state_dict_file(path: Path, payload: dict[str, Any], aus: tuple[int, ...] | list[int] | None) -> Checkpoint:
    state_dict = payload.get("state_dict", payload)
    if (
        not isinstance(state_dict, dict)
        or not state_dict
        or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state_dict.items())
    ):
        keys = ", ".join(map(repr, list(payload)[:_MAX_LISTED]))
        raise WeightsError(
            f"{path} is neither an aumaps checkpoint nor a state dict (nor a dict with a 'state_dict' entry); "
            f"its top-level keys are {keys}."
        )
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    arch = _infer_arch(path, state_dict)
    num_aus = arch["num_aus"]
    known_aus = OFFICIAL_AUS if num_aus == len(OFFICIAL_AUS) else None
    _check_aus(path, num_aus, known_aus, aus)
    if known_aus is None:
        raise WeightsError(
            f"{path} has {num_aus} AU channels but does not say which AUs they are (only the BMVC 2018 release's "
            f"{len(OFFICIAL_AUS)} channels, AUs {list(OFFICIAL_AUS)}, are known). Use an aumaps checkpoint, "
            f"which states its AUs (see aumaps.weights.save_checkpoint)."
        )
    model = AUHourglass(**arch)
    _load_state_dict(path, model, state_dict)
    card = dict(OFFICIAL_CARD) if arch == _PUBLISHED_ARCH else {"name": path.name}
    return Checkpoint(model, OFFICIAL_AUS, None, card, path, "official")


def _infer_arch(path: Path, state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Architecture of an AU hourglass state dict (keys without ``module.``), from its keys/shapes."""
    for key in ("l0.weight", "conv4.conv3.weight"):
        if key not in state_dict:
            raise WeightsError(
                f"{path} does not look like an AU hourglass checkpoint (it has no {key!r} entry); expected the "
                f"BMVC 2018 release ({OFFICIAL_FILENAME}) or a file written by aumaps."
            )
    stacks = {int(m.group(1)) for key in state_dict if (m := re.match(r"m(\d+)\.", key))}
    levels = {int(m.group(1)) for key in state_dict if (m := re.match(r"m0\.b1_(\d+)\.", key))}
    if not stacks or not levels:
        raise WeightsError(
            f"{path} does not look like an AU hourglass checkpoint: it has no hourglass 'm0.b1_*' entries."
        )
    return {
        "num_aus": state_dict["l0.weight"].shape[0],
        "num_stacks": max(stacks) + 1,
        "depth": max(levels),
        "width": state_dict["conv4.conv3.weight"].shape[0],
    }


def _check_aus(
    path: Path, num_channels: int, file_aus: tuple[int, ...] | None, wanted: tuple[int, ...] | list[int] | None
) -> None:
    """Raise unless the requested AU list ``wanted`` (if any) fits the checkpoint's channels
    and, when the checkpoint states them, its AUs ``file_aus``."""
    if wanted is None:
        return
    wanted = [int(au) for au in wanted]
    if len(wanted) != num_channels:
        raise WeightsError(
            f"{path}: checkpoint has {num_channels} AU channels, the AU list expects {len(wanted)} "
            f"(AUs {wanted}). Use weights trained for those AUs."
        )
    if file_aus is None or tuple(wanted) == file_aus:
        return
    raise WeightsError(
        f"{path} was trained for AUs {list(file_aus)}, but AUs {wanted} were requested. "
        f"Use weights trained for those AUs, or ask for AUs {list(file_aus)}."
    )


def _load_state_dict(path: Path, model: AUHourglass, state_dict: dict[str, Any]) -> None:
    """Copy ``state_dict`` into ``model``: keys and shapes must match exactly, except that
    BatchNorm ``num_batches_tracked`` entries may be absent. Leaves ``model`` in eval mode."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        key
        for key in expected
        if key in state_dict
        and (not isinstance(state_dict[key], torch.Tensor) or state_dict[key].shape != expected[key].shape)
    ]
    if missing or unexpected or mismatched:
        raise WeightsError(_mismatch_message(path, model, expected, state_dict, missing, unexpected, mismatched))
    model.load_state_dict(state_dict, strict=False)
    model.eval()


def _mismatch_message(
    path: Path,
    model: AUHourglass,
    expected: dict[str, torch.Tensor],
    found: dict[str, Any],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> str:
    def listed(keys: list[str]) -> str:
        more = f" and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
        return ", ".join(keys[:_MAX_LISTED]) + more

    def shape(value: Any) -> str:
        return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__

    parts = [f"{path} does not fit the model {model.config}."]
    if mismatched:
        shapes = "; ".join(
            f"{key}: expected {shape(expected[key])}, found {shape(found[key])}" for key in mismatched[:_MAX_LISTED]
        )
        parts.append(f"Shape mismatch: {shapes}.")
        for key in mismatched:
            if re.fullmatch(r"(l\d+\.(weight|bias)|al\d+\.weight)", key) and isinstance(found[key], torch.Tensor):
                axis = 1 if key.startswith("al") else 0
                parts.append(
                    f"The checkpoint has {found[key].shape[axis]} AU channels, the model/AU list expects "
                    f"{expected[key].shape[axis]}."
                )
                break
    if missing:
        parts.append(f"Missing keys: {listed(missing)}.")
    if unexpected:
        parts.append(f"Unexpected keys: {listed(unexpected)}.")
    return " ".join(parts)
