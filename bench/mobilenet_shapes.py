"""Depthwise-convolution layer shapes of SSDLite-MobileNetV2 at 300×300 (the project's target model).

Each entry: (name, channels, input size (square), stride, times it occurs in the network). All kernels
are 3×3, multiplier 1, TF SAME padding (stride 2 on an even input pads 0 before, 1 after).
"""

from __future__ import annotations

from typing import NamedTuple


class DwLayer(NamedTuple):
    name: str
    channels: int
    size: int
    stride: int
    repeat: int

    def pads(self) -> tuple[int, int, int, int]:
        out = -(-self.size // self.stride)
        total = max((out - 1) * self.stride + 3 - self.size, 0)
        return total // 2, total - total // 2, total // 2, total - total // 2

    def out_size(self) -> int:
        return -(-self.size // self.stride)


MOBILENET_V2_SSDLITE_300: list[DwLayer] = [
    DwLayer("expanded_conv", 32, 150, 1, 1),
    DwLayer("expanded_conv_1", 96, 150, 2, 1),
    DwLayer("expanded_conv_2", 144, 75, 1, 1),
    DwLayer("expanded_conv_3", 144, 75, 2, 1),
    DwLayer("expanded_conv_4,5", 192, 38, 1, 2),
    DwLayer("expanded_conv_6", 192, 38, 2, 1),
    DwLayer("expanded_conv_7..10", 384, 19, 1, 4),
    DwLayer("expanded_conv_11,12", 576, 19, 1, 2),
    DwLayer("expanded_conv_13", 576, 19, 2, 1),
    DwLayer("expanded_conv_14..16", 960, 10, 1, 3),
    DwLayer("layer_19_2_Conv2d_2", 256, 10, 2, 1),
    DwLayer("layer_19_2_Conv2d_3", 128, 5, 2, 1),
    DwLayer("layer_19_2_Conv2d_4", 128, 3, 2, 1),
    DwLayer("layer_19_2_Conv2d_5", 64, 2, 2, 1),
    DwLayer("BoxPredictor_0 (x2)", 576, 19, 1, 2),
    DwLayer("BoxPredictor_1 (x2)", 1280, 10, 1, 2),
    DwLayer("BoxPredictor_2 (x2)", 512, 5, 1, 2),
    DwLayer("BoxPredictor_3 (x2)", 256, 3, 1, 2),
    DwLayer("BoxPredictor_4 (x2)", 256, 2, 1, 2),
    DwLayer("BoxPredictor_5 (x2)", 128, 1, 1, 2),
]
