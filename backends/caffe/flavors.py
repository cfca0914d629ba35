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

Toolchain flavors (``mnn``, ``tpu-mlir``, ``paddle``, ``rknn``, ``ncnn``, ``nnie``): what one deployment
toolchain's Caffe importer accepts and computes exactly, learned by running that importer on our output
(tests/toolchains, evidence in each entry of ``TOOLCHAIN_EVIDENCE`` below; nnie from HiSilicon's documentation).
All of them use symmetric padding (``uneven_pads="none"``: MNN and x2paddle silently misread the four-value
``pad``), group-Convolution depthwise (nobody reads ``DepthwiseConvolution``) and the ReLU6 spelling that
importer maps to its clip op. Where a toolchain lacks PriorBox/DetectionOutput, the message says to export the
network alone (``--postprocess external``: raw tensors + priors file + ``transpiler.runtime.ssd_postprocess``).

Every emitted layer is checked against the flavor's table; a layer the target lacks is an error
that names the layer and the flavors that have it, never a silent substitution. Parameter forms (Permute
orders, Eltwise coefficients, blob names) are checked on the finished net by :meth:`Flavor.check_net`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
# BVLC Caffe's PReLU (so SSD-Caffe's) and OpenCV's (ChannelsPReLU; ReLU with negative_slope when channel_shared),
# per channel on 4-D and 2-D blobs and shared, checked in both against TF (tests/e2e/test_prelu.py). Not probed in
# the toolchains: for them the backend spells PReLU with ReLU, Power, Scale and Eltwise (emit_elementwise.py).
PRELU = frozenset({"PReLU"})


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
    # Toolchain flavors: the toolchain and version whose importer the table was learned from ("" = generic),
    # and per refused layer type what to do instead (appended to the error).
    toolchain: str = ""
    refusals: Mapping[str, str] = field(default_factory=dict)
    # Permute orders the importer maps correctly (None: any order).
    permute_orders: frozenset[tuple[int, ...]] | None = None
    # False where the importer drops Eltwise SUM coefficients (caffe2onnx: x − y becomes x + y).
    eltwise_coeff: bool = True
    # Eltwise operations the importer maps (x2paddle refuses MAX; caffe2onnx also PROD).
    eltwise_ops: frozenset[str] = frozenset({"SUM", "PROD", "MAX"})
    # False where the importer refuses a Power layer with an exponent other than 1 (x2paddle).
    power_exponent: bool = True
    # False where the importer's AVE pooling does not count the padding as Caffe does (RKNN).
    ave_pool_pads: bool = True
    # False where MAX pooling with padding fails (pnnx's ncnn model does not load).
    max_pool_pads: bool = True
    # False where a Concat of 4-D blobs is misread (pnnx maps ONNX axis 1 to ncnn's h axis once it drops the batch).
    concat_4d: bool = True
    # False where a Scale whose factors or biases differ across channels is misread (pnnx broadcasts them wrongly);
    # a uniform one (the detectors' input scaling) is fine.
    per_channel_scale: bool = True
    # False where the importer refuses a Scale whose factor is a second bottom (a squeeze-excite gate).
    two_bottom_scale: bool = True
    # True where blob and layer names must be lower-case Python identifiers (x2paddle writes them as Python
    # variables after replacing "/" and "-"): the writer then names blobs so, keeping the TF names in
    # conversion.json.
    identifier_names: bool = False
    # The --postprocess default: "caffe" (in-net PriorBox + DetectionOutput) or "external" (the network up to
    # the raw tensors, priors as a file, transpiler.runtime.ssd_postprocess on the CPU).
    postprocess: str = "caffe"

    def check(self, layer_type: str, layer_name: str) -> None:
        if layer_type not in self.layer_types:
            if self.toolchain:
                hint = self.refusals.get(layer_type, "")
                raise BackendError(f"{self.name}: layer '{layer_name}': layer type {layer_type} is not supported by "
                                   f"{self.toolchain}" + (f"; {hint}" if hint else ""))
            others = [f.name for f in FLAVORS.values() if layer_type in f.layer_types]
            hint = f" (flavors that have it: {', '.join(others)})" if others else ""
            raise BackendError(f"layer '{layer_name}' needs Caffe layer type {layer_type}, which flavor "
                               f"'{self.name}' does not have{hint}")

    def check_net(self, net: Any) -> list[str]:
        """Parameter forms of the finished ``NetParameter`` this flavor's importer misreads: one line per layer."""
        problems = []
        ndim = blob_ranks(net)
        for layer in net.layer:
            where = f"{self.name}: layer '{layer.name}' ({layer.type})"
            if layer.type == "Permute" and self.permute_orders is not None:
                order = tuple(layer.permute_param.order)
                if order not in self.permute_orders:
                    allowed = " or ".join(str(o) for o in sorted(self.permute_orders))
                    problems.append(f"{where}: Permute order {order} is not supported by {self.toolchain} "
                                    f"(only {allowed})")
            if (layer.type == "Eltwise" and not self.eltwise_coeff
                    and any(c != 1.0 for c in layer.eltwise_param.coeff)):
                problems.append(f"{where}: Eltwise coefficients {list(layer.eltwise_param.coeff)} are dropped by "
                                f"{self.toolchain} (it would compute a plain sum)")
            op = cp_eltwise_name(layer.eltwise_param.operation)
            if layer.type == "Eltwise" and op not in self.eltwise_ops:
                problems.append(f"{where}: Eltwise {op} is refused by {self.toolchain}")
            if layer.type == "Power" and not self.power_exponent and layer.power_param.power != 1.0:
                problems.append(f"{where}: Power with exponent {layer.power_param.power:g} is refused by "
                                f"{self.toolchain}")
            pool = layer.pooling_param
            if (layer.type == "Pooling" and not self.ave_pool_pads and pool.pool == pool.AVE
                    and not pool.global_pooling and max(pool.pad, pool.pad_h, pool.pad_w) > 0):
                problems.append(f"{where}: average pooling over padding is computed differently by {self.toolchain} "
                                "(it does not count the padded cells as Caffe does)")
            if (layer.type == "Pooling" and not self.max_pool_pads and pool.pool == pool.MAX
                    and max(pool.pad, pool.pad_h, pool.pad_w) > 0):
                problems.append(f"{where}: MAX pooling with padding fails in {self.toolchain}")
            if layer.type == "Concat" and not self.concat_4d and any(ndim.get(b) == 4 for b in layer.bottom):
                problems.append(f"{where}: a Concat of 4-D blobs is misread by {self.toolchain}")
            if (layer.type == "Scale" and not self.per_channel_scale and len(layer.bottom) == 1
                    and any(len(set(blob.data)) > 1 for blob in layer.blobs)):
                problems.append(f"{where}: a Scale whose factors or biases differ across channels is misread by "
                                f"{self.toolchain}")
            if layer.type == "Scale" and len(layer.bottom) > 1 and not self.two_bottom_scale:
                problems.append(f"{where}: a Scale whose factor is a second bottom (a feature map) is refused by "
                                f"{self.toolchain}")
            if self.identifier_names:
                for blob in (layer.name, *layer.top, *layer.bottom):
                    if not is_identifier_name(blob):
                        problems.append(f"{where}: name '{blob}' is not a lower-case Python identifier, which "
                                        f"{self.toolchain} needs (the identifier-names option renames blobs)")
                        break
        return problems


def cp_eltwise_name(operation: int) -> str:
    return {0: "PROD", 1: "SUM", 2: "MAX"}.get(operation, str(operation))  # caffe.proto's EltwiseOp numbers


def blob_ranks(net: Any) -> dict[str, int]:
    """Each blob's number of axes, followed through the layers that change it (Input, Flatten, Reshape,
    InnerProduct); every other layer keeps its first bottom's."""
    ranks: dict[str, int] = {}
    for layer in net.layer:
        first = ranks.get(layer.bottom[0], 4) if layer.bottom else 4
        if layer.type == "Input":
            rank = len(layer.input_param.shape[0].dim) if layer.input_param.shape else 4
        elif layer.type == "Flatten":
            axis = layer.flatten_param.axis % first
            end = layer.flatten_param.end_axis % first
            rank = first - (end - axis)
        elif layer.type == "Reshape":
            rank = len(layer.reshape_param.shape.dim) if layer.reshape_param.num_axes == -1 else first
        elif layer.type == "InnerProduct":
            rank = layer.inner_product_param.axis + 1
        else:
            rank = first
        for top in layer.top:
            ranks[top] = rank
    return ranks


def is_identifier_name(name: str) -> bool:
    """A lower-case Python identifier that is not a keyword (x2paddle writes blob names as Python variables)."""
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]*", name)) and not keyword.iskeyword(name)


