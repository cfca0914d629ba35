"""select-classes: keep only some classes of a detector (``--keep-classes``), by slicing its heads.

A class predictor convolution outputs, per anchor ``a``, the logits of the background and the ``C``
classes: channel ``a·(C+1) + c``. Keeping classes ``k₁…k_K`` (new labels ``1…K``) keeps channels
``a·(C+1) + c`` for ``c ∈ (0, k₁, …, k_K)``, in that order, for every anchor; the Reshape after the
convolution gets ``K+1`` classes. Nothing else changes: each kept class's logits are the full
model's, and per-class NMS (sigmoid scores) sees the same boxes and scores, so the detections are
the full model's detections of those classes, relabelled. Runs on the NHWC IR, before
ssd-detection-output.
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import UsageError
from transpiler.ir.core import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.ssd_detection_output import heads_of


@register_pass("select-classes")
class SelectClasses(Pass):
    """Slice the class predictors down to the classes in options['keep_classes'] (TF ids)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        keep = ctx.options.get("keep_classes")
        if not keep or graph.metadata.get("class_selection"):
            return False
        post = next((n for n in graph.nodes if n.op == "SSDPostprocess"), None)
        if post is None:
            raise UsageError("--keep-classes applies to detectors only")
        box_convs, cls_convs = heads_of(post.inputs[0], "box encodings"), heads_of(post.inputs[1], "class logits")
        for box, cls in zip(box_convs, cls_convs, strict=True):
            per_cell = box.output.static_shape[3] // 4
            width = cls.output.static_shape[3] // per_cell  # C + 1
            if max(keep) >= width:
                raise UsageError(f"--keep-classes: class id {max(keep)} exceeds the model's {width - 1} classes")
            columns = [0, *keep]
            channels = [a * width + c for a in range(per_cell) for c in columns]
            w = cls.inputs[1].const
            assert w is not None
            graph.set_input(cls, 1, graph.constant(cls.name + "/weights_kept", np.ascontiguousarray(w[..., channels])))
            if len(cls.inputs) > 2 and cls.inputs[2].const is not None:
                graph.set_input(cls, 2, graph.constant(cls.name + "/bias_kept", cls.inputs[2].const[channels]))
            cls.output.tf_name = None  # no longer equal to a TF tensor (columns dropped)
            for user in cls.output.users:
                if user.op != "Reshape" or int(user.attrs["shape"][-1]) != width:
                    raise UsageError(f"--keep-classes: unexpected {user.describe()} after {cls.describe()}")
                user.attrs["shape"] = (*tuple(user.attrs["shape"])[:-1], len(columns))
                user.output.tf_name = None
        post.inputs[1].tf_name = None
        graph.metadata["class_selection"] = list(keep)
        return True
