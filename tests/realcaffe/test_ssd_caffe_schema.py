"""Our Caffe schema (backends/caffe/proto/caffe_schema.proto, written by us) against SSD-Caffe's own.

Reference: weiliu89 SSD-Caffe's caffe.proto, read from the generated code in the `caffe-ssd` wheel
(tests/real_caffe.py: ssd_caffe_schema). Every field the two schemas share by name has the same number,
label, type and default-relevant enum values, and every file the ssd flavor writes for a detector
(deploy, train, test, solver, labelmap, caffemodel) parses with SSD-Caffe's schema with nothing unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import fixture_model, real_caffe_piece
from e2e_helpers import convert_model
from google.protobuf import message_factory, text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

OURS_ONLY = {("LayerParameter", "clip_param"), ("LayerParameter", "depthwise_conv_param")}  # BVLC's Clip, ours


@pytest.fixture(scope="module")
def ssd_pool() -> Any:
    from real_caffe import ssd_caffe_schema

    return real_caffe_piece(ssd_caffe_schema)


def _signature(field: Any) -> tuple:
    return (field.number, field.is_repeated, field.is_required, field.is_packed, field.type,
            field.message_type.name if field.message_type else None)


def _unknown_fields(message: Any, path: str = "") -> list[str]:
    """Paths of every (nested) message holding fields the schema does not know."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    found = [path or message.DESCRIPTOR.name] if len(UnknownFieldSet(message)) else []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for i, item in enumerate(value if field.is_repeated else [value]):
            found += _unknown_fields(item, f"{path}.{field.name}[{i}]")
    return found


def test_shared_fields_have_ssd_caffes_numbers_and_types(ssd_pool: Any) -> None:
    problems, compared = [], 0
    for ours in cp.DESCRIPTOR.message_types_by_name.values():
        try:
            theirs = ssd_pool.FindMessageTypeByName(f"caffe.{ours.name}")
        except KeyError:
            continue
        their_fields = {f.name: f for f in theirs.fields}
        their_numbers = {f.number: f.name for f in theirs.fields}
        for field in ours.fields:
            twin = their_fields.get(field.name)
            if twin is None:
                if (ours.name, field.name) not in OURS_ONLY:
                    problems.append(f"{ours.name}.{field.name} = {field.number}: not in SSD-Caffe")
                elif field.number in their_numbers:
                    problems.append(f"{ours.name}.{field.name} = {field.number} collides with SSD-Caffe's "
                                    f"{their_numbers[field.number]}")
                continue
            compared += 1
            ours_sig = _signature(field)
            their_sig = _signature(twin)
            if ours_sig != their_sig:
                problems.append(f"{ours.name}.{field.name}: ours {ours_sig}, SSD-Caffe {their_sig}")
            if field.enum_type is not None:
                their_values = {v.name: v.number for v in twin.enum_type.values}
                for value in field.enum_type.values:
                    if their_values.get(value.name) != value.number:
                        problems.append(f"{ours.name}.{field.name}: enum {value.name} = {value.number}, "
                                        f"SSD-Caffe {their_values.get(value.name)}")
            if field.has_default_value != twin.has_default_value or (
                    field.has_default_value and field.default_value != twin.default_value):
                problems.append(f"{ours.name}.{field.name}: default {field.default_value!r}, "
                                f"SSD-Caffe {twin.default_value!r}")
    assert not problems, "\n".join(problems)
    assert compared > 300  # the shared messages: blobs, nets, layers and every parameter we write


def test_every_emitted_file_parses_with_ssd_caffes_schema(ssd_pool: Any, tmp_path: Path) -> None:
    name = "pedestrian_ssdlite"
    convert_model(fixture_model(name), tmp_path, emit=("deploy", "train", "test", "solver"),
                  pipeline_config=fixture_model(name).parent / "pipeline.config")

    def message(type_name: str) -> Any:
        return message_factory.GetMessageClass(ssd_pool.FindMessageTypeByName(f"caffe.{type_name}"))()

    for file, type_name in [("deploy.prototxt", "NetParameter"), ("train.prototxt", "NetParameter"),
                            ("test.prototxt", "NetParameter"), ("solver.prototxt", "SolverParameter"),
                            ("labelmap.prototxt", "LabelMap")]:
        text_format.Parse((tmp_path / file).read_text(), message(type_name))  # raises on any unknown name
    for file in ("deploy.caffemodel", "finetune_init.caffemodel"):
        raw = (tmp_path / file).read_bytes()
        net = message("NetParameter")
        net.ParseFromString(raw)
        unknown = _unknown_fields(net)
        assert not unknown, f"{file}: fields SSD-Caffe does not know in {unknown[:5]}"
        assert net.SerializeToString() == raw  # same numbers and wire types (packed floats) throughout
