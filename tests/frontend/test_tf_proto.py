"""Our protobuf schemas and the TF graph loader, checked against TensorFlow and OpenCV.

* the checked-in ``_pb2`` modules are what ``tools/gen_protos.py`` generates from the schemas;
* ``tf_graph.proto`` declares every field TensorFlow's GraphDef has, with the same numbers and
  types, and real graphs (the fixtures) round-trip byte for byte;
* text-format graphs load and equal their binary form;
* ``tensor_to_numpy`` agrees with ``tf.make_ndarray`` for every dtype and encoding;
* every bad input makes the loader raise ModelLoadError naming the file;
* a small net written with ``caffe_schema_pb2`` runs in OpenCV and matches a numpy reference.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as caffe
from transpiler.errors import ModelLoadError, UnsupportedModelError
from transpiler.frontends.tf import tensors as tensors_mod
from transpiler.frontends.tf.loader import load_graphdef, looks_like_text, parse_graphdef
from transpiler.frontends.tf.proto import tf_graph_pb2 as pb
from transpiler.frontends.tf.tensors import dtype_to_numpy, numpy_to_tensor, tensor_to_numpy

REPO = Path(__file__).resolve().parents[2]


def _fixtures_dir() -> Path | None:
    candidates = (
        os.environ.get("TF2CAFFE_FIXTURES"),
        REPO.parent / "shared" / "fixtures",
        REPO / "shared" / "fixtures",
    )
    for cand in candidates:
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


FIXTURES = _fixtures_dir()
FIXTURE_PBS = sorted(FIXTURES.glob("*/model.pb")) if FIXTURES else []
# CI has ../shared/fixtures: their absence is an error, never a skip
needs_fixtures = pytest.mark.usefixtures("fixtures_present")


@pytest.fixture
def fixtures_present() -> None:
    assert FIXTURE_PBS, "model fixtures not found: ../shared/fixtures must sit beside the repository"


@pytest.fixture(scope="module")
def tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


# ----------------------------------------------------------------------------------------------
# (a) the generated modules are current
# ----------------------------------------------------------------------------------------------

_GEN = importlib.util.spec_from_file_location("gen_protos", REPO / "tools" / "gen_protos.py")
assert _GEN and _GEN.loader
gen_protos = importlib.util.module_from_spec(_GEN)
_GEN.loader.exec_module(gen_protos)

_STAMP_RE = re.compile(
    r"(# Protobuf Python Version: )[\d.]+|"
    r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,"
)


def _unstamp(text: str) -> str:
    return _STAMP_RE.sub(lambda m: (m.group(1) or m.group(2)) + "X", text)


def _serialized_descriptor(module_text: str) -> bytes:
    m = re.search(r"AddSerializedFile\((b'.*?')\)\n", module_text, re.DOTALL)
    assert m, "no serialized descriptor found in generated module"
    value = ast.literal_eval(m.group(1))
    assert isinstance(value, bytes)
    return value


def test_checked_in_modules_are_current(tmp_path: Path) -> None:
    import grpc_tools  # noqa: F401  (the test extra installs it)

    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_protos.py"), "--out-root", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for rel in gen_protos.PROTOS:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            name = rel.replace(".proto", suffix)
            fresh = (tmp_path / name).read_text(encoding="utf-8")
            checked_in = (REPO / name).read_text(encoding="utf-8")
            if suffix == "_pb2.py":
                assert _serialized_descriptor(fresh) == _serialized_descriptor(checked_in), (
                    f"{name} is stale: run python tools/gen_protos.py"
                )
                same_protoc = gen_protos.gencode_version(fresh) == gen_protos.gencode_version(checked_in)
            if same_protoc:  # other protoc versions may lay the same code out differently
                assert _unstamp(fresh) == _unstamp(checked_in), f"{name} differs: run tools/gen_protos.py"


def test_gencode_needs_no_newer_protobuf_than_declared() -> None:
    floor = gen_protos.pyproject_floor()
    assert floor is not None, "pyproject.toml declares no protobuf>= floor"
    for rel in gen_protos.PROTOS:
        text = (REPO / rel.replace(".proto", "_pb2.py")).read_text(encoding="utf-8")
        version = gen_protos.gencode_version(text)
        assert version is not None and version <= floor, (
            f"{rel}: generated for protobuf {version}, but pyproject.toml allows protobuf>={floor}"
        )


def test_conversion_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys, transpiler.frontends.tf.loader, transpiler.frontends.tf.tensors, "
        "transpiler.backends.caffe.proto.caffe_schema_pb2; "
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------------------------------------
# (b) tf_graph.proto matches TensorFlow's schema; real graphs round-trip
# ----------------------------------------------------------------------------------------------


def _real_oneof(field: Any) -> str | None:
    oneof = field.containing_oneof
    if oneof is None or (oneof.name == "_" + field.name and len(oneof.fields) == 1):
        return None
    return str(oneof.name)


def _compare_descriptors(ours: Any, theirs: Any, seen: set[str], problems: list[str]) -> None:
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    our_fields = {f.name: f for f in ours.fields}
    their_fields = {f.name: f for f in theirs.fields}
    for name in sorted(set(our_fields) ^ set(their_fields)):
        side = "only in ours" if name in our_fields else "missing from ours"
        problems.append(f"{theirs.full_name}.{name}: {side}")
    for name in sorted(set(our_fields) & set(their_fields)):
        a, b = our_fields[name], their_fields[name]
        where = f"{theirs.full_name}.{name}"
        # Presence of map-entry fields means nothing; TF declares GraphDebugInfo in proto2, we
        # in proto3 with `optional` (same wire format, a synthetic oneof per optional field).
        checks: tuple[str, ...] = ("number", "type", "is_repeated", "is_packed")
        if not ours.GetOptions().map_entry:
            checks += ("has_presence",)
        for attr in checks:
            if getattr(a, attr) != getattr(b, attr):
                problems.append(f"{where}: {attr} {getattr(a, attr)} != TF {getattr(b, attr)}")
        oneof_a = _real_oneof(a)
        oneof_b = _real_oneof(b)
        if oneof_a != oneof_b:
            problems.append(f"{where}: oneof {oneof_a} != TF {oneof_b}")
        if a.message_type is not None:
            if a.message_type.name != b.message_type.name:
                problems.append(f"{where}: type {a.message_type.name} != TF {b.message_type.name}")
            _compare_descriptors(a.message_type, b.message_type, seen, problems)
        if a.enum_type is not None:
            ours_values = {(v.name, v.number) for v in a.enum_type.values}
            their_values = {(v.name, v.number) for v in b.enum_type.values}
            if ours_values != their_values:
                problems.append(f"{where}: enum {a.enum_type.name} differs: {ours_values ^ their_values}")


def test_schema_matches_tensorflow(tf: Any) -> None:
    from tensorflow.core.framework import graph_pb2

    problems: list[str] = []
    _compare_descriptors(pb.GraphDef.DESCRIPTOR, graph_pb2.GraphDef.DESCRIPTOR, set(), problems)
    assert not problems, "\n".join(problems)


@needs_fixtures
@pytest.mark.parametrize("path", FIXTURE_PBS, ids=lambda p: p.parent.name)
def test_fixture_round_trips(tf: Any, path: Path) -> None:
    data = path.read_bytes()
    ours = load_graphdef(path)
    theirs = tf.compat.v1.GraphDef.FromString(data)
    assert len(ours.node) == len(theirs.node)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    # Every field of the fixture is declared in our schema (nothing rides along as unknown).
    stripped = pb.GraphDef()
    stripped.CopyFrom(ours)
    stripped.DiscardUnknownFields()
    assert stripped.SerializeToString(deterministic=True) == ours.SerializeToString(deterministic=True)


# ----------------------------------------------------------------------------------------------
# (c) text format
# ----------------------------------------------------------------------------------------------


def _graph_with_functions(tf: Any) -> Any:
    """A small TF2 graph whose library holds functions (while-loop body/cond, a called function)."""

    @tf.function
    def inner(x: Any) -> Any:
        return tf.nn.relu(x) * 2.0

    @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32)])
    def outer(x: Any) -> Any:
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, inner(v) - 1.0), (i, x))
        return tf.reduce_sum(y, axis=1, name="out")

    return outer.get_concrete_function().graph.as_graph_def()


def test_text_graph_equals_binary(tf: Any, tmp_path: Path) -> None:
    graph_def = _graph_with_functions(tf)
    assert len(graph_def.library.function) > 0
    tf.io.write_graph(graph_def, str(tmp_path), "g.pbtxt", as_text=True)
    tf.io.write_graph(graph_def, str(tmp_path), "g.pb", as_text=False)
    from_text = load_graphdef(tmp_path / "g.pbtxt")
    from_binary = load_graphdef(tmp_path / "g.pb")
    assert from_text == from_binary
    expected = graph_def.SerializeToString(deterministic=True)
    assert from_text.SerializeToString(deterministic=True) == expected
    # A text graph with a misleading name still loads (content decides).
    (tmp_path / "text_named.pb").write_bytes((tmp_path / "g.pbtxt").read_bytes())
    assert load_graphdef(tmp_path / "text_named.pb") == from_binary


@needs_fixtures
def test_text_fixture_equals_binary(tf: Any, tmp_path: Path) -> None:
    path = min(FIXTURE_PBS, key=lambda p: p.stat().st_size)
    theirs = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    tf.io.write_graph(theirs, str(tmp_path), "model.pbtxt", as_text=True)
    assert looks_like_text((tmp_path / "model.pbtxt").read_bytes())
    assert not looks_like_text(path.read_bytes())
    assert load_graphdef(tmp_path / "model.pbtxt") == load_graphdef(path)


# ----------------------------------------------------------------------------------------------
# (d) tensors
# ----------------------------------------------------------------------------------------------

# dtypes tf.make_tensor_proto can build (the *FNUZ float8 types it cannot; resource/variant
# have no values).
_TF_DTYPES = [d for d in range(1, 34) if d not in (pb.DT_RESOURCE, pb.DT_VARIANT) and d not in (26, 27, 28)]
_SHAPES: list[tuple[int, ...]] = [(), (0,), (3, 0, 2), (2, 3), (7,), (4, 5, 6)]


def _sample_values(tf: Any, dtype: int, count: int, rng: np.random.Generator) -> np.ndarray:
    tf_dtype = tf.dtypes.as_dtype(dtype)
    if dtype == pb.DT_STRING:
        return np.array([bytes([65 + i % 26]) * (i % 4) for i in range(count)], dtype=object)
    if dtype == pb.DT_BOOL:
        return rng.integers(0, 2, count).astype(bool)
    if tf_dtype.is_complex:
        return (rng.normal(size=count) + 1j * rng.normal(size=count)).astype(tf_dtype.as_numpy_dtype)
    if tf_dtype.is_floating:
        values = rng.normal(size=count) * 3
        return values.astype(np.float32).astype(tf_dtype.as_numpy_dtype)
    if tf_dtype.is_quantized:
        return rng.integers(0, 100, count)
    np_dtype = np.dtype(tf_dtype.as_numpy_dtype)
    if np_dtype.itemsize == 8:  # full 64-bit range, extremes included
        wide = rng.integers(0, 2**63 - 1, count, endpoint=True, dtype=np.int64).astype(np.uint64) * 2 + 1
        wide[: min(count, 2)] = [0, np.iinfo(np_dtype).max][: min(count, 2)]
        return wide.view(np_dtype) if np_dtype.kind == "i" else wide.astype(np_dtype)
    return rng.integers(int(tf_dtype.min), int(tf_dtype.max), count, endpoint=True).astype(np_dtype)


def _plain(array: np.ndarray) -> np.ndarray:
    """TF's result in our representation: quantized structs → ints, narrow formats widened."""
    if array.dtype.names:
        array = array[array.dtype.names[0]]
    name = array.dtype.name
    if name == "bfloat16" or name.startswith("float8") or name.startswith("float4"):
        return array.astype(np.float32)
    if name in ("int4", "int2"):
        return array.astype(np.int8)
    if name in ("uint4", "uint2"):
        return array.astype(np.uint8)
    return np.asarray(array)


