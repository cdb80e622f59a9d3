"""Masks as labeling tools write them: COCO run-length encodings (compressed and not) decode to
the pixels the reference implementation encoded, polygons and YOLO-seg lines read as outlines in
fractions of the image, and malformed ones are named."""

import numpy as np
import pytest

from components.vision.labels import (
    MaskFormatError,
    coco_outlines,
    decode_rle,
    mask_outlines,
    outline_bounds,
    yolo_seg_line,
    yolo_seg_outline,
)

# A 7 x 9 mask: a 3 x 4 block, a full row and a column crossing it.
MASK = np.zeros((7, 9), np.uint8)
MASK[1:4, 2:6] = 255
MASK[5, :] = 255
MASK[2:7, 7] = 255
# The same mask as pycocotools 2.0.8 encodes it (`mask.encode`, counts decoded to text).
COMPRESSED = {"size": [7, 9], "counts": "5160L2ON12ON12ON12ON50M42LL"}


def test_a_compressed_rle_decodes_to_the_pixels_pycocotools_encoded() -> None:
    assert np.array_equal(decode_rle(COMPRESSED), MASK)


def test_an_uncompressed_rle_runs_column_by_column_from_the_background() -> None:
    column_major = (MASK.T.ravel() > 0).astype(int)
    runs, value, length = [], 0, 0
    for pixel in column_major:
        if pixel != value:
            runs.append(length)
            value, length = pixel, 0
        length += 1
    runs.append(length)

    assert np.array_equal(decode_rle({"size": [7, 9], "counts": runs}), MASK)


@pytest.mark.parametrize("rle, named", [
    ({"size": [2, 2], "counts": [1, 9]}, "cover 10 pixels of a 2 x 2 image"),
    ({"counts": [1]}, "`size`"),
    ({"size": [7, 9], "counts": "5160L2P"}, "ends inside a run length"),
])
def test_a_broken_rle_is_named(rle: dict, named: str) -> None:
    with pytest.raises(MaskFormatError, match=named):
        decode_rle(rle)


def test_mask_outlines_follow_each_region_in_fractions_of_the_image() -> None:
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 255
    mask[70:90, 150:190] = 255

    outlines = sorted(mask_outlines(mask))

    assert len(outlines) == 2
    assert outline_bounds(outlines[0]) == pytest.approx((20.5 / 200, 10.5 / 100,
                                                         59.5 / 200, 29.5 / 100))
    assert outline_bounds(outlines[1]) == pytest.approx((150.5 / 200, 70.5 / 100,
                                                         189.5 / 200, 89.5 / 100))


def test_coco_polygons_and_rles_read_as_outlines() -> None:
    polygons = coco_outlines([[32, 44.8, 64, 44.8, 64, 89.6], [0, 0, 3.2, 0, 0, 4.48]], 320, 448)
    from_rle = coco_outlines(COMPRESSED, 9, 7)

    assert [np.ravel(p).tolist() for p in polygons] == [
        pytest.approx([0.1, 0.1, 0.2, 0.1, 0.2, 0.2]), pytest.approx([0, 0, 0.01, 0, 0, 0.01])]
    assert len(from_rle) == 2  # the block, and the crossing row and column


def test_a_polygon_with_an_odd_coordinate_count_is_named() -> None:
    with pytest.raises(MaskFormatError, match="x, y pairs; got 5 numbers"):
        coco_outlines([[1, 2, 3, 4, 5]], 10, 10)
    with pytest.raises(MaskFormatError, match="neither polygons nor an RLE"):
        coco_outlines("a scratch", 10, 10)


def test_a_yolo_seg_line_round_trips() -> None:
    outline = ((0.1, 0.2), (0.4, 0.2), (0.25, 0.6))

    line = yolo_seg_line(3, outline)

    assert line == "3 0.100000 0.200000 0.400000 0.200000 0.250000 0.600000"
    assert yolo_seg_outline(line.split()[1:]) == outline
    with pytest.raises(MaskFormatError, match="not numbers"):
        yolo_seg_outline(["0.1", "x", "0.3", "0.4", "0.5", "0.6"])
