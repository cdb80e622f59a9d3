"""Image checks: a good photo is measured, every broken file comes back with the one reason that
names what is wrong with it (never an exception), a bomb is refused from its header, and the
perceptual hash keeps copies close and distinct cards apart."""

import hashlib
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from components.cards import synthesize_batch
from components.ingest import ImageLimits, Reason, check_image, check_images
from components.ingest.images import hash_words
from tests.batches import write_png_bomb

LIMITS = ImageLimits()


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The JPEGs of a small factory batch (320 x 448, RGB)."""
    out = tmp_path_factory.mktemp("ingest-images") / "batch"
    synthesize_batch(out, n=12, seed=3, camera="studio", workers=1)
    return sorted((out / "images").iterdir())


def _png_bytes(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def _distance(phash_a: str, phash_b: str) -> int:
    a, b = hash_words([phash_a, phash_b])
    return int(np.bitwise_count(a ^ b).sum())


# --- a good image ------------------------------------------------------------------------


def test_a_factory_jpeg_is_measured_and_has_no_problem(cards: list[Path]) -> None:
    facts = check_image(cards[0], LIMITS)

    assert facts.problem is None
    assert facts.path == str(cards[0])
    assert (facts.format, facts.width, facts.height, facts.mode) == ("JPEG", 320, 448, "RGB")
    assert facts.aspect == round(320 / 448, 4)
    assert facts.sha256 == hashlib.sha256(cards[0].read_bytes()).hexdigest()
    assert len(facts.phash) == 48 and int(facts.phash, 16) >= 0  # 192 bits as hex
    assert facts.brightness > 0 and facts.contrast > 0 and facts.sharpness > 0
    assert facts.orientation == 1 and not facts.needs_normalising


# --- broken files, one reason each -------------------------------------------------------


def test_a_jpeg_of_garbage_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(4000))

    facts = check_image(path, LIMITS)

    assert facts.problem is not None and facts.problem.reason == Reason.CORRUPT_IMAGE
    assert facts.problem.detail.startswith("garbage.jpg: ")
    assert facts.format == "JPEG" and facts.phash == ""
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_truncated_png_is_corrupt_and_says_truncated(cards: list[Path], tmp_path: Path) -> None:
    data = _png_bytes(cv2.imread(str(cards[0])))
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])

    facts = check_image(path, LIMITS)

    assert facts.problem is not None and facts.problem.reason == Reason.CORRUPT_IMAGE
    assert "truncated" in facts.problem.detail
    assert (facts.format, facts.width, facts.height) == ("PNG", 320, 448)  # the header parsed


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", Reason.EMPTY_FILE),
        ("x.jpg", b"item_id,grade\ns-1,9\n", Reason.NOT_AN_IMAGE),
        ("noise.png", b"\x00" * 64, Reason.NOT_AN_IMAGE),
    ],
)
def test_files_that_are_no_image_are_named_so(tmp_path: Path, name: str, content: bytes,
                                              reason: Reason) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    facts = check_image(path, LIMITS)

    assert facts.problem is not None and facts.problem.reason == reason
    assert facts.problem.detail.startswith(f"{name}: ")


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    facts = check_image(tmp_path / "gone.jpg", LIMITS)
    assert facts.problem is not None and facts.problem.reason == Reason.MISSING_IMAGE


def test_a_png_named_jpg_is_a_format_mismatch(cards: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "really-a-png.jpg"
    path.write_bytes(_png_bytes(cv2.imread(str(cards[0]))))

    facts = check_image(path, LIMITS)

    assert facts.problem is not None and facts.problem.reason == Reason.FORMAT_MISMATCH
    assert ".jpg" in facts.problem.detail and "PNG" in facts.problem.detail


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_png_bomb(path, 30_000)  # 900 million pixels, 900 MB decoded
    assert path.stat().st_size < 5_000_000

    started = time.perf_counter()
    facts = check_image(path, ImageLimits())
    elapsed = time.perf_counter() - started

    assert facts.problem is not None and facts.problem.reason == Reason.TOO_MANY_PIXELS
    assert "before decoding" in facts.problem.detail
    assert elapsed < 2.0  # decoding it would take far longer (and 900 MB)


def test_an_image_over_the_pixel_limit_reports_its_size(cards: list[Path]) -> None:
    facts = check_image(cards[0], ImageLimits(max_pixels=320 * 448 - 1))

    assert facts.problem is not None and facts.problem.reason == Reason.TOO_MANY_PIXELS
    assert (facts.width, facts.height) == (320, 448)
    assert "143,360" in facts.problem.detail


def test_an_image_under_the_minimum_size_is_too_small(tmp_path: Path) -> None:
    limits = ImageLimits()
    path = tmp_path / "thumb.png"
    path.write_bytes(_png_bytes(np.full((limits.min_height - 1, 200, 3), 128, np.uint8)))

    facts = check_image(path, limits)

    assert facts.problem is not None and facts.problem.reason == Reason.TOO_SMALL
    assert (facts.width, facts.height) == (200, limits.min_height - 1)


# --- images that are fine but are stored re-encoded ----------------------------------------


def test_a_greyscale_jpeg_is_fine_but_needs_normalising(cards: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.open(cards[0]).convert("L").save(path, quality=95)

    facts = check_image(path, LIMITS)

    assert facts.problem is None
    assert (facts.mode, facts.width, facts.height) == ("L", 320, 448)
    assert facts.needs_normalising
    assert len(facts.phash) == 48 and facts.brightness > 0


def test_an_exif_rotated_jpeg_reports_its_upright_size(cards: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.open(cards[0]).save(path, exif=exif, quality=95)
    with Image.open(path) as stored:
        assert stored.size == (320, 448)

    facts = check_image(path, LIMITS)

    assert facts.problem is None
    assert facts.orientation == 6 and facts.needs_normalising
    assert (facts.width, facts.height) == (448, 320)  # swapped relative to the stored pixels
    assert facts.aspect == round(448 / 320, 4)


def test_a_rotated_jpeg_with_an_odd_exif_tag_is_never_raised(cards: list[Path],
                                                             tmp_path: Path) -> None:
    """EXIF written by cameras is often untidy: here the tag XPosition (0x011e,
    a RATIONAL) holds ASCII text. The file decodes fine; check_image must return facts, not
    raise and take the whole batch down with it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"  # Make, ASCII
    path = tmp_path / "odd-exif.jpg"
    Image.open(cards[0]).save(path, exif=exif, quality=95)
    data = path.read_bytes()
    make_entry = b"\x01\x0f\x00\x02"  # tag 0x010f, type ASCII (big-endian EXIF)
    assert data.count(make_entry) == 1
    path.write_bytes(data.replace(make_entry, b"\x01\x1e\x00\x02"))  # now tag 0x011e, ASCII

    facts = check_image(path, LIMITS)

    if facts.problem is None:
        assert (facts.width, facts.height, facts.orientation) == (448, 320, 6)
    else:
        assert facts.problem.reason == Reason.CORRUPT_IMAGE