def _assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    theirs = _plain(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype or (ours.dtype == object and theirs.dtype.kind in "OS")
    if ours.dtype == object:
        assert ours.tolist() == theirs.tolist()
    else:
        np.testing.assert_array_equal(ours, theirs)


def _with_list(tf: Any, dtype: int, shape: tuple[int, ...], values: np.ndarray) -> Any:
    """A TF TensorProto holding ``values`` in the typed list (not tensor_content)."""
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    field = tensors_mod._LIST_FIELD[dtype]
    flat = np.asarray(values).reshape(-1)
    if field == "half_val":
        storage = flat.astype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)
        proto.half_val.extend(storage.view(np.uint16).astype(np.int32).tolist())
    elif field == "float8_val":
        proto.float8_val = flat.astype(tf.dtypes.as_dtype(dtype).as_numpy_dtype).tobytes()
    elif field in ("scomplex_val", "dcomplex_val"):
        getattr(proto, field).extend(np.stack([flat.real, flat.imag], axis=1).reshape(-1).tolist())
    elif field == "string_val":
        proto.string_val.extend(flat.tolist())
    else:
        getattr(proto, field).extend(
            np.asarray(flat).astype(np.int64 if field == "int_val" else flat.dtype).tolist()
        )
    return proto


def _ours(tf_proto: Any) -> pb.TensorProto:
    return pb.TensorProto.FromString(tf_proto.SerializeToString())


