"""Metadata out of stored images, pixels untouched: camera EXIF (GPS position, serial numbers,
owner names), XMP, IPTC and comments are personal data a grading dataset has no use for.

    clean = strip_metadata(jpeg_bytes, "JPEG")     # same compressed pixels, no APP1 / COM

JPEG segments and PNG chunks are dropped by type, never re-encoded: what defines the pixels and
their colours (JFIF, the ICC profile, Adobe's colour transform; PNG's palette, transparency,
gamma and colour chunks) stays, so the stored image decodes to exactly the same pixels.
"""

from __future__ import annotations

import struct

# JPEG markers kept before the image data: APP0 (JFIF), APP2 (ICC profile), APP14 (Adobe colour
# transform); every other APPn and COM carries metadata.
_JPEG_APPS, _JPEG_KEPT_APPS, _JPEG_COMMENT = range(0xE0, 0xF0), {0xE0, 0xE2, 0xEE}, 0xFE
_JPEG_START_OF_SCAN = 0xDA
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


class MetadataError(ValueError):
    """The image's structure does not parse (it was checked to decode, so this is rare)."""


def strip_metadata(data: bytes, image_format: str) -> bytes:
    """`data` without metadata segments (JPEG, PNG); other formats are returned as they are
    (ingest re-encodes them to PNG, which carries none)."""
    if image_format == "JPEG":
        return _strip_jpeg(data)
    if image_format == "PNG":
        return _strip_png(data)
    return data


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG: no start-of-image marker")
    kept, position = [data[:2]], 2
    while position < len(data):
        if data[position] != 0xFF:
            raise MetadataError(f"JPEG marker expected at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == _JPEG_START_OF_SCAN:  # the compressed image follows: keep all of it
            kept.append(data[position:])
            break
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            kept.append(data[position:position + 2])
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        segment = data[position:position + 2 + length]
        dropped = (marker in _JPEG_APPS and marker not in _JPEG_KEPT_APPS) \
            or marker == _JPEG_COMMENT
        if not dropped:
            kept.append(segment)
        position += 2 + length
    return b"".join(kept)


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise MetadataError("not a PNG: no signature")
    kept, position = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        chunk = data[position:position + 12 + length]  # length, type, data, CRC
        if kind not in _PNG_METADATA:
            kept.append(chunk)
        position += 12 + length
        if kind == b"IEND":
            break
    return b"".join(kept)
