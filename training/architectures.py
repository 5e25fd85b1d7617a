"""The architecture registry: models chosen by name (``--arch``).

Every model takes NCHW float32 input of a fixed size and returns logits (N, num_classes). They contain no
data-dependent control flow and end in ``nn.AdaptiveAvgPool2d(1)``, so they export to ONNX as one static graph and
quantize cleanly (Conv + BatchNorm + ReLU patterns that ONNX Runtime and OpenVINO fuse).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from training.errors import ConfigError

ModelFactory = Callable[..., nn.Module]
ARCHITECTURES: dict[str, ModelFactory] = {}
DEFAULT_IMAGE_SIZE: dict[str, int] = {}


def register_arch(name: str, *, default_image_size: int | None = None) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory ``f(num_classes, in_channels, image_size, **kw) -> nn.Module`` under ``name``."""

    def deco(factory: ModelFactory) -> ModelFactory:
        if name in ARCHITECTURES:
            raise ConfigError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = factory
        if default_image_size:
            DEFAULT_IMAGE_SIZE[name] = default_image_size
        return factory

    return deco


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    """Build architecture ``name``; unknown names and bad sizes raise ``ConfigError``."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    if num_classes < 2 or in_channels not in (1, 3) or image_size < 4:
        raise ConfigError(f"bad model shape: {num_classes} classes, {in_channels} channels, size {image_size}")
    return ARCHITECTURES[name](num_classes, in_channels, image_size, **kw)


def default_image_size(name: str, dataset: Any | None = None) -> int:
    """The input size to train ``name`` at: the architecture's default (MobileNetV2: 224), else the data's size."""
    if name in DEFAULT_IMAGE_SIZE:
        return DEFAULT_IMAGE_SIZE[name]
    if dataset is not None:
        return int(max(dataset.image_shape))
    return 32


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True) if groups > 1 or k == 1 else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class TinyCNN(nn.Module):
    """A compact VGG-style CNN for small inputs (8x8 digits up to ~64x64).

    Stages of two 3x3 conv-BN-ReLU blocks with a 2x2 max-pool between stages, as many pools as bring the map down
    to about 2x2 (decided once from ``image_size``, so the graph is static); channels double per stage up to
    4x ``width``. ~0.3M parameters at 8x8 input and width 32, ~0.9M at 32x32.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, width: int = 32,
                 dropout: float = 0.2) -> None:
        super().__init__()
        pools = max(1, min(4, int(math.log2(max(image_size, 4) / 4)) + 1))
        layers: list[nn.Module] = []
        cin, cout = in_channels, width
        for stage in range(pools + 1):
            layers += [_conv_bn(cin, cout), _conv_bn(cout, cout)]
            if stage < pools and image_size // (2 ** (stage + 1)) >= 2:
                layers.append(nn.MaxPool2d(2))
            cin, cout = cout, min(cout * 2, width * 4)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register_arch("tiny_cnn")
def tiny_cnn(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return TinyCNN(num_classes, in_channels, image_size, **kw)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, k=1))
        layers += [_conv_bn(hidden, hidden, k=3, stride=stride, groups=hidden), _conv_bn(hidden, cout, k=1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) for camera frames: ~3.5M parameters at width 1.0 and 1000 classes.

    ``width_mult`` scales every layer (0.35 / 0.5 / 0.75 / 1.0); small inputs (<= 64 px) get a stride-1 stem so the
    last feature map is not smaller than 2x2.
    """

    # expansion t, channels c, repeats n, first stride s
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, num_classes: int, in_channels: int, image_size: int, width_mult: float = 1.0,
                 dropout: float = 0.2, last_channels: int = 1280) -> None:
        super().__init__()
        stem_stride = 1 if image_size <= 64 else 2
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(last_channels * max(1.0, width_mult))
        layers: list[nn.Module] = [_conv_bn(in_channels, cin, stride=stem_stride)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn(cin, last, k=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register_arch("mobilenetv2", default_image_size=224)
def mobilenetv2(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return MobileNetV2(num_classes, in_channels, image_size, **kw)