@pytest.mark.parametrize("dtype", _TF_DTYPES, ids=lambda d: pb.DataType.Name(d))
def test_tensor_to_numpy_matches_tensorflow(tf: Any, dtype: int) -> None:
    rng = np.random.default_rng(dtype)
    tf_dtype = tf.dtypes.as_dtype(dtype)
    for shape in _SHAPES:
        count = math.prod(shape)
        values = _sample_values(tf, dtype, count, rng).reshape(shape)
        # TF's own encoding (tensor_content for most numeric types, a typed list for the rest).
        made = tf.make_tensor_proto(values, dtype=tf_dtype, shape=list(shape))
        _assert_same(tensor_to_numpy(_ours(made)), tf.make_ndarray(made))
        assert tensor_to_numpy(_ours(made)).dtype == dtype_to_numpy(dtype)
        # The typed list, full length.
        listed = _with_list(tf, dtype, shape, values)
        _assert_same(tensor_to_numpy(_ours(listed)), tf.make_ndarray(listed))
        if count < 2 or dtype == pb.DT_STRING:  # make_ndarray cannot splat strings
            continue
        # Splat forms: one value, a few values (the last repeats), no values (zeros).
        for n in (1, min(3, count - 1), 0):
            short = _with_list(tf, dtype, shape, values.reshape(-1)[:n])
            _assert_same(tensor_to_numpy(_ours(short)), tf.make_ndarray(short))


