"""Stored images lose their metadata (EXIF with a GPS position, comments, PNG text), never a
pixel: the stripped file decodes to exactly the same array."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from components.ingest.metadata import MetadataError, strip_metadata


def _photo() -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def test_a_jpeg_loses_its_exif_and_comment_and_keeps_its_pixels() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"            # Make
    exif[0x013B] = "Ada Lovelace"            # Artist
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}    # GPS latitude
    buffer = io.BytesIO()
    _photo().save(buffer, "JPEG", exif=exif, comment=b"shot at home", quality=90,
                  icc_profile=b"\x00" * 128)
    original = buffer.getvalue()

    stripped = strip_metadata(original, "JPEG")

    assert b"Ada Lovelace" in original and b"shot at home" in original
    assert b"Ada Lovelace" not in stripped and b"shot at home" not in stripped
    reopened = Image.open(io.BytesIO(stripped))
    assert not reopened.getexif() and reopened.info.get("icc_profile") == b"\x00" * 128
    assert np.array_equal(np.asarray(reopened), np.asarray(Image.open(io.BytesIO(original))))


def test_a_png_loses_its_text_chunks_and_keeps_its_pixels() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Ada Lovelace")
    text.add_itxt("Comment", "shot at home")
    buffer = io.BytesIO()
    _photo().save(buffer, "PNG", pnginfo=text)
    original = buffer.getvalue()

    stripped = strip_metadata(original, "PNG")

    assert b"Ada Lovelace" in original and b"Ada Lovelace" not in stripped
    reopened = Image.open(io.BytesIO(stripped))
    assert "Author" not in reopened.info and "Comment" not in reopened.info
    assert np.array_equal(np.asarray(reopened), np.asarray(Image.open(io.BytesIO(original))))


def test_other_formats_pass_through_and_a_broken_header_is_named() -> None:
    assert strip_metadata(b"BM1234", "BMP") == b"BM1234"
    with pytest.raises(MetadataError, match="not a JPEG"):
        strip_metadata(b"\x89PNG", "JPEG")