FLAVORS: dict[str, Flavor] = {
    "ssd": Flavor("ssd", COMMON | SSD_EXTRA | PRELU | {"ReLU6"}, "ReLU6",
                  description="SSD-Caffe with ReLU6 (chuanqi305/ssd, kernels/relu6), OpenCV dnn"),
    "bvlc": Flavor("bvlc", COMMON | PRELU | {"Clip", "Bias", "Reduction"}, "Clip",
                   description="BVLC Caffe (has Clip, no SSD layers)"),
    "portable": Flavor("portable", COMMON | SSD_EXTRA | PRELU, "portable",
                       description="any runtime: ReLU6 spelled with ReLU/Power/Eltwise"),
    "kernels": Flavor("kernels", COMMON | SSD_EXTRA | PRELU | {"ReLU6", "DepthwiseConvolution"}, "ReLU6",
                      uneven_pads="depthwise", description="SSD-Caffe + this project's kernels/ layers"),
    "opencv": Flavor("opencv", COMMON | SSD_EXTRA | PRELU | {"ReLU6"}, "ReLU6", prior_runtimes=("opencv",),
                     uneven_pads="all",
                     description="OpenCV dnn only: native uneven pads, fractional PriorBox sizes"),
}

GENERIC_FLAVORS = tuple(FLAVORS)  # ssd, bvlc, portable, kernels, opencv: the Caffe builds and OpenCV