def test_string_splat_and_empty() -> None:
    proto = pb.TensorProto(dtype=pb.DT_STRING, string_val=[b"a", b"bc"])
    proto.tensor_shape.dim.add().size = 4
    assert tensor_to_numpy(proto).tolist() == [b"a", b"bc", b"bc", b"bc"]
    del proto.string_val[:]
    assert tensor_to_numpy(proto).tolist() == [b""] * 4


def test_minifloat_tables_match_ml_dtypes() -> None:
    import ml_dtypes  # TensorFlow's own dependency
    for dtype, spec in tensors_mod._MINIFLOAT.items():
        codes = np.arange(1 << spec[0], dtype=np.uint8)
        expected = codes.view(getattr(ml_dtypes, spec[5])).astype(np.float32)
        np.testing.assert_array_equal(tensors_mod._minifloat_table(dtype), expected, err_msg=spec[5])


def test_bfloat16_without_ml_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    bits = np.array([0x3FC0, 0xC000, 0x0001, 0x7F80, 0xFF80, 0x7FC1, 0x8000], dtype=np.uint16)
    with_ml = tensors_mod._bfloat16_bits_to_float32(bits)
    monkeypatch.setattr(tensors_mod, "_try_ml_dtypes", lambda: None)
    without = tensors_mod._bfloat16_bits_to_float32(bits)
    assert without.dtype == np.float32
    np.testing.assert_array_equal(with_ml.view(np.uint32), without.view(np.uint32))
    np.testing.assert_array_equal(without[:2], [1.5, -2.0])


