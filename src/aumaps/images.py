"""Reading user images into the one layout the rest of aumaps works with.

Every image handed to the face pipeline is an ``H×W×3`` C-contiguous ``uint8`` array in
**RGB** order. :func:`read_image` produces it from a file exactly as the original release
did (``cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)``: EXIF orientation applied,
16-bit samples reduced to their high byte, grey expanded to three channels, alpha dropped),
falls back to Pillow for files OpenCV cannot decode, and raises :class:`ImageReadError`
rather than returning a wrong image.

Every decode is preceded by a look at the file's header (Pillow's, which reads the size
without decoding; PNG, JPEG, WebP, GIF, TIFF, BMP, HEIC, AVIF, JPEG 2000...; and the text
headers of PFM, PAM and Radiance HDR): an image of more than :func:`pixel_cap` pixels
(:data:`DEFAULT_MAX_PIXELS`, 100 megapixels, unless ``AUMAPS_MAX_PIXELS`` or a
``max_pixels`` argument says otherwise) is refused with :class:`ImageTooLarge` before any
memory is spent on its pixels: a few hundred kilobytes of PNG can declare a gigapixel.
:func:`check_pixels` applies the same cap to sizes read elsewhere (video frames).
:func:`to_rgb_uint8` does the same normalisation for
arrays passed through the Python API, and :func:`list_images` turns command-line paths into
the list of files to process.
"""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS_ENV",
    "ImageReadError",
    "ImageTooLarge",
    "check_pixels",
    "decode_image",
    "grey_signature",
    "image_size",
    "list_images",
    "pixel_cap",
    "read_image",
    "to_rgb_uint8",
]

#: File name suffixes (lower case, with the dot) that :func:`list_images` picks up inside
#: folders. Files named explicitly are read whatever their suffix.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png", ".bmp", ".dib",
        ".tif", ".tiff", ".webp", ".gif", ".avif", ".heic", ".heif",
        ".ppm", ".pgm", ".pbm", ".pnm",
        ".jp2", ".j2k",
    }
)  # fmt: skip

PathLike = str | os.PathLike[str]

#: The most pixels (width × height) of an image aumaps decodes unless told otherwise:
#: 100 megapixels, above every phone's default photo and OpenCV-like in spirit (OpenCV's own
#: limit, 2^30, lets a 0.9-gigapixel PNG through, which needs some 24 GB to decode here).
DEFAULT_MAX_PIXELS = 100_000_000
#: The environment variable that sets another cap (a whole number of pixels, ``2e8`` allowed).
MAX_PIXELS_ENV = "AUMAPS_MAX_PIXELS"