# --- many images -------------------------------------------------------------------------


def test_check_images_keeps_input_order_whatever_the_workers(cards: list[Path],
                                                            tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image\n")
    # More than one chunk of 32, so two workers really share the work.
    paths = [*cards, tmp_path / "empty.jpg", *cards[::-1], tmp_path / "text.jpg", *cards]
    assert len(paths) > 32

    one = check_images(paths, LIMITS, workers=1)
    two = check_images(paths, LIMITS, workers=2)

    assert [facts.path for facts in one] == [str(path) for path in paths]
    assert two == one
    assert one[len(cards)].problem.reason == Reason.EMPTY_FILE
    assert one[2 * len(cards) + 1].problem.reason == Reason.NOT_AN_IMAGE
    assert one[0] == one[-len(cards)]  # the same file, the same facts


def test_check_images_reports_progress_for_every_image(cards: list[Path]) -> None:
    done: list[int] = []
    facts = check_images(cards * 3, LIMITS, workers=1, on_progress=done.append)
    assert sum(done) == len(facts) == 3 * len(cards)


# --- perceptual hash ---------------------------------------------------------------------


def test_a_resized_recompressed_copy_stays_near(cards: list[Path], tmp_path: Path) -> None:
    pixels = cv2.imread(str(cards[0]))
    smaller = cv2.resize(pixels, (round(320 * 0.7), round(448 * 0.7)),
                         interpolation=cv2.INTER_AREA)
    copy = tmp_path / "copy.jpg"
    assert cv2.imwrite(str(copy), smaller, [cv2.IMWRITE_JPEG_QUALITY, 60])

    original, copied = check_image(cards[0], LIMITS), check_image(copy, LIMITS)

    assert copied.problem is None and copied.sha256 != original.sha256
    assert _distance(original.phash, copied.phash) <= 20


def test_different_cards_are_far_apart(cards: list[Path]) -> None:
    hashes = [facts.phash for facts in check_images(cards, LIMITS, workers=1)]
    distances = [_distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert len(distances) == 66
    assert min(distances) > 20