def test_unsupported_and_malformed_tensors() -> None:
    for dtype in (pb.DT_RESOURCE, pb.DT_VARIANT):
        with pytest.raises(UnsupportedModelError):
            tensor_to_numpy(pb.TensorProto(dtype=dtype))
        with pytest.raises(UnsupportedModelError):
            dtype_to_numpy(dtype)
    assert dtype_to_numpy(pb.DT_FLOAT_REF) == np.float32
    bad = pb.TensorProto(dtype=pb.DT_FLOAT, tensor_content=b"\x00" * 7)
    bad.tensor_shape.dim.add().size = 2
    with pytest.raises(ModelLoadError, match="needs 8 bytes"):
        tensor_to_numpy(bad)
    unknown = pb.TensorProto(dtype=pb.DT_FLOAT)
    unknown.tensor_shape.dim.add().size = -1
    with pytest.raises(ModelLoadError):
        tensor_to_numpy(unknown)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.float64(2.5),
        np.zeros((0, 3), dtype=np.int64),
        np.array([[1, -2], [3, 4]], dtype=np.int8),
        np.array([1, 2**63 + 5], dtype=np.uint64),
        np.array([True, False, True]),
        np.array([1 + 2j, -3j], dtype=np.complex64),
        np.array([0.5, -65504.0], dtype=np.float16),
        np.array([[b"ab", b""], [b"c", b"\xff"]], dtype=object),
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian input is stored little-endian
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_numpy_to_tensor_round_trip(tf: Any, array: np.ndarray) -> None:
    proto = numpy_to_tensor(array)
    back = tensor_to_numpy(proto)
    assert back.shape == array.shape
    assert back.tolist() == array.tolist()
    theirs = tf.make_ndarray(tf.make_tensor_proto(0).FromString(proto.SerializeToString()))
    assert np.asarray(theirs).tolist() == array.tolist()


def test_numpy_to_tensor_ml_dtypes() -> None:
    import ml_dtypes  # TensorFlow's own dependency
    values = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        back = tensor_to_numpy(numpy_to_tensor(values.astype(getattr(ml_dtypes, name))))
        np.testing.assert_array_equal(back, values)
    ints = np.array([-8, 7, -1], dtype=ml_dtypes.int4)
    np.testing.assert_array_equal(tensor_to_numpy(numpy_to_tensor(ints)), [-8, 7, -1])


# ----------------------------------------------------------------------------------------------
# (e) bad inputs
# ----------------------------------------------------------------------------------------------


def _node_graph(*nodes: tuple[str, str, list[str]]) -> bytes:
    graph = pb.GraphDef()
    for name, op, inputs in nodes:
        graph.node.add(name=name, op=op, input=inputs)
    return graph.SerializeToString()