class ImageReadError(ValueError):
    """A file could not be read as an image.

    Attributes:
        path: The file that was asked for.
        reason: Why it could not be read, in words.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


class ImageTooLarge(ImageReadError):
    """An image declares more pixels than the cap (:func:`pixel_cap`); nothing was decoded.

    Attributes:
        width, height: its size as its header states it (``None`` where only the pixel
            count is known).
        pixels: width × height.
        limit: the cap it is over.
    """

    def __init__(
        self, path: PathLike, pixels: int, limit: int, width: int | None = None, height: int | None = None
    ) -> None:
        self.width, self.height, self.pixels, self.limit = width, height, int(pixels), int(limit)
        size = f"{width}x{height} pixels ({pixels / 1e6:,.0f} megapixels)" if width else f"{pixels:,} pixels"
        super().__init__(
            path,
            f"the image is {size}, more than the {limit / 1e6:,.0f} megapixels aumaps decodes "
            f"(a larger cap: --max-pixels N, or the environment variable {MAX_PIXELS_ENV})",
        )


def pixel_cap() -> int:
    """The pixel cap in force: ``$AUMAPS_MAX_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        ValueError: the variable is not a positive number.
    """
    value = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        cap = int(float(value))
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {value!r}")
    return cap


def check_pixels(width: int, height: int, name: PathLike, limit: int | None = None) -> None:
    """Refuse an image (or a video's frames) of ``width`` × ``height`` over the pixel cap,
    before anything is decoded.

    Args:
        width, height: the size its header declares.
        name: how the message refers to it (a file, ``'clip.mp4'``, ``'frame 12'``).
        limit: the cap (:func:`pixel_cap` when ``None``).

    Raises:
        ImageTooLarge: ``width * height`` is over the cap.
    """
    limit = pixel_cap() if limit is None else int(limit)
    pixels = int(width) * int(height)
    if pixels > limit:
        raise ImageTooLarge(name, pixels, limit, int(width), int(height))


def image_size(data: bytes, name: PathLike = "<bytes>") -> tuple[int, int] | None:
    """``(width, height)`` of an encoded image read from its header alone (nothing decoded),
    or ``None`` when neither Pillow nor the PFM/PAM/Radiance HDR readers know its format.

    Raises:
        ImageTooLarge: Pillow refuses to open even the header (beyond its own
            decompression-bomb limit) and its format's reader cannot be asked directly.
    """
    _register_pillow_plugins()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                return int(opened.size[0]), int(opened.size[1])
        except Image.DecompressionBombError:  # beyond Pillow's own limit: ask its format's reader
            size = _pillow_plugin_size(data)
            if size is None:
                limit = 2 * int(Image.MAX_IMAGE_PIXELS or 0)
                raise ImageTooLarge(name, limit + 1, limit) from None
            return size
        except Exception:  # not Pillow's, or a header it cannot parse: the text formats below
            pass
    return _text_header_size(data)


def _pillow_plugin_size(data: bytes) -> tuple[int, int] | None:
    """The size from Pillow's format readers (registered with ``Image.register_open``), asked
    in ``Image.open``'s order without its decompression-bomb refusal; they read headers only."""
    Image.init()
    prefix = data[:16]
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):
                continue
            with factory(io.BytesIO(data), "") as opened:
                return int(opened.size[0]), int(opened.size[1])
        except Exception:  # not this format: the next
            continue
    return None


_PFM = re.compile(rb"P[Ff]\s+(\d+)\s+(\d+)\s")
_PAM_FIELD = re.compile(rb"^(WIDTH|HEIGHT)\s+(\d+)\s*$", re.MULTILINE)
_HDR_SIZE = re.compile(rb"^[-+]([XY])\s+(\d+)\s+[-+]([XY])\s+(\d+)\s*$", re.MULTILINE)


def _text_header_size(data: bytes) -> tuple[int, int] | None:
    """The size in the text headers of the formats OpenCV reads and Pillow does not: PFM,
    PAM (``P7``) and Radiance HDR (``#?RADIANCE``/``#?RGBE``); ``None`` for anything else."""
    head = data[:4096]
    if (found := _PFM.match(head)) is not None:
        return int(found.group(1)), int(found.group(2))
    if head.startswith(b"P7\n") and b"ENDHDR" in head:
        fields = dict(_PAM_FIELD.findall(head.split(b"ENDHDR", 1)[0]))
        if {b"WIDTH", b"HEIGHT"} <= fields.keys():
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    if head.startswith((b"#?RADIANCE", b"#?RGBE")) and (found := _HDR_SIZE.search(head)) is not None:
        sizes = {found.group(1): int(found.group(2)), found.group(3): int(found.group(4))}
        if sizes.keys() == {b"X", b"Y"}:
            return sizes[b"X"], sizes[b"Y"]
    return None


def read_image(path: PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB.

    The file's bytes are decoded with ``cv2.imdecode(..., IMREAD_COLOR)``, which gives
    the same pixels as the original release's ``cv2.imread`` (EXIF orientation applied,
    16-bit samples shifted right by 8 bits, grey expanded, alpha dropped) while also
    accepting paths that are not ASCII. Files OpenCV cannot decode are passed to Pillow
    with the same conventions. Truncated files are refused, not decoded partially.

    Args:
        path: The image file.
        max_pixels: the pixel cap (:func:`pixel_cap`, 100 megapixels, when ``None``),
            checked on the header before decoding.

    Returns:
        ``H×W×3`` C-contiguous ``uint8`` array, RGB.

    Raises:
        ImageTooLarge: The image has more pixels than the cap (nothing decoded).
        ImageReadError: The file is missing, a directory, empty, not an image in a format
            OpenCV or Pillow reads, truncated or otherwise corrupt.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(path, "it is a directory")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as error:
        raise ImageReadError(path, error.strerror or str(error)) from None
    if not data:
        raise ImageReadError(path, "the file is empty")
    return decode_image(data, path, max_pixels)


