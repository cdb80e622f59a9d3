"""Turn the bytes a client uploads into the upright BGR image the grader reads, or refuse them
with the HTTP status and a sentence that says what is wrong.

    try:
        bgr = decode_upload(await file.read(), UploadLimits(), name=file.filename)
    except UploadRejected as rejected:
        return JSONResponse({"detail": rejected.message}, status_code=rejected.status)

The checks run cheapest first: size in bytes, magic bytes, then the pixel count from the header,
so neither a huge upload nor a decompression bomb is ever decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from components.vision.photos import SIGNATURES, exif_orientation, sniff_format, turn_upright

_MB = 1_000_000
_WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class UploadLimits:
    """What the service accepts: at most `max_bytes` and `max_pixels` (width x height, read from
    the header), and at least `min_side` pixels on each side."""

    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    min_side: int = 32


class RejectReason(StrEnum):
    """Why an upload was refused: a short stable name for counters and logs."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt"
    TOO_SMALL = "too_small"


class UploadRejected(ValueError):
    """An upload the service refuses: `status` is the HTTP status to answer, `message` says why,
    `reason` names the rule for counting (a `RejectReason` when `decode_upload` refused it)."""

    def __init__(self, status: int, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:
        """Pickled with all three fields: a photo worker's refusal reaches the service whole."""
        return type(self), (self.status, self.message, self.reason)


def decode_upload(data: bytes, limits: UploadLimits, name: str = "upload") -> np.ndarray:
    """The upright image in `data` as a BGR uint8 array (OpenCV order, as `prepare_photo`
    expects); raises `UploadRejected` naming `name` and the rule it broke."""
    if not data:
        raise UploadRejected(413, f"{name} is empty (0 bytes)", RejectReason.EMPTY)
    if len(data) > limits.max_bytes:
        raise UploadRejected(413, f"{name} is {len(data) / _MB:.1f} MB, over the "
                                  f"{limits.max_bytes / _MB:.1f} MB limit", RejectReason.TOO_LARGE)
    kind = sniff_format(data)
    if kind is None:
        raise UploadRejected(415, f"{name} is not an image (starts {data[:8]!r}); accepted "
                                  f"formats: {', '.join(SIGNATURES)}", RejectReason.NOT_AN_IMAGE)
    image = _open_header(data, limits, name, kind)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        state = "truncated" if "truncated" in str(error).lower() else "corrupt"
        raise UploadRejected(422, f"{name} is a {state} {kind}: {error}",
                             RejectReason.CORRUPT) from error
    rgb = _as_rgb(turn_upright(image, exif_orientation(image)))
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)


def _open_header(data: bytes, limits: UploadLimits, name: str, kind: str) -> Image.Image:
    """The image with only its header read, once its size is within `limits`."""
    with warnings.catch_warnings():
        # PIL only warns between its two bomb thresholds; a warning is a refusal here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UploadRejected(413, f"{name} refused before decoding: {error}",
                                 RejectReason.TOO_MANY_PIXELS) from error
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise UploadRejected(422, f"{name}: {kind} header does not parse: {error}",
                                 RejectReason.CORRUPT) from error
    width, height = image.size
    if width * height > limits.max_pixels:
        raise UploadRejected(413, f"{name} is {width} x {height} = {width * height:,} pixels, "
                                  f"over the limit of {limits.max_pixels:,}; refused before "
                                  "decoding", RejectReason.TOO_MANY_PIXELS)
    if min(width, height) < limits.min_side:
        raise UploadRejected(422, f"{name} is {width} x {height}, under the minimum of "
                                  f"{limits.min_side} pixels a side", RejectReason.TOO_SMALL)
    return image


def _as_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of any mode; transparent areas become white, not whatever colour they hide."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return Image.alpha_composite(Image.new("RGBA", image.size, _WHITE),
                                     image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")