def _bad_inputs(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(path, expected fragment of the message) for every kind of bad input."""
    yield tmp_path / "missing.pb", "no such file"
    (tmp_path / "adir").mkdir()
    yield tmp_path / "adir", "directory"
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    yield saved, "SavedModel"
    yield saved / "saved_model.pb", "SavedModel"
    (tmp_path / "empty.pb").write_bytes(b"")
    yield tmp_path / "empty.pb", "empty"
    rng = np.random.default_rng(0)
    for i in range(5):
        path = tmp_path / f"random{i}.pb"
        path.write_bytes(rng.integers(0, 256, 64 + 1000 * i, dtype=np.uint8).tobytes())
        yield path, ""
    (tmp_path / "caffe.prototxt").write_text('name: "net"\nlayer { name: "x" type: "ReLU" }\n')
    yield tmp_path / "caffe.prototxt", "text-format"
    (tmp_path / "notes.pbtxt").write_text("just some words\n")
    yield tmp_path / "notes.pbtxt", "text-format"
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    yield tmp_path / "model.h5", "HDF5"
    (tmp_path / "no_op.pb").write_bytes(_node_graph(("a", "Const", []), ("b", "", ["a"])))
    yield tmp_path / "no_op.pb", "has no op"
    (tmp_path / "no_name.pb").write_bytes(_node_graph(("", "Const", [])))
    yield tmp_path / "no_name.pb", "has no name"
    (tmp_path / "dup.pb").write_bytes(_node_graph(("a", "Const", []), ("a", "Const", [])))
    yield tmp_path / "dup.pb", "two nodes"
    (tmp_path / "dangling.pb").write_bytes(_node_graph(("a", "Relu", ["b:0"])))
    yield tmp_path / "dangling.pb", "not in the graph"
    (tmp_path / "nodes0.pb").write_bytes(pb.GraphDef(versions=pb.VersionDef(producer=1)).SerializeToString())
    yield tmp_path / "nodes0.pb", "no nodes"
    if FIXTURE_PBS:
        data = min(FIXTURE_PBS, key=lambda p: p.stat().st_size).read_bytes()
        cuts = [len(data) - 1, len(data) // 2, 1, 3, *rng.integers(2, len(data) - 64, 40).tolist()]
        for cut in cuts:
            path = tmp_path / f"truncated_{cut}.pb"
            path.write_bytes(data[:cut])
            yield path, ""


def test_bad_inputs_raise_model_load_error(tmp_path: Path) -> None:
    for path, fragment in _bad_inputs(tmp_path):
        with pytest.raises(ModelLoadError) as info:
            load_graphdef(path)
        message = str(info.value)
        assert str(path) in message, message
        assert fragment in message, message
        assert "\n" not in message, message


def test_parse_graphdef_bytes() -> None:
    graph = parse_graphdef(_node_graph(("a", "Const", []), ("b", "Relu", ["a", "^a"])))
    assert [n.name for n in graph.node] == ["a", "b"]
    with pytest.raises(ModelLoadError):
        parse_graphdef(b"")


# ----------------------------------------------------------------------------------------------
# (f) the Caffe schema, read by OpenCV
# ----------------------------------------------------------------------------------------------


def _blob(array: np.ndarray) -> caffe.BlobProto:
    blob = caffe.BlobProto()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(np.asarray(array, dtype=np.float32).reshape(-1).tolist())
    return blob


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int, group: int = 1) -> np.ndarray:
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1))
    og = o // group
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i : i + out.shape[2], j : j + out.shape[3]]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * og : (g + 1) * og, :, i, j]
                )
    return out + b.reshape(1, -1, 1, 1)


def _layer(
    net: caffe.NetParameter, name: str, type_: str, bottom: list[str], blobs: tuple[np.ndarray, ...] = ()
) -> caffe.LayerParameter:
    layer = net.layer.add(name=name, type=type_, bottom=bottom, top=[name])
    for array in blobs:
        layer.blobs.append(_blob(array))
    return layer


def test_caffe_net_runs_in_opencv(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(42)
    x = rng.normal(size=(1, 3, 8, 8))
    w1, b1 = rng.normal(size=(4, 3, 3, 3)) * 0.3, rng.normal(size=4)
    mean, var, eps = rng.normal(size=4), rng.uniform(0.5, 2, size=4), 1e-3
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    wd, bd = rng.normal(size=(4, 1, 3, 3)) * 0.3, rng.normal(size=4)
    wf, bf = rng.normal(size=(10, 128)) * 0.1, rng.normal(size=10)

    net = caffe.NetParameter(name="tiny")
    data = net.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add().dim.extend(x.shape)
    _layer(net, "conv1", "Convolution", ["data"], (w1, b1)).convolution_param.MergeFrom(
        caffe.ConvolutionParameter(num_output=4, kernel_size=[3], pad=[1], stride=[1])
    )
    bn = _layer(net, "bn1", "BatchNorm", ["conv1"], (mean * 2, var * 2, np.array([2.0])))
    bn.batch_norm_param.MergeFrom(caffe.BatchNormParameter(use_global_stats=True, eps=eps))
    _layer(net, "scale1", "Scale", ["bn1"], (gamma, beta)).scale_param.bias_term = True
    _layer(net, "relu1", "ReLU", ["scale1"])
    _layer(net, "dw", "Convolution", ["relu1"], (wd, bd)).convolution_param.MergeFrom(
        caffe.ConvolutionParameter(num_output=4, kernel_size=[3], pad=[1], group=4)
    )
    _layer(net, "shift", "Power", ["dw"]).power_param.MergeFrom(caffe.PowerParameter(shift=-0.5, scale=2.0))
    _layer(net, "sig", "Sigmoid", ["shift"])
    _layer(net, "sum", "Eltwise", ["relu1", "sig"]).eltwise_param.MergeFrom(
        caffe.EltwiseParameter(operation=caffe.EltwiseParameter.SUM, coeff=[1.0, -0.5])
    )
    _layer(net, "cat", "Concat", ["sum", "conv1"]).concat_param.axis = 1
    _layer(net, "pool", "Pooling", ["cat"]).pooling_param.MergeFrom(
        caffe.PoolingParameter(pool=caffe.PoolingParameter.MAX, kernel_size=2, stride=2)
    )
    _layer(net, "perm", "Permute", ["pool"]).permute_param.order.extend([0, 2, 3, 1])
    _layer(net, "flat", "Flatten", ["perm"]).flatten_param.axis = 1
    _layer(net, "fc", "InnerProduct", ["flat"], (wf, bf)).inner_product_param.num_output = 10
    _layer(net, "prob", "Softmax", ["fc"]).softmax_param.axis = 1

    deploy = caffe.NetParameter()
    deploy.CopyFrom(net)
    for layer in deploy.layer:
        del layer.blobs[:]
    prototxt, caffemodel = tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel"
    prototxt.write_text(text_format.MessageToString(deploy))
    caffemodel.write_bytes(net.SerializeToString())
    assert caffe.NetParameter.FromString(caffemodel.read_bytes()) == net

    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    cv_net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cv_net.enableWinograd(False)
    cv_net.setInput(x.astype(np.float32))
    got_fc, got_prob = cv_net.forward(["fc", "prob"])

    conv1 = _conv_ref(x, w1, b1, pad=1)
    bn1 = (conv1 - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + eps)
    relu1 = np.maximum(bn1 * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1), 0)
    sig = 1 / (1 + np.exp(-(2.0 * _conv_ref(relu1, wd, bd, pad=1, group=4) - 0.5)))
    cat = np.concatenate([relu1 - 0.5 * sig, conv1], axis=1)
    pool = cat.reshape(1, 8, 4, 2, 4, 2).max(axis=(3, 5))
    fc = pool.transpose(0, 2, 3, 1).reshape(1, -1) @ wf.T + bf
    prob = np.exp(fc - fc.max()) / np.exp(fc - fc.max()).sum()
    for got, ref in ((got_fc, fc), (got_prob, prob)):
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def _prior_box_ref(
    fh: int, fw: int, img: int, min_s: float, max_s: float, ar: float, step: float
) -> np.ndarray:
    boxes = []
    for i in range(fh):
        for j in range(fw):
            cx, cy = (j + 0.5) * step, (i + 0.5) * step
            sizes = [(min_s, min_s), (math.sqrt(min_s * max_s),) * 2]
            sizes += [
                (min_s * math.sqrt(ar), min_s / math.sqrt(ar)),
                (min_s / math.sqrt(ar), min_s * math.sqrt(ar)),
            ]
            for bw, bh in sizes:
                boxes.append(
                    [(cx - bw / 2) / img, (cy - bh / 2) / img, (cx + bw / 2) / img, (cy + bh / 2) / img]
                )
    coords = np.array(boxes).reshape(-1)
    return np.stack([coords, np.tile([0.1, 0.1, 0.2, 0.2], len(boxes))])[None]


def test_caffe_prior_box_in_opencv(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    net = caffe.NetParameter(name="priors")
    for name, shape in (("feat", [1, 2, 4, 4]), ("image", [1, 3, 32, 32])):
        net.layer.add(name=name, type="Input", top=[name]).input_param.shape.add().dim.extend(shape)
    layer = net.layer.add(name="prior", type="PriorBox", bottom=["feat", "image"], top=["prior"])
    layer.prior_box_param.MergeFrom(
        caffe.PriorBoxParameter(
            min_size=[6.0], max_size=[20.0], aspect_ratio=[2.0], flip=True, clip=False,
            variance=[0.1, 0.1, 0.2, 0.2], step=8.0, offset=0.5,
        )
    )  # fmt: skip
    prototxt = tmp_path / "prior.prototxt"
    prototxt.write_text(text_format.MessageToString(net))
    assert "prior_box_param {" in prototxt.read_text() and "clip: false" in prototxt.read_text()
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt))
    cv_net.setInputsNames(["feat", "image"])
    cv_net.setInput(np.zeros((1, 2, 4, 4), np.float32), "feat")
    cv_net.setInput(np.zeros((1, 3, 32, 32), np.float32), "image")
    got = cv_net.forward("prior")
    ref = _prior_box_ref(4, 4, 32, 6.0, 20.0, 2.0, 8.0)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_caffe_field_numbers_that_matter() -> None:
    """Spot checks of numbers other Caffe readers depend on (SSD-Caffe numbering)."""
    layer = caffe.LayerParameter.DESCRIPTOR.fields_by_name
    expected = {
        "name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7, "convolution_param": 106,
        "batch_norm_param": 139, "scale_param": 142, "input_param": 143, "clip_param": 148,
        "annotated_data_param": 200, "multibox_loss_param": 201, "permute_param": 202,
        "prior_box_param": 203, "detection_output_param": 204, "detection_evaluate_param": 205,
        "norm_param": 206,
    }  # fmt: skip
    assert {k: layer[k].number for k in expected} == expected
    numbers = [f.number for f in caffe.LayerParameter.DESCRIPTOR.fields]
    assert len(numbers) == len(set(numbers))
    assert caffe.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
    blob = caffe.BlobProto.DESCRIPTOR.fields_by_name
    assert (blob["shape"].number, blob["data"].number, blob["data"].is_packed) == (7, 5, True)
    det = caffe.DetectionOutputParameter.DESCRIPTOR.fields_by_name
    assert (det["code_type"].number, det["keep_top_k"].number, det["variance_encoded_in_target"].number) == (
        6,
        7,
        8,
    )
