"""Photos as every stage reads them: what format the bytes are (by their magic numbers, never a
file name or a client's content type), and the image turned upright as its EXIF orientation says.

    fmt = sniff_format(data)                 # "JPEG", "PNG", ... or None
    image = upright_rgb(Path("card.jpg"))    # EXIF rotation applied, RGB
"""

from __future__ import annotations

import struct
from pathlib import Path

from PIL import Image

# Magic numbers of the formats we accept: a file that starts like one but does not decode is
# a corrupt image, one that starts like none is not an image at all.
# The format each image file name's suffix claims; its bytes must agree (ingest checks them).
SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP",
                  ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "BMP": (b"BM",),
    "WEBP": (b"RIFF",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
}
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def sniff_format(data: bytes) -> str | None:
    """The format `data` starts like (a key of `SIGNATURES`), None when it starts like none:
    the bytes, not a file name or a client's content type, say what a file is."""
    for name, signatures in SIGNATURES.items():
        starts_like = any(data.startswith(signature) for signature in signatures)
        if starts_like and (name != "WEBP" or data[8:12] == b"WEBP"):
            return name
    return None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8); 1 when the EXIF block is missing or does not parse, since
    the pixels are what a camera without EXIF would have delivered."""
    try:
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError, struct.error):
        return 1
    return orientation if orientation in _TRANSPOSE else 1


def turn_upright(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned as its EXIF orientation says. Not `ImageOps.exif_transpose`: that also
    rewrites the EXIF block and raises on a tag of an unexpected type."""
    method = _TRANSPOSE[orientation]
    return image if method is None else image.transpose(method)


def upright_rgb(path: Path) -> Image.Image:
    """The image at `path` as the stored copy should hold it: EXIF rotation applied, RGB."""
    with Image.open(path) as image:
        return turn_upright(image, exif_orientation(image)).convert("RGB")