def decode_image(data: bytes, name: PathLike = "<bytes>", max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file's contents (uploads, archive members) exactly as :func:`read_image`
    reads a file: OpenCV first, Pillow for what OpenCV cannot decode; the type is decided by the
    content, never by a name.

    Args:
        data: the encoded image.
        name: how error messages refer to it.
        max_pixels: the pixel cap (:func:`pixel_cap` when ``None``), checked on the header
            before anything is decoded.

    Returns:
        ``H×W×3`` C-contiguous ``uint8`` array, RGB.

    Raises:
        ImageTooLarge: more pixels than the cap (nothing decoded).
        ImageReadError: empty, not an image OpenCV or Pillow reads, truncated or corrupt.
    """
    if not data:
        raise ImageReadError(Path(name), "the file is empty")
    limit = pixel_cap() if max_pixels is None else int(max_pixels)
    try:
        size = image_size(data, name)
    except ImageTooLarge as error:  # beyond Pillow's limit, size unknown
        raise ImageTooLarge(name, error.pixels, min(limit, error.limit)) from None
    if size is None:  # no header says how large it is: nothing is decoded blind
        raise ImageReadError(Path(name), "not an image, or in a format neither OpenCV nor Pillow can read")
    check_pixels(*size, name, limit)
    image = _decode_with_opencv(data)
    if image is None:
        image = _decode_with_pillow(data, Path(name))
    return image


def _decode_with_opencv(data: bytes) -> np.ndarray | None:
    """Decode encoded image bytes as OpenCV's ``imread`` would; ``None`` if it cannot.

    Returns:
        ``H×W×3`` ``uint8`` RGB array, or ``None``.
    """
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_with_pillow(data: bytes, path: Path) -> np.ndarray:
    """Decode encoded image bytes with Pillow, following OpenCV's ``IMREAD_COLOR`` rules.

    The first frame is used, EXIF orientation is applied, palettes are expanded, alpha is
    dropped and 16-bit samples keep their high byte.

    Args:
        data: The file's contents.
        path: The file, for error messages.

    Returns:
        ``H×W×3`` C-contiguous ``uint8`` RGB array.

    Raises:
        ImageReadError: Pillow does not recognise the data, or cannot decode it.
    """
    _register_pillow_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # aumaps' own cap was checked
            with Image.open(io.BytesIO(data)) as opened:
                upright = ImageOps.exif_transpose(opened)
                upright.load()
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image, or in a format neither OpenCV nor Pillow can read") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(path, str(error)) from None
    except Exception as error:  # Pillow's decoders of bad data raise many types
        raise ImageReadError(path, f"truncated or corrupt image data ({error})") from None
    try:
        return _pillow_to_rgb(upright)
    except ValueError as error:
        raise ImageReadError(path, str(error)) from None


@functools.cache
def _register_pillow_plugins() -> None:
    """Teach Pillow HEIC/HEIF (the default photo format of iPhones) through pillow-heif, once."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # an install without it: such files are refused as unreadable
        return
    register_heif_opener()


def _pillow_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to ``H×W×3`` ``uint8`` RGB.

    Raises:
        ValueError: Integer samples beyond 16 bits, or floating-point samples outside
            [0, 1].
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        samples = np.asarray(image)
        if samples.size and (samples.min() < 0 or samples.max() > 0xFFFF):
            raise ValueError(f"integer samples outside the 16-bit range in mode {mode}")
        return to_rgb_uint8(samples.astype(np.uint16))
    if mode == "F":
        return to_rgb_uint8(np.asarray(image))
    if mode in ("1", "L", "LA", "La"):
        return to_rgb_uint8(np.asarray(image.convert("L")))
    return to_rgb_uint8(np.asarray(image.convert("RGB")))


def grey_signature(pixels: np.ndarray, min_norm: float = 0.0) -> np.ndarray | None:
    """An ``H×W×3`` picture as a flat, zero-mean, unit-norm grey vector (channel mean), so that
    the dot product of two signatures is their correlation; None when the picture is flatter
    than ``min_norm`` (the norm before scaling)."""
    grey = pixels.astype(np.float32).mean(axis=2).ravel()
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return grey / norm if norm > min_norm else None


def to_rgb_uint8(array: np.ndarray, channel_order: str = "RGB") -> np.ndarray:
    """Normalise an image array to ``H×W×3`` C-contiguous ``uint8`` RGB.

    Args:
        array: ``H×W`` or ``H×W×1`` grey, ``H×W×3`` colour, or ``H×W×4`` colour with an
            alpha channel (dropped), of dtype ``uint8``, ``uint16`` (reduced to the high
            byte, as OpenCV does) or floating point with values in [0, 1] (scaled by 255
            and rounded).
        channel_order: ``"RGB"``, or ``"BGR"`` for arrays coming from OpenCV (``BGRA``
            for four channels).

    Returns:
        ``H×W×3`` C-contiguous ``uint8`` RGB array. When ``array`` already is one, it is
        returned as is, without a copy.

    Raises:
        ValueError: Another shape or dtype, floating-point values outside [0, 1] (or not
            finite), or an unknown ``channel_order``.
    """
    if channel_order not in ("RGB", "BGR"):
        raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}")
    array = np.asarray(array)
    shape = array.shape
    if array.ndim == 3 and shape[2] in (3, 4):
        colour = array if shape[2] == 3 else array[..., :3]
        if channel_order == "BGR":
            colour = colour[..., ::-1]
    elif array.ndim == 2 or (array.ndim == 3 and shape[2] == 1):
        grey = array.reshape(shape[:2])
        colour = np.broadcast_to(grey[..., None], (*shape[:2], 3))
    else:
        raise ValueError(f"expected an image of shape HxW, HxWx1, HxWx3 or HxWx4, got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"the image is empty (shape {shape})")

    if colour.dtype == np.uint8:
        converted = colour
    elif colour.dtype == np.uint16:
        converted = (colour >> 8).astype(np.uint8)
    elif np.issubdtype(colour.dtype, np.floating):
        if not np.all(np.isfinite(colour)):
            raise ValueError(f"the image of shape {shape} holds NaN or infinite values")
        low, high = float(colour.min()), float(colour.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"floating-point images must hold values in [0, 1]; the image of shape "
                f"{shape} spans [{low:g}, {high:g}]"
            )
        converted = np.rint(colour * 255.0).astype(np.uint8)
    else:
        raise ValueError(
            f"unsupported dtype {array.dtype} for the image of shape {shape}: "
            "expected uint8, uint16 or floating point in [0, 1]"
        )
    return np.ascontiguousarray(converted)


def list_images(paths: PathLike | Iterable[PathLike], recursive: bool = True) -> list[Path]:
    """Expand files and folders into the list of images to process.

    Folders contribute the files whose suffix is in :data:`IMAGE_EXTENSIONS` (case
    insensitive), skipping hidden files and folders (names starting with ``.``), in
    natural order (``frame_2`` before ``frame_10``). Files named explicitly are kept
    whatever their suffix, so that a file that is not an image is reported when it is
    read instead of being dropped silently. The result keeps the order of ``paths``,
    each path listed once.

    Args:
        paths: One path, or several.
        recursive: Whether to descend into sub-folders of the folders given.

    Returns:
        The image files.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, None] = {}
    for entry in map(Path, paths):
        if entry.is_dir():
            found.update(dict.fromkeys(_images_in_folder(entry, recursive)))
        elif entry.exists():
            found[entry] = None
        else:
            raise FileNotFoundError(f"no such file or directory: '{entry}'")
    return list(found)


def _images_in_folder(folder: Path, recursive: bool) -> list[Path]:
    """Image files inside ``folder``, hidden entries skipped, in natural order."""
    images: list[Path] = []
    for root, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if recursive and not name.startswith(".")]
        images.extend(
            Path(root, name)
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    return sorted(images, key=lambda image: _natural_key(image.relative_to(folder)))


def _natural_key(relative: Path) -> tuple[tuple[list[str | int], ...], str]:
    """Sort key comparing digit runs as numbers, text without case, part by part."""
    parts = tuple(
        [int(chunk) if index % 2 else chunk.casefold() for index, chunk in enumerate(chunks)]
        for chunks in (re.split(r"(\d+)", part) for part in relative.parts)
    )
    return parts, relative.as_posix()
