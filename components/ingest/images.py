"""Check every image of a batch, in parallel: it decodes fully, its bytes are the format its name
says, it is neither a decompression bomb nor too small; and measure what later stages need.

    facts = check_images([Path("b/images/1.jpg"), ...], ImageLimits(max_pixels=50_000_000))

Each `ImageFacts` carries the sha256 of the file, a perceptual hash for near duplicates, and the
image properties that the batch suite and drift monitoring read (brightness, contrast,
sharpness, size, aspect). The pixel count is read from the header, so a bomb is refused before
a single pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from components.ingest.model import Problem, Reason
from components.parallel import map_chunks
from components.vision.photos import (
    SUFFIX_FORMATS,
    exif_orientation,
    sniff_format,
    turn_upright,
)
from components.vision.properties import measure_grey

# Stored as they come; any other format, mode or orientation is normalised to an RGB PNG.
KEPT_FORMATS = frozenset({"JPEG", "PNG"})
HASH_SIDE, HASH_FREQUENCIES = 32, 8
SIGNATURE_SIDE = 64  # pixels a side of the grey thumbnail that confirms a near duplicate
_CHUNK = 64  # images per task sent to a worker: measured fastest of 16..128


@dataclass(frozen=True)
class ImageLimits:
    """What an acceptable image is: at most `max_pixels` (width x height, read from the header),
    and at least `min_width` x `min_height` pixels."""

    max_pixels: int = 50_000_000
    min_width: int = 32
    min_height: int = 32


@dataclass(frozen=True)
class ImageFacts:
    """What one image is, or the problem that stops it; properties are of the upright RGB image."""

    path: str
    problem: Problem | None = None
    format: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    orientation: int = 1
    sha256: str = ""
    phash: str = ""
    brightness: float = 0.0
    contrast: float = 0.0
    sharpness: float = 0.0

    @property
    def needs_normalising(self) -> bool:
        """True when the stored copy must be re-encoded: rotated by EXIF, or not RGB JPEG/PNG."""
        return self.orientation != 1 or self.mode != "RGB" or self.format not in KEPT_FORMATS

    @property
    def aspect(self) -> float:
        return round(self.width / self.height, 4) if self.height else 0.0


def perceptual_hash(rgb: np.ndarray) -> str:
    """A 192-bit hash of the low frequencies of each Lab channel, as hex.

    Re-encoded, resized or lightly edited copies of a photo stay within a few bits; a luminance
    hash alone is not enough for cards, whose shared layout (border, title bar, text box) makes
    distinct cards collide. Measured on 600 factory cards: distinct cards at least 40 bits apart,
    a copy resized to 70% and saved at JPEG quality 60 at most 8.
    """
    small = cv2.resize(rgb, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    words = []
    for channel in range(3):
        low = cv2.dct(lab[:, :, channel])[:HASH_FREQUENCIES, :HASH_FREQUENCIES].flatten()[1:]
        bits = np.append(low > np.median(low), False)  # 63 frequencies without DC, one pad bit
        words.append(np.packbits(bits).tobytes().hex())
    return "".join(words)


def pixel_signature(rgb: np.ndarray) -> np.ndarray:
    """The image as a 64 x 64 grey thumbnail with zero mean and unit length: the dot product
    of two signatures is their pixels' correlation, which brightness and contrast leave alone.

    Measured (issue 16): copies (resized to 70% and saved at JPEG quality 60, brightened, a
    patch painted over) correlate at least 0.996 on cards and 0.976 on 64 x 64 digits; distinct
    photos of the same card design or the same card at most 0.94, and distinct rendered digits
    of one class, whose perceptual hashes are often a few bits apart, at most 0.94 too. A
    copy cropped by 2% no longer lines up (0.70-0.85): only its hash finds it.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (SIGNATURE_SIDE, SIGNATURE_SIDE), interpolation=cv2.INTER_AREA)
    centred = small.astype(np.float32).ravel() - small.mean()
    length = float(np.linalg.norm(centred))
    return centred / length if length > 0 else centred


def hash_words(phashes: list[str]) -> np.ndarray:
    """Hex hashes as an (n, 3) array of uint64 words, ready for XOR and bit counts."""
    if not phashes:
        return np.zeros((0, 3), dtype=np.uint64)
    raw = b"".join(bytes.fromhex(value) for value in phashes)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(phashes), 3)


def check_image(path: Path, limits: ImageLimits) -> ImageFacts:
    """Check and measure one image file; a failed rule comes back as `problem`, never raised."""
    name = path.name

    def refused(reason: Reason, detail: str, **known) -> ImageFacts:
        return ImageFacts(path=str(path), problem=Problem(reason, f"{name}: {detail}"), **known)

    try:
        data = path.read_bytes()
    except OSError as error:
        return refused(Reason.MISSING_IMAGE, f"cannot be read ({error.strerror or error})")
    if not data:
        return refused(Reason.EMPTY_FILE, "is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    sniffed = sniff_format(data)
    if sniffed is None:
        return refused(Reason.NOT_AN_IMAGE, f"content is not an image (starts {data[:8]!r})",
                       sha256=digest)
    claimed = SUFFIX_FORMATS.get(path.suffix.lower())
    if claimed != sniffed:
        return refused(Reason.FORMAT_MISMATCH,
                       f"named {path.suffix or 'without suffix'} but its content is {sniffed}",
                       sha256=digest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            return refused(Reason.TOO_MANY_PIXELS, f"refused before decoding: {error}",
                           sha256=digest, format=sniffed)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            return refused(Reason.CORRUPT_IMAGE, f"{sniffed} header does not parse: {error}",
                           sha256=digest, format=sniffed)
        width, height = image.size
        known = {"sha256": digest, "format": sniffed, "width": width, "height": height,
                 "mode": image.mode}
        if width * height > limits.max_pixels:
            return refused(Reason.TOO_MANY_PIXELS,
                           f"{width} x {height} = {width * height:,} pixels is over the limit of "
                           f"{limits.max_pixels:,}; refused before decoding", **known)
        if width < limits.min_width or height < limits.min_height:
            return refused(Reason.TOO_SMALL, f"{width} x {height} is under the minimum "
                           f"{limits.min_width} x {limits.min_height}", **known)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            kind = "truncated" if "truncated" in str(error).lower() else "corrupt"
            return refused(Reason.CORRUPT_IMAGE, f"{kind} {sniffed}: {error}", **known)
    orientation = exif_orientation(image)
    upright = turn_upright(image, orientation)
    rgb = np.asarray(upright if upright.mode == "RGB" else upright.convert("RGB"))
    brightness, contrast, sharpness = measure_grey(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    return ImageFacts(path=str(path), format=sniffed, width=rgb.shape[1], height=rgb.shape[0],
                      mode=image.mode, orientation=orientation, sha256=digest,
                      phash=perceptual_hash(rgb), brightness=brightness, contrast=contrast,
                      sharpness=sharpness)


def _check_chunk(args: tuple[list[Path], ImageLimits]) -> list[ImageFacts]:
    paths, limits = args
    return [check_image(path, limits) for path in paths]


def check_images(
    paths: list[Path],
    limits: ImageLimits,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[ImageFacts]:
    """`check_image` for every path, in order, across `workers` processes (default all cores).

    `on_progress` is called with the number of images finished since its last call.
    """
    chunks = [(paths[i:i + _CHUNK], limits) for i in range(0, len(paths), _CHUNK)]
    facts: list[ImageFacts] = []
    for done in map_chunks(_check_chunk, chunks, workers=workers):
        facts.extend(done)
        if on_progress:
            on_progress(len(done))
    return facts
