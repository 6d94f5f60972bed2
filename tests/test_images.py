"""aumaps.images: files and arrays become H×W×3 uint8 RGB, like the original release's
``cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)``, or a clear error."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, features

from aumaps import images
from aumaps.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageTooLarge,
    _decode_with_opencv,
    _decode_with_pillow,
    check_pixels,
    decode_image,
    image_size,
    list_images,
    pixel_cap,
    read_image,
    to_rgb_uint8,
)

# Pillow's transpose that undoes EXIF orientation o (what ImageOps.exif_transpose applies).
_UPRIGHTING = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
}


def _save_with_orientation(upright: np.ndarray, path: Path, orientation: int) -> None:
    """Store ``upright`` so that a viewer honouring EXIF ``orientation`` shows it upright."""
    image = Image.fromarray(upright)
    if orientation != 1:
        undo = _UPRIGHTING[orientation]
        image = image.transpose(_INVERSE.get(undo, undo))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if path.suffix == ".jpg" else {}
    image.save(path, exif=exif, **options)


def _cv2_reference(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def portrait(astronaut: np.ndarray) -> np.ndarray:
    """A non-square 150×200 crop, so that a wrong rotation also changes the shape."""
    return np.ascontiguousarray(astronaut[:300:2, 50:450:2])


# ---------------------------------------------------------------- read_image: formats


def test_rgb_jpeg_equals_cv2_imread(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=90)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert image.flags.c_contiguous
    np.testing.assert_array_equal(image, _cv2_reference(path))
    assert np.abs(image.astype(int) - astronaut).mean() < 3  # RGB, not BGR


def test_grayscale_png_is_expanded(astronaut: np.ndarray, tmp_path: Path) -> None:
    grey = astronaut[..., 1].copy()
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    image = read_image(path)
    assert image.shape == (512, 512, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_rgba_png_drops_alpha(astronaut: np.ndarray, tmp_path: Path) -> None:
    alpha = np.zeros((512, 512), np.uint8)
    alpha[:, 256:] = 255  # half fully transparent: its colour must survive, not go black
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([astronaut, alpha])).save(path)
    np.testing.assert_array_equal(read_image(path), astronaut)


def test_16bit_grey_png_keeps_high_byte(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 257, 511, 32767, 32768, 65280, 65535]], np.uint16)
    path = tmp_path / "grey16.png"
    assert cv2.imwrite(str(path), values)
    image = read_image(path)
    expected = np.array([0, 0, 1, 1, 1, 127, 128, 255, 255], np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(image[0, :, channel], expected)
    np.testing.assert_array_equal(image, _cv2_reference(path))


def test_16bit_colour_png_is_rgb_and_scaled(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[..., 0] = 65535  # red
    rgb[..., 1] = 32768
    rgb[..., 2] = 511
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    image = read_image(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 0], [255, 128, 1])
    np.testing.assert_array_equal(image, _cv2_reference(path))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg_is_upright_like_imread(portrait: np.ndarray, tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"oriented{orientation}.jpg"
    _save_with_orientation(portrait, path, orientation)
    image = read_image(path)
    assert image.shape == portrait.shape
    assert np.abs(image.astype(int) - portrait).mean() < 4
    np.testing.assert_array_equal(image, _cv2_reference(path))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_other_formats(portrait: np.ndarray, tmp_path: Path, suffix: str, orientation: int) -> None:
    # OpenCV 5's imdecode honours EXIF in PNG, TIFF and WebP too; (its imread fails on
    # TIFFs with orientations 5-8, imdecode does not).
    path = tmp_path / f"oriented{orientation}{suffix}"
    _save_with_orientation(portrait, path, orientation)
    image = read_image(path)
    assert image.shape == portrait.shape
    if suffix == ".webp":  # lossy by default
        assert np.abs(image.astype(int) - portrait).mean() < 6
    else:
        np.testing.assert_array_equal(image, portrait)


def test_exif_rotation_is_not_ignored(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    _save_with_orientation(astronaut, path, 6)
    stored = np.asarray(Image.open(path).convert("RGB"))  # raw pixels, sideways
    image = read_image(path)
    assert np.abs(image.astype(int) - astronaut).mean() < 3
    assert np.abs(stored.astype(int) - astronaut).mean() > 30


def test_gif_first_frame(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "animated.gif"
    frames = [Image.fromarray(astronaut), Image.fromarray(255 - astronaut)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as gif:
        expected = np.asarray(gif.convert("RGB"))
    image = read_image(path)
    np.testing.assert_array_equal(image, expected)
    assert np.abs(image.astype(int) - astronaut).mean() < 10  # frame 0, not the negative


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_photo_formats(astronaut: np.ndarray, tmp_path: Path, suffix: str) -> None:
    # HEIC is what iPhones save by default (read through pillow-heif); AVIF through Pillow
    path = tmp_path / f"IMG_0001{suffix.upper()}"
    if suffix == ".heic":  # written by pillow-heif itself: aumaps registers its Pillow opener on its own
        pytest.importorskip("pillow_heif").from_pillow(Image.fromarray(astronaut)).save(path, quality=90)
    else:
        if not features.check("avif"):
            pytest.skip("this Pillow has no AVIF support")
        Image.fromarray(astronaut).save(path, quality=90)
    image = read_image(path)
    assert image.shape == astronaut.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - astronaut).mean() < 3  # lossy, but the same picture
    assert np.abs(image.astype(int) - astronaut[:, ::-1]).mean() > 20  # not mirrored or shuffled
    assert list_images([tmp_path]) == [path]  # found in folders, whatever the case of its suffix
    np.testing.assert_array_equal(decode_image(path.read_bytes()), image)  # uploads: by content


def test_pillow_fallback_for_format_opencv_lacks(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.tga"
    Image.fromarray(astronaut).save(path)
    assert _decode_with_opencv(path.read_bytes()) is None  # so the fallback is exercised
    np.testing.assert_array_equal(read_image(path), astronaut)


def _encode(array: np.ndarray, mode: str | None = None, **options: object) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["L", "LA", "P", "P+transparency", "RGBA", "1", "I;16", "RGB16"])
def test_pillow_fallback_matches_opencv(astronaut: np.ndarray, kind: str) -> None:
    """The fallback decodes every PNG flavour exactly as OpenCV's IMREAD_COLOR does."""
    if kind == "I;16":
        data = _encode(astronaut[..., 0].astype(np.uint16) * 256 + 100)
    elif kind == "RGB16":
        ok, encoded = cv2.imencode(".png", astronaut.astype(np.uint16) * 250 + 7)
        assert ok
        data = encoded.tobytes()
    elif kind == "P+transparency":
        data = _encode(astronaut, "P", transparency=3)
    else:
        data = _encode(astronaut, kind)
    expected = _decode_with_opencv(data)
    np.testing.assert_array_equal(_decode_with_pillow(data, Path("x.png")), expected)


