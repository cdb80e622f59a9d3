"""Uploads: a good photo comes back upright in BGR, and every bad one is refused with the HTTP
status and a message that names what is wrong, a bomb and a huge upload before decoding."""

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.serving.uploads import RejectReason, UploadLimits, UploadRejected, decode_upload
from tests.batches import write_truncated_png

LIMITS = UploadLimits()


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _red_over_blue(width: int = 64, height: int = 48) -> Image.Image:
    """Top half pure red, bottom half pure blue: orientation and channel order are visible."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, :, 0] = 255
    pixels[height // 2:, :, 2] = 255
    return Image.fromarray(pixels, "RGB")


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose IHDR (with a correct CRC) claims `width` x `height`: a bomb's header."""
    data = bytearray(_encoded(_red_over_blue(), "PNG"))
    start = 8 + 4  # signature, then the IHDR chunk's length
    body = b"IHDR" + struct.pack(">II", width, height) + bytes(data[start + 12:start + 17])
    data[start:start + 17] = body
    data[start + 17:start + 21] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def _refused(data: bytes, limits: UploadLimits = LIMITS, name: str = "upload") -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        decode_upload(data, limits, name)
    return caught.value


def test_a_png_comes_back_as_bgr_pixels() -> None:
    bgr = decode_upload(_encoded(_red_over_blue(), "PNG"), LIMITS)

    assert bgr.shape == (48, 64, 3) and bgr.dtype == np.uint8
    assert tuple(bgr[0, 0]) == (0, 0, 255)  # red, in OpenCV's B, G, R order
    assert tuple(bgr[-1, 0]) == (255, 0, 0)


def test_a_jpeg_decodes() -> None:
    bgr = decode_upload(_encoded(_red_over_blue(), "JPEG", quality=95), LIMITS)
    assert bgr.shape == (48, 64, 3)
    assert bgr[0, 0, 2] > 200 and bgr[0, 0, 0] < 60


def test_an_exif_rotated_jpeg_comes_back_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: rotate 90 degrees clockwise to view
    stored = _red_over_blue().transpose(Image.Transpose.ROTATE_90)  # red now on the left
    data = _encoded(stored, "JPEG", quality=95, exif=exif)

    bgr = decode_upload(data, LIMITS)

    assert bgr.shape == (48, 64, 3)  # upright again: wider than high
    assert bgr[2, 32, 2] > 200 and bgr[-3, 32, 0] > 200  # red on top, blue below


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_modes_become_three_channels(mode: str) -> None:
    image = _red_over_blue().convert(mode)
    data = _encoded(image, "JPEG" if mode == "CMYK" else "PNG")

    bgr = decode_upload(data, LIMITS)

    assert bgr.shape == (48, 64, 3) and bgr.dtype == np.uint8


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert tuple(decode_upload(_encoded(image, "PNG"), LIMITS)[0, 0]) == (255, 255, 255)


def test_an_upload_over_the_byte_limit_is_413_with_its_size() -> None:
    data = _encoded(_red_over_blue(), "PNG")
    rejected = _refused(data + b"\x00" * 31_200_000)

    assert rejected.status == 413 and rejected.reason == RejectReason.TOO_LARGE
    assert rejected.message == "upload is 31.2 MB, over the 20.0 MB limit"


def test_an_empty_upload_is_refused() -> None:
    rejected = _refused(b"", name="card.jpg")
    assert rejected.status == 413 and rejected.message == "card.jpg is empty (0 bytes)"


def test_a_text_file_is_415_naming_the_accepted_formats() -> None:
    rejected = _refused(b"item_id,grade\ns-1,9\n", name="grades.csv")

    assert rejected.status == 415 and rejected.reason == RejectReason.NOT_AN_IMAGE
    assert rejected.message.startswith("grades.csv is not an image")
    assert "JPEG" in rejected.message and "PNG" in rejected.message


def test_a_truncated_image_is_422_and_says_truncated(tmp_path: Path) -> None:
    data = write_truncated_png(tmp_path / "half.png").read_bytes()
    rejected = _refused(data)
    assert rejected.status == 422 and "truncated" in rejected.message


def test_a_truncated_jpeg_is_422() -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    data = _encoded(Image.fromarray(noisy), "JPEG", quality=90)
    rejected = _refused(data[: len(data) // 2])
    assert rejected.status == 422 and rejected.reason == RejectReason.CORRUPT


def test_a_jpeg_of_garbage_is_422() -> None:
    rejected = _refused(b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(2000))
    assert rejected.status == 422 and "JPEG" in rejected.message


def test_a_bomb_is_413_from_its_header_without_decoding() -> None:
    data = _png_claiming(20_000, 20_000)  # 400 million pixels, 1.2 GB decoded

    started = time.perf_counter()
    rejected = _refused(data)

    assert time.perf_counter() - started < 2.0
    assert rejected.status == 413 and rejected.reason == RejectReason.TOO_MANY_PIXELS
    assert "before decoding" in rejected.message


def test_an_image_over_our_pixel_limit_but_under_pils_reports_its_pixel_count() -> None:
    rejected = _refused(_png_claiming(8000, 6000))  # 48 million: PIL would decode it

    assert rejected.status == 413 and rejected.reason == RejectReason.TOO_MANY_PIXELS
    assert "8000 x 6000 = 48,000,000 pixels" in rejected.message


def test_a_tiny_image_is_422() -> None:
    rejected = _refused(_encoded(_red_over_blue(100, 20), "PNG"))
    assert rejected.status == 422 and rejected.reason == RejectReason.TOO_SMALL
    assert "100 x 20" in rejected.message
