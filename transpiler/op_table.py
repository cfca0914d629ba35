"""``python -m transpiler ops [--flavor F]``: the TF ops the converter handles and the Caffe layers each becomes.

The op list is the frontend's handler registry (``TF_HANDLERS``: built-ins and loaded plugins). The Caffe
side comes from :data:`CAFFE_FORMS`: per TF op, the alternative layer combinations the backend writes
(which one depends on the operands, e.g. ``Mul`` by a scalar is a Power, by a map an Eltwise). A form is
listed for a flavor only when every layer type in it is in that flavor's table (backends/caffe/flavors.py);
an op none of whose forms fits is shown as unavailable there, with the layer types it lacks. Ops that only
feed shapes or constants are folded away before the backend (``(folded)``). New ops add a row here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transpiler.backends.caffe.flavors import Flavor

# TF op -> alternative Caffe layer combinations ("+" joins the layers of one form). The form used depends on
# the operands; conversion refuses (listing every such node) what none of them expresses exactly.
CAFFE_FORMS: dict[str, tuple[str, ...]] = {
    "Conv2D": ("Convolution",),
    "DepthwiseConv2dNative": ("Convolution", "DepthwiseConvolution"),
    "Conv2DBackpropInput": ("Deconvolution", "Deconvolution+Slice"),
    "MaxPool": ("Pooling", "Pooling+Slice", "Pooling+Slice+Power"),
    "AvgPool": ("Pooling", "Pooling+Slice", "Pooling+Scale", "Pooling+Slice+Scale"),
    "FusedBatchNorm": ("Scale", "(folded into the convolution)"),
    "MatMul": ("InnerProduct",),
    "BiasAdd": ("(folded into the convolution)", "Scale"),
    "Relu": ("ReLU",),
    "Relu6": ("ReLU6", "Clip", "ReLU+Power+Eltwise"),
    "ClipByValue": ("Clip", "Power+ReLU"),
    "LeakyRelu": ("ReLU",),
    "Elu": ("ELU",),
    "Sigmoid": ("Sigmoid",),
    "Tanh": ("TanH",),
    "Softplus": ("BNLL",),
    "Exp": ("Exp",),
    "Log": ("Log",),
    "Abs": ("AbsVal",),
    "Square": ("Power",),
    "Sqrt": ("Power",),
    "Rsqrt": ("Power",),
    "Reciprocal": ("Power",),
    "Pow": ("Power",),
    "Neg": ("Power",),
    "Add": ("Power", "Scale", "Eltwise", "Power+Scale+Eltwise", "Reshape+Power+Scale+Eltwise", "Concat+Eltwise"),
    "Sub": ("Power", "Scale", "Eltwise", "Power+Scale+Eltwise", "Reshape+Power+Scale+Eltwise", "Concat+Eltwise"),
    "Mul": ("Power", "Scale", "Eltwise", "Power+Scale+Eltwise", "Reshape+Scale", "Concat+Eltwise"),
    "RealDiv": ("Power", "Scale", "Power+Eltwise", "Power+Scale+Eltwise", "Reshape+Power+Scale+Eltwise",
                "Concat+Power+Eltwise"),
    "Maximum": ("ReLU", "Power+ReLU", "Eltwise", "Power+Scale+Eltwise", "Reshape+Power+Scale+Eltwise",
                "Concat+Eltwise"),
    "Minimum": ("Power+ReLU", "Power+Eltwise", "Power+Scale+Eltwise", "Reshape+Power+Scale+Eltwise",
                "Concat+Power+Eltwise"),
    "SquaredDifference": ("Eltwise+Power",),
    "Mean": ("Pooling", "Reshape+Pooling"),
    "Max": ("Pooling", "Reshape+Pooling"),
    "Min": ("Reshape+Power+Pooling",),
    "Sum": ("Reshape+Pooling+Power",),
    "Softmax": ("Softmax",),
    "LogSoftmax": ("Reshape+Pooling+Power+Scale+Eltwise+Exp+Log", "Reshape+Pooling+Power+Concat+Eltwise+Exp+Log"),
    "Pad": ("(folded into the convolution)", "Convolution", "Convolution+Power+Eltwise", "InnerProduct"),
    "ConcatV2": ("Concat",),
    "Reshape": ("Reshape", "Flatten", "Permute+Reshape"),
    "Squeeze": ("Reshape", "Flatten"),
    "ExpandDims": ("Reshape",),
    "Transpose": ("Permute",),
    # structural ops (rows as their emitters, backends/caffe/emit_shapes.py, write them)
    "Slice": ("Slice", "Slice+Reshape", "Slice+Permute+Reshape"),
    "StridedSlice": ("Slice", "Slice+Pooling", "Reshape", "Slice+Reshape", "Slice+Permute+Reshape"),
    "Split": ("Slice",),
    "SplitV": ("Slice",),
    "Unpack": ("Slice+Reshape", "Slice+Permute+Reshape"),
    "Pack": ("Reshape+Concat", "Permute+Reshape+Concat", "Deconvolution"),  # the last: FPN nearest upsampling
    "Tile": ("Concat",),
    "ResizeNearestNeighbor": ("Deconvolution",),
    "SpaceToBatchND": ("(folded into a dilated convolution)",),
    "BatchToSpaceND": ("(folded into a dilated convolution)",),
}
ALIASES = {"BatchMatMul": "MatMul", "BatchMatMulV2": "MatMul", "BatchMatMulV3": "MatMul",
           "AddV2": "Add", "Inv": "Reciprocal", "FusedBatchNormV2": "FusedBatchNorm",
           "FusedBatchNormV3": "FusedBatchNorm", "PadV2": "Pad", "Concat": "ConcatV2"}
# Ops that only compute shapes/constants or pass values through: gone before the backend.
FOLDED = frozenset({"Const", "Identity", "IdentityN", "StopGradient", "Snapshot", "PreventGradient",
                    "PlaceholderWithDefault", "EnsureShape", "Shape", "Cast", "Fill", "Range"})


def _layers(form: str) -> list[str]:
    return [] if form.startswith("(") else form.split("+")


def forms_for(op: str, flavor: Flavor | None) -> tuple[list[str], set[str]]:
    """The forms of TF op ``op`` that ``flavor`` can write (all when None), and the layer types missing from
    the forms it cannot."""
    forms = CAFFE_FORMS.get(ALIASES.get(op, op), ())
    if flavor is None:
        return list(forms), set()
    if op == "Relu6":  # each flavor writes exactly one form of it
        forms = ({"ReLU6": "ReLU6", "Clip": "Clip"}.get(flavor.relu6, "ReLU+Power+Eltwise"),)
    elif op == "ClipByValue":  # Clip where the flavor has it
        forms = ("Clip",) if "Clip" in flavor.layer_types else ("Power+ReLU",)
    ok = [f for f in forms if set(_layers(f)) <= flavor.layer_types]
    missing = {t for f in forms if f not in ok for t in _layers(f) if t not in flavor.layer_types}
    return ok, missing


def table(flavor: str | None) -> list[tuple[str, str]]:
    """(TF op, Caffe layers) rows for every op with a handler, sorted by op name."""
    from transpiler.backends.caffe.flavors import get_flavor
    from transpiler.frontends.tf import handlers  # noqa: F401  (registers the built-in handlers)
    from transpiler.frontends.tf.registry import TF_HANDLERS

    chosen = get_flavor(flavor) if flavor else None
    rows = []
    for op in sorted(TF_HANDLERS):
        if op in FOLDED:
            rows.append((op, "(folded: constants, shapes, pass-through)"))
            continue
        ok, missing = forms_for(op, chosen)
        if ok:
            rows.append((op, " | ".join(ok)))
        elif missing:
            rows.append((op, f"not in this flavor (needs {', '.join(sorted(missing))})"))
        else:
            rows.append((op, "(see the IR op it becomes; no table row)"))
    return rows


def run_ops(argv: Sequence[str]) -> int:
    """Print the table; ``--flavor F`` restricts the Caffe forms to what flavor F has. Returns the exit code."""
    from transpiler.backends.caffe.flavors import FLAVORS

    parser = argparse.ArgumentParser(prog="python -m transpiler ops",
                                     description="List the TF ops the converter handles and the Caffe layers "
                                                 "each becomes (alternatives separated by |; + joins one form's "
                                                 "layers).")
    parser.add_argument("--flavor", choices=sorted(FLAVORS), help="only the forms this Caffe flavor can run")
    args = parser.parse_args(list(argv))
    rows = table(args.flavor)
    width = max(len(op) for op, _ in rows) + 2
    title = f"flavor {args.flavor}" if args.flavor else "all flavors"
    print(f"{'TF op':<{width}}Caffe layers ({title})")
    for op, layers in rows:
        print(f"{op:<{width}}{layers}")
    return 0