def test_float_tiff_via_pillow(tmp_path: Path) -> None:
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16)
    path = tmp_path / "float.tif"
    Image.fromarray(ramp, mode="F").save(path)
    image = read_image(path)
    np.testing.assert_array_equal(image[..., 0], np.rint(ramp * 255).astype(np.uint8))

    Image.fromarray(ramp * 4, mode="F").save(tmp_path / "hdr.tif")
    with pytest.raises(ImageReadError, match=r"\[0, 1\]"):
        read_image(tmp_path / "hdr.tif")


def test_32bit_integer_tiff_treated_as_16bit(tmp_path: Path) -> None:
    values = np.array([[0, 256, 4096, 65535]], np.int32)
    path = tmp_path / "int.tif"
    Image.fromarray(values, mode="I").save(path)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 1, 16, 255])


def test_non_ascii_filename(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "visage_顔_лицо.png"
    Image.fromarray(astronaut).save(path)
    np.testing.assert_array_equal(read_image(path), astronaut)
    np.testing.assert_array_equal(read_image(str(path)), astronaut)


# ---------------------------------------------------------------- read_image: errors


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageReadError, match=r"notes\.jpg") as caught:
        read_image(path)
    assert caught.value.path == path
    assert "not an image" in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageReadError, match=r"empty\.png.*empty"):
        read_image(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"absent\.jpg.*no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_file_is_refused(astronaut: np.ndarray, tmp_path: Path, suffix: str, keep: float) -> None:
    """A partly decoded image (grey below the cut) would be silently wrong: refuse it.

    ``cv2.imread`` returns such partial JPEGs; ``cv2.imdecode`` in OpenCV 5 and Pillow
    both reject them, and so does read_image."""
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(astronaut).save(whole)
    data = whole.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match=f"cut{suffix}.*truncated"):
        read_image(path)