_EXTERNAL = "use --postprocess external (the network up to the raw tensors, priors as a file, decoded and NMS'd by " \
            "transpiler.runtime.ssd_postprocess)"
_SSD_ONLY = frozenset({"PriorBox", "DetectionOutput"})

# Toolchain flavors. Each table was learned by running that toolchain's importer on every layer form we emit
# (tools/toolchains/probe_layers.py: one single-layer net per form, run in the toolchain, compared with a float64
# numpy Caffe) and on the converted fixtures (tests/toolchains); the evidence is stated beside each entry.
FLAVORS.update({
    # MNN 3.6.1 (pip MNN, _tools.mnnconvert + Module API, CPU, precision High), observed 2026-12-06 on every form
    # (tests/toolchains/test_layer_forms.py): all COMMON/SSD layers and ReLU6 within 2e-7 of a float64 Caffe; group
    # Convolution → its depthwise op. Refused: Clip and DepthwiseConvolution (no model written); a Scale whose
    # factor is a second bottom crashes the converter (SIGSEGV). A four-value `pad` [0,0,1,1] is read as pad 0
    # (1×5×2×2 instead of 1×5×3×3, no error) → symmetric pads.
    # PriorBox `step` is truncated to an integer (15.789 → 15: the 19×19 head's priors shifted): prior_runtimes
    # names "mnn" so that a fractional step is left to MNN's own derivation from the layer sizes.
    "mnn": Flavor("mnn", COMMON | SSD_EXTRA | {"ReLU6"}, "ReLU6", prior_runtimes=("ssd-caffe", "opencv", "mnn"),
                  toolchain="MNN 3.6.1", two_bottom_scale=False,
                  refusals={"DepthwiseConvolution": "use group Convolution (this flavor's default)",
                            "Clip": "MNN's Caffe importer has no Clip layer"},
                  description="MNN 3.6.1 (Alibaba): Caffe importer + CPU runtime"),
    # TPU-MLIR 1.30.2 (model_transform → top MLIR, its F32 reference run), observed 2026-12-06 on every form:
    # refused are Power ("not implemented"), BNLL, ELU, Exp, Clip ("Op not support now"), DepthwiseConvolution, the
    # four-value pad and a Scale whose factor is a second bottom (check failures); wrong are Eltwise SUM with
    # coefficients (rel 1.69: coefficients dropped) and AVE pooling over padding (rel 0.33). So ReLU6 is its ReLU6
    # layer. DetectionOutput runs when nms_param.top_k is written (it reads an unset top_k as 0).
    "tpu-mlir": Flavor("tpu-mlir", (COMMON - {"Power", "BNLL", "ELU", "Exp"}) | SSD_EXTRA | {"ReLU6"}, "ReLU6",
                       toolchain="TPU-MLIR 1.30.2", eltwise_coeff=False, ave_pool_pads=False, two_bottom_scale=False,
                       refusals={t: f"TPU-MLIR 1.30.2's Caffe importer has no {t}"
                                 for t in ("Power", "BNLL", "ELU", "Exp", "Clip")},
                       description="Sophgo TPU-MLIR 1.30.2: model_transform (top MLIR) and its F32 reference run"),
    # x2paddle 1.6.0 + paddlepaddle 2.6.2 (Paddle Inference, CPU), observed 2026-12-06 on every form: refused are
    # AbsVal (TypeError in its activation mapper), BNLL, ELU, Exp (no shape inference), Clip and DepthwiseConvolution
    # (its caffe.proto lacks them), Eltwise MAX (TypeError), Power with an exponent ≠ 1 (AssertionError), a Scale
    # whose factor is a second bottom; AVE pooling over padding is wrong (rel 2.0: padding not counted) and the
    # four-value pad misread (1×5×2×3 for 1×5×3×3). Blob names are written as Python variables (lower-case
    # identifiers). Its DetectionOutput applies a softmax to the scores (our sigmoid scores are then wrong) →
    # network only.
    "paddle": Flavor("paddle", (COMMON - {"AbsVal", "BNLL", "ELU", "Exp"}) | {"Permute", "ReLU6"}, "ReLU6",
                     toolchain="x2paddle 1.6.0", identifier_names=True, postprocess="external",
                     eltwise_ops=frozenset({"SUM", "PROD"}), power_exponent=False, ave_pool_pads=False,
                     two_bottom_scale=False,
                     refusals={**{t: _EXTERNAL for t in _SSD_ONLY},
                               **{t: "x2paddle 1.6.0 fails on it" for t in ("AbsVal", "BNLL", "ELU", "Exp", "Clip")}},
                     description="x2paddle 1.6.0 → PaddlePaddle 2.6 inference"),
    # RKNN-Toolkit2 2.5.0 (x86 simulator, float16), observed 2026-12-06 on every form: within 1e-4..5e-4 (float16
    # rounding) on all but AbsVal, ELU, Exp, Clip (load_caffe IndexError), DepthwiseConvolution (its caffe.proto
    # lacks it), four-value pad (refused by its ONNX shape inference) and AVE pooling over padding (rel 0.33:
    # padding not counted). load_caffe drops PriorBox and DetectionOutput ("OP in Layer detection_out Current not
    # support!!!") and returns the raw heads.
    "rknn": Flavor("rknn", (COMMON - {"AbsVal", "ELU", "Exp"}) | {"Permute", "ReLU6"}, "ReLU6",
                   toolchain="RKNN-Toolkit2 2.5", postprocess="external", ave_pool_pads=False,
                   refusals={**{t: _EXTERNAL for t in _SSD_ONLY},
                             **{t: "RKNN-Toolkit2 2.5.0's load_caffe fails on it" for t in ("AbsVal", "ELU", "Exp",
                                                                                           "Clip")}},
                   description="Rockchip RKNN-Toolkit2 2.5 (rk3588; float16 simulator)"),
    # ncnn 1.0.20261020 via caffe2onnx 2.0.1 → pnnx 20261020 (fp16=0), observed 2026-12-06 on every form: refused
    # are AbsVal, BNLL, ELU, Exp, Clip (caffe2onnx exits), DepthwiseConvolution, the four-value pad (ONNX shape
    # inference), Eltwise PROD and MAX (caffe2onnx errors), MAX pooling with padding (the ncnn model does not load);
    # wrong are Eltwise SUM with coefficients (rel 1.69, dropped: portable's ReLU6 gives garbage), Softmax (rel 0.62),
    # a Concat of 4-D maps (rel 1.67: pnnx writes `0=1`, ncnn's h axis, once the batch is dropped; caffe2onnx's ONNX
    # is right in onnxruntime), a per-channel Scale (rel 0.39, MemoryData broadcast) and a two-bottom Scale (0.5).
    # The detectors' Concats (of flattened 2-D heads) and their uniform input Scale are exact. PriorBox and
    # DetectionOutput become non-ONNX custom ops.
    "ncnn": Flavor("ncnn", (COMMON - {"AbsVal", "BNLL", "ELU", "Exp", "Softmax"}) | {"Permute", "ReLU6"}, "ReLU6",
                   toolchain="caffe2onnx 2.0.1 + pnnx/ncnn 20261020", eltwise_coeff=False,
                   eltwise_ops=frozenset({"SUM"}), max_pool_pads=False, concat_4d=False, per_channel_scale=False,
                   two_bottom_scale=False, postprocess="external",
                   refusals={**{t: _EXTERNAL for t in _SSD_ONLY},
                             **{t: "the caffe2onnx → pnnx → ncnn route fails on it or computes it wrongly"
                                for t in ("AbsVal", "BNLL", "ELU", "Exp", "Clip", "Softmax")}},
                   description="ncnn through caffe2onnx + pnnx"),
    # HiSilicon NNIE (nnie_mapper), from its documentation: no ReLU6 (spelled ReLU/Power/Eltwise), depthwise as group
    # Convolution, Permute only (0, 2, 3, 1), SSD's DetectionOutput runs on the CPU (PriorBox is mapped).
    "nnie": Flavor("nnie", COMMON | {"Permute", "PriorBox"}, "portable", toolchain="HiSilicon NNIE mapper",
                   permute_orders=frozenset({(0, 2, 3, 1)}), postprocess="external",
                   refusals={"ReLU6": "NNIE has no ReLU6 (this flavor spells it ReLU/Power/Eltwise)",
                             "DetectionOutput": "NNIE runs SSD postprocessing on the CPU; " + _EXTERNAL},
                   description="HiSilicon NNIE (Hi35xx), from its documentation"),
})

TOOLCHAIN_FLAVORS = tuple(f for f in FLAVORS if f not in GENERIC_FLAVORS)


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise BackendError(f"unknown flavor '{name}' (known: {', '.join(FLAVORS)})") from None
