"""Near duplicates on pixels, not hashes alone: copies are found, distinct look-alikes (rendered
digits of one class, one card design photographed with other defects) are not (issue 16)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.classify import rendered_digit
from components.cards.camera import CAMERAS, compose, develop, sample_conditions
from components.cards.factory import label_card
from components.cards.render import render_card
from components.cards.spec import sample_card
from components.ingest import TASKS, AcceptedIndex, check_batch, read_batch
from components.ingest.duplicates import Fingerprints, find_duplicates
from components.ingest.images import ImageLimits, check_image
from components.ingest.model import Reason

MAX_BITS = 20


def _card_photo(spec, seed: int, index: int) -> bytes:
    """`spec` photographed by the studio camera under conditions of its own."""
    conditions = sample_conditions(CAMERAS["studio"], np.random.default_rng([seed, index, 1]))
    photo, _ = compose(render_card(spec), conditions)
    return develop(photo, conditions, np.random.default_rng([seed, index, 3]))


def _fingerprints(paths: list[Path], with_paths: bool = True) -> Fingerprints:
    facts = [check_image(path, ImageLimits()) for path in paths]
    return Fingerprints([path.stem for path in paths], [f.sha256 for f in facts],
                        [f.phash for f in facts], [str(p) for p in paths] if with_paths else [])


def _resized_copy(source: Path, target: Path, scale: float, quality: int) -> Path:
    image = Image.open(source).convert("RGB")
    small = image.resize((round(image.width * scale), round(image.height * scale)))
    small.save(target, "JPEG", quality=quality)
    return target


NONE = Fingerprints([], [], [])


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(16)
    paths = []
    for value in range(10):
        for copy in range(12):
            path = folder / f"{value}-{copy}.png"
            cv2.imwrite(str(path), rendered_digit(value, rng))
            paths.append(path)
    return paths


def test_distinct_digits_of_one_class_are_not_near_duplicates(digits: list[Path]) -> None:
    by_hash = find_duplicates(_fingerprints(digits, with_paths=False), NONE, MAX_BITS)
    confirmed = find_duplicates(_fingerprints(digits), NONE, MAX_BITS)

    assert len(by_hash) >= 10  # what the hash alone quarantined: look-alikes, not copies
    assert confirmed == {}


def test_an_image_folder_of_look_alike_digits_passes_the_item_checks(digits: list[Path],
                                                                     tmp_path: Path) -> None:
    for path in digits:  # ImageFolder: one folder per class
        (tmp_path / path.stem[0]).mkdir(exist_ok=True)
        (tmp_path / path.stem[0] / path.name).write_bytes(path.read_bytes())

    checked = check_batch(read_batch(tmp_path, needs_boxes=False), TASKS["classify"],
                          AcceptedIndex(), ImageLimits(), MAX_BITS, workers=1)

    assert checked.rejected == [] and len(checked.candidates) == len(digits)


def test_a_resized_recompressed_digit_is_still_a_near_duplicate(digits: list[Path],
                                                               tmp_path: Path) -> None:
    copy = _resized_copy(digits[5], tmp_path / "copy.jpg", 0.75, 70)

    found = find_duplicates(_fingerprints([*digits, copy]), NONE, MAX_BITS)

    assert list(found) == [len(digits)]
    assert found[len(digits)].reason == Reason.NEAR_DUPLICATE
    assert f"near duplicate of {digits[5].stem} in this batch" in found[len(digits)].detail
    assert "alike)" in found[len(digits)].detail


def test_one_card_design_with_other_defects_is_not_a_copy_but_its_resized_copy_is(
        tmp_path: Path) -> None:
    design = label_card(6, 3).spec
    others = sample_card(np.random.default_rng([7, 3, 0]), "other")
    twin = dataclasses.replace(design, defects=others.defects)
    first, second = tmp_path / "first.jpg", tmp_path / "second.jpg"
    first.write_bytes(_card_photo(design, 6, 3))
    second.write_bytes(_card_photo(twin, 8, 3))
    accepted = _fingerprints([first])

    assert find_duplicates(_fingerprints([second]), accepted, 60) == {}  # even at 60 bits
    copy = _resized_copy(first, tmp_path / "copy.jpg", 0.7, 60)
    found = find_duplicates(_fingerprints([second, copy]), accepted, MAX_BITS)
    assert list(found) == [1] and found[1].reason == Reason.ALREADY_ACCEPTED


def test_an_accepted_item_whose_file_is_gone_is_judged_by_its_hash(digits: list[Path],
                                                                   tmp_path: Path) -> None:
    accepted = Fingerprints(["old"], ["s-old"], [check_image(digits[0], ImageLimits()).phash],
                            [str(tmp_path / "not-here.png")])

    found = find_duplicates(_fingerprints([digits[0]]), accepted, MAX_BITS)

    assert found[0].reason == Reason.ALREADY_ACCEPTED
    assert "(0 bits)" in found[0].detail  # no similarity: the pixels could not be compared


def test_the_pixels_of_an_upright_photo_match_its_sideways_original(tmp_path: Path) -> None:
    """A copy saved with an EXIF rotation is compared as the stored copy will stand."""
    rng = np.random.default_rng(3)
    image = Image.fromarray(np.stack([rendered_digit(4, rng)] * 3, axis=-1))
    upright, sideways = tmp_path / "upright.jpg", tmp_path / "sideways.jpg"
    image.save(upright, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; the viewer turns it back by 90 degrees clockwise
    image.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=95, exif=exif)

    found = find_duplicates(_fingerprints([upright, sideways]), NONE, MAX_BITS)

    assert list(found) == [1]