def test_jpeg_without_end_marker_is_refused(astronaut: np.ndarray, tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    Image.fromarray(astronaut).save(whole)
    data = whole.read_bytes()
    assert data.endswith(b"\xff\xd9")
    path = tmp_path / "no_eoi.jpg"
    path.write_bytes(data[:-2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path)


# ---------------------------------------------------------------- to_rgb_uint8


def test_to_rgb_uint8_passthrough_and_bgr(astronaut: np.ndarray) -> None:
    assert to_rgb_uint8(astronaut) is astronaut
    bgr = np.ascontiguousarray(astronaut[..., ::-1])
    out = to_rgb_uint8(bgr, channel_order="BGR")
    np.testing.assert_array_equal(out, astronaut)
    assert out.flags.c_contiguous


def test_to_rgb_uint8_grey_and_alpha(astronaut: np.ndarray) -> None:
    grey = astronaut[..., 0]
    for array in (grey, grey[..., None]):
        out = to_rgb_uint8(array)
        assert out.shape == (512, 512, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out[..., 2], grey)
    rgba = np.dstack([astronaut, np.zeros((512, 512), np.uint8)])
    np.testing.assert_array_equal(to_rgb_uint8(rgba), astronaut)
    bgra = np.dstack([astronaut[..., ::-1], np.full((512, 512), 9, np.uint8)])
    np.testing.assert_array_equal(to_rgb_uint8(bgra, "BGR"), astronaut)


def test_to_rgb_uint8_dtypes() -> None:
    sixteen = np.array([[[0, 256, 65535]]], np.uint16)
    np.testing.assert_array_equal(to_rgb_uint8(sixteen), [[[0, 1, 255]]])
    floats = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    np.testing.assert_array_equal(to_rgb_uint8(floats), [[[0, 128, 255]]])
    np.testing.assert_array_equal(to_rgb_uint8(floats.astype(np.float64)), [[[0, 128, 255]]])


def test_to_rgb_uint8_non_contiguous_input(astronaut: np.ndarray) -> None:
    view = astronaut[::2, ::-1]
    out = to_rgb_uint8(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), r"\(4, 4, 2\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"\(2, 4, 4, 3\)"),
        (np.zeros(12, np.uint8), r"\(12,\)"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((4, 4, 3), 255.0), r"\[0, 1\].*255"),
        (np.full((4, 4, 3), -0.5), r"\[0, 1\]"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.zeros((4, 4, 3), np.int64), r"int64.*\(4, 4, 3\)"),
        (np.zeros((4, 4, 3), bool), "bool"),
    ],
)
def test_to_rgb_uint8_errors(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_rgb_uint8(array)


def test_to_rgb_uint8_bad_channel_order(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="channel_order"):
        to_rgb_uint8(astronaut, channel_order="rgb")


# ---------------------------------------------------------------- list_images


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    names = [
        "frame_10.jpg", "frame_2.PNG", "frame_1.jpg", "Frame_3.jpeg", "notes.txt",
        ".hidden.jpg", "sub/frame_1.png", "sub/deeper/a.bmp", ".cache/frame_0.jpg",
    ]  # fmt: skip
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_list_images_natural_order_recursive(image_tree: Path) -> None:
    found = list_images(image_tree)
    relative = [path.relative_to(image_tree).as_posix() for path in found]
    assert relative == [
        "frame_1.jpg", "frame_2.PNG", "Frame_3.jpeg", "frame_10.jpg",
        "sub/deeper/a.bmp", "sub/frame_1.png",
    ]  # fmt: skip


def test_list_images_not_recursive(image_tree: Path) -> None:
    found = list_images([str(image_tree)], recursive=False)
    assert [path.name for path in found] == [
        "frame_1.jpg",
        "frame_2.PNG",
        "Frame_3.jpeg",
        "frame_10.jpg",
    ]


def test_list_images_keeps_explicit_files_and_order(image_tree: Path) -> None:
    notes = image_tree / "notes.txt"
    hidden = image_tree / ".hidden.jpg"
    found = list_images([notes, image_tree / "sub", hidden, notes])
    assert found == [notes, image_tree / "sub/deeper/a.bmp", image_tree / "sub/frame_1.png", hidden]


def test_list_images_missing_path(image_tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jpg"):
        list_images([image_tree, image_tree / "nowhere.jpg"])


def test_image_extensions_are_lower_case_with_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


# ---------------------------------------------------------------- the pixel cap, before decoding


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def grey_png(path: Path, width: int, height: int, value: int = 128, block_rows: int = 1000) -> Path:
    """A valid 8-bit grey PNG of ``width`` × ``height`` pixels all ``value``, written without
    ever holding its pixels: one block of rows is deflated once, each block ending in a full
    flush so that its compressed bytes stand alone, and repeated (30000 × 30000: 0.9 MB in
    under a second, a 0.9-gigapixel decompression bomb)."""
    row = b"\x00" + bytes([value]) * width  # filter type 0, then the samples
    full, rest = divmod(height, block_rows)
    block = row * block_rows
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = deflate.compress(row * rest) + deflate.flush()
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(row * rest, adler)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        out.write(_png_chunk(b"IDAT", b"\x78\xda"))  # the zlib header; the deflate blocks follow
        for _ in range(full):
            out.write(_png_chunk(b"IDAT", packed))
        out.write(_png_chunk(b"IDAT", last + struct.pack(">I", adler)))
        out.write(_png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def gigapixel_png(tmp_path_factory) -> Path:
    return grey_png(tmp_path_factory.mktemp("bomb") / "grey_30000.png", 30000, 30000)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoder call fails the test: a refusal must come from the header alone."""

    def forbidden(*args, **kwargs):
        raise AssertionError("an image over the cap was decoded")

    monkeypatch.setattr(images, "_decode_with_opencv", forbidden)
    monkeypatch.setattr(images, "_decode_with_pillow", forbidden)


def test_streamed_png_writer_writes_a_valid_png(tmp_path: Path) -> None:
    path = grey_png(tmp_path / "small.png", 300, 2500, value=77, block_rows=700)
    image = read_image(path)
    assert image.shape == (2500, 300, 3) and image.min() == image.max() == 77
    with Image.open(path) as opened:
        assert np.asarray(opened).min() == 77  # Pillow (its own zlib checks) agrees


def test_gigapixel_png_is_refused_from_its_header(gigapixel_png: Path, no_decoding) -> None:
    """The issue's 0.9-gigapixel PNG (under OpenCV's own 2^30 cap): 223 s and 24 GB before."""
    assert gigapixel_png.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        read_image(gigapixel_png)
    assert time.perf_counter() - start < 2
    error = caught.value
    assert (error.width, error.height, error.pixels, error.limit) == (30000, 30000, 900_000_000, DEFAULT_MAX_PIXELS)
    assert "grey_30000.png" in str(error) and "30000x30000" in str(error) and "--max-pixels" in str(error)
    assert isinstance(error, ImageReadError)  # callers that skip unreadable files skip it too
    with pytest.raises(ImageTooLarge):  # uploads, zip members, live frames: the same bytes
        decode_image(gigapixel_png.read_bytes(), "upload.png")
    assert image_size(gigapixel_png.read_bytes()) == (30000, 30000)


def _write_format(array: np.ndarray, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".heic":
        pytest.importorskip("pillow_heif").from_pillow(Image.fromarray(array)).save(path, quality=90)
    elif suffix == ".avif":
        if not features.check("avif"):
            pytest.skip("this Pillow has no AVIF support")
        Image.fromarray(array).save(path)
    elif suffix in (".pfm", ".hdr"):  # OpenCV's float formats, which Pillow does not read
        assert cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR).astype(np.float32) / 255)
    elif suffix in (".pam", ".jp2", ".ppm"):
        assert cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
    else:
        Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize(
    "suffix",
    [".png", ".jpg", ".webp", ".gif", ".tif", ".bmp", ".jp2", ".ppm", ".tga", ".heic", ".avif", ".pfm", ".pam", ".hdr"],
)
def test_pixel_cap_is_read_from_every_formats_header(
    astronaut: np.ndarray, tmp_path: Path, suffix: str, monkeypatch
) -> None:
    picture = np.ascontiguousarray(astronaut[:40, :60])  # 60 x 40 = 2400 pixels
    path = _write_format(picture, tmp_path / f"small{suffix}")
    assert image_size(path.read_bytes()) == (60, 40)
    assert read_image(path, max_pixels=2400).shape == (40, 60, 3)  # at the cap: decoded
    monkeypatch.setattr(images, "_decode_with_opencv", lambda data: pytest.fail("decoded"))
    monkeypatch.setattr(images, "_decode_with_pillow", lambda data, name: pytest.fail("decoded"))
    with pytest.raises(ImageTooLarge, match=rf"small\{suffix}.*60x40 pixels"):
        read_image(path, max_pixels=2399)
    with pytest.raises(ImageTooLarge):
        decode_image(path.read_bytes(), "frame 3", max_pixels=2399)


def test_jpeg_declaring_a_huge_size_is_not_decoded(astronaut: np.ndarray, no_decoding) -> None:
    """A small JPEG whose frame header claims 32000 x 32000 (1.02 gigapixels: under OpenCV's
    2^30, so OpenCV would allocate 3 GB for it)."""
    data = bytearray(cv2.imencode(".jpg", astronaut)[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 32000, 32000)  # height, width
    with pytest.raises(ImageTooLarge, match="32000x32000"):
        decode_image(bytes(data), "frame 9")


def test_content_without_a_known_header_is_never_decoded(no_decoding) -> None:
    with pytest.raises(ImageReadError, match="not an image") as caught:
        decode_image(b"\x00\x01 random bytes, no image header" * 30, "mystery.bin")
    assert not isinstance(caught.value, ImageTooLarge)


def test_pixel_cap_from_the_environment(astronaut: np.ndarray, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(astronaut).save(path)  # 512 x 512
    assert pixel_cap() == DEFAULT_MAX_PIXELS == 100_000_000
    monkeypatch.setenv("AUMAPS_MAX_PIXELS", "262_144")
    assert read_image(path).shape == (512, 512, 3)
    monkeypatch.setenv("AUMAPS_MAX_PIXELS", "2e5")
    with pytest.raises(ImageTooLarge, match="512x512"):
        read_image(path)
    assert read_image(path, max_pixels=300_000).shape == (512, 512, 3)  # an argument wins
    monkeypatch.setenv("AUMAPS_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="AUMAPS_MAX_PIXELS"):
        pixel_cap()


def test_check_pixels_for_sizes_read_elsewhere() -> None:
    check_pixels(10_000, 10_000, "clip.mp4")  # exactly the default cap
    with pytest.raises(ImageTooLarge, match=r"clip\.mp4.*10001x10000"):
        check_pixels(10_001, 10_000, "clip.mp4")
    with pytest.raises(ImageTooLarge, match="frame 4"):
        check_pixels(1920, 1080, "frame 4", limit=1920 * 1079)


def test_predict_refuses_the_gigapixel_png_names_it_and_goes_on(
    gigapixel_png: Path, grace_hopper_path: Path, tiny_weights: Path, tmp_path: Path, capsys
) -> None:
    from aumaps.cli import main

    out = tmp_path / "results.csv"
    start = time.perf_counter()
    status = main(
        [
            "predict",
            str(gigapixel_png),
            str(grace_hopper_path),
            "--weights",
            str(tiny_weights),
            "--backend",
            "torch",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    seconds = time.perf_counter() - start
    assert status == 1 and seconds < 10, (status, seconds)
    err = capsys.readouterr().err
    assert "grey_30000.png" in err and "30000x30000" in err
    import pandas as pd

    table = pd.read_csv(out)
    assert table["file"].tolist() == [str(grace_hopper_path)] and table["success"].tolist() == [1]
