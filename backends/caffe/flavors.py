"""Flavors: which Caffe build the output targets, and so which layer types it may contain.

- ``ssd`` (default): SSD-Caffe with a ReLU6 layer (chuanqi305/ssd, ours from kernels/), and
  OpenCV's dnn. ReLU6 is written as one ``ReLU6`` layer.
- ``bvlc``: BVLC Caffe (≥2019). Has ``Clip`` (ReLU6 = Clip 0..6); lacks ReLU6, Permute, PriorBox,
  DetectionOutput.
- ``portable``: what every runtime runs, OpenCV included. ReLU6 becomes
  ``ReLU → Power(shift −6) → ReLU → Eltwise(SUM, 1, −1)`` since ``min(relu(x), 6) = relu(x) − relu(relu(x) − 6)``.
- ``kernels``: SSD-Caffe plus this project's kernels/ layers: ``DepthwiseConvolution`` with native
  uneven pads and ``ReLU6``.
- ``opencv``: OpenCV dnn only. Same layers as ``ssd``, with what only OpenCV reads: a Convolution
  ``pad`` of four values ``[top, left, bottom, right]`` (OpenCV's pads_begin, pads_end; Caffe accepts
  one or two), so TF's uneven SAME padding costs nothing (no enlarged kernels, OpenCV's 3×3 fast
  path); and PriorBox sizes that are not whole pixels (e.g. 0.35·224 = 78.4), which SSD-Caffe truncates.

Every emitted layer is checked against the flavor's table; a layer the target lacks is an error
that names the layer and the flavors that have it, never a silent substitution.
"""

from __future__ import annotations

from dataclasses import dataclass

from transpiler.errors import BackendError

# Layers every target runs. Checked by loading and running each, compared with numpy, in OpenCV 4.14 and in
# SSD-Caffe built from source (tests/ops): Exp, Log, AbsVal, BNLL, ELU, ReLU negative_slope, Power (powers
# 0.5, −0.5, 2, −1), Scale with one or two bottoms and any axis/num_axes, Slice, Softmax on any axis all agree
# within 2e-7. Not here: Bias and Reduction, which OpenCV cannot create (BVLC Caffe has both).
COMMON = frozenset({
    "Input", "Convolution", "Pooling", "InnerProduct", "Eltwise", "Scale", "Concat", "Softmax",
    "ReLU", "Sigmoid", "TanH", "Power", "Reshape", "Flatten", "BatchNorm", "Exp", "Log", "Slice", "ELU",
    "AbsVal", "BNLL",
    "Deconvolution",
})
SSD_EXTRA = frozenset({"Permute", "PriorBox", "DetectionOutput", "Normalize"})


@dataclass(frozen=True)
class Flavor:
    name: str
    layer_types: frozenset[str]
    relu6: str  # "ReLU6", "Clip" or "portable"
    # Which convolutions the target pads unevenly by itself: "none" (symmetric-padding enlarges the
    # kernels), "depthwise" (our DepthwiseConvolution layer), "all" (OpenCV's four-value `pad`).
    uneven_pads: str = "none"
    description: str = ""
    # Runtimes whose PriorBox semantics must reproduce the TF anchors (SSD-Caffe: integer sizes).
    prior_runtimes: tuple[str, ...] = ("ssd-caffe", "opencv")

    def check(self, layer_type: str, layer_name: str) -> None:
        if layer_type not in self.layer_types:
            others = [f.name for f in FLAVORS.values() if layer_type in f.layer_types]
            hint = f" (flavors that have it: {', '.join(others)})" if others else ""
            raise BackendError(f"layer '{layer_name}' needs Caffe layer type {layer_type}, which flavor "
                               f"'{self.name}' does not have{hint}")


FLAVORS: dict[str, Flavor] = {
    "ssd": Flavor("ssd", COMMON | SSD_EXTRA | {"ReLU6"}, "ReLU6",
                  description="SSD-Caffe with ReLU6 (chuanqi305/ssd, kernels/relu6), OpenCV dnn"),
    "bvlc": Flavor("bvlc", COMMON | {"Clip", "Bias", "Reduction"}, "Clip",
                   description="BVLC Caffe (has Clip, no SSD layers)"),
    "portable": Flavor("portable", COMMON | SSD_EXTRA, "portable",
                       description="any runtime: ReLU6 spelled with ReLU/Power/Eltwise"),
    "kernels": Flavor("kernels", COMMON | SSD_EXTRA | {"ReLU6", "DepthwiseConvolution"}, "ReLU6",
                      uneven_pads="depthwise", description="SSD-Caffe + this project's kernels/ layers"),
    "opencv": Flavor("opencv", COMMON | SSD_EXTRA | {"ReLU6"}, "ReLU6", prior_runtimes=("opencv",),
                     uneven_pads="all",
                     description="OpenCV dnn only: native uneven pads, fractional PriorBox sizes"),
}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise BackendError(f"unknown flavor '{name}' (known: {', '.join(FLAVORS)})") from None
