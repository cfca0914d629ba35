"""The SavedModel route, checked against TensorFlow itself (no TensorFlow in the conversion).

* our ``saved_model.proto`` declares its fields with TensorFlow's numbers and types;
* crc32c: see test_crc32c_batch.py;
* the checkpoint reader returns exactly what ``tf.train.load_checkpoint`` returns, for checkpoints
  TF wrote with several shards, dtypes float16/float32/float64/int32/int64/bool/string, empty,
  scalar and large tensors, and an index of several blocks;
* damaged checkpoints (a flipped byte in a value or an index block, a bad footer magic, truncated
  files) are refused naming the file; through the CLI, exit 2, one line, nothing written;
* SavedModels written by Keras 3 ``model.export``, ``tf.saved_model.save(keras_model)``, a
  ``tf.Module`` with two signatures, TF1's SavedModelBuilder (resource and ref variables) and a
  MobileNetV2 convert, and the Caffe net run by OpenCV matches the SavedModel's own signature run
  by TF: max|Δ| ≤ 1e-4·max|ref|;
* both ways of binding variables to checkpoint keys (object graph, restore subgraph) give the same
  values wherever both apply.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_helpers import assert_converts_without_heavy_imports

from transpiler.convert import ConvertOptions, convert
from transpiler.errors import ModelLoadError, UnsupportedModelError, UsageError
from transpiler.frontends.tf import load_tf_model
from transpiler.frontends.tf.checkpoint import Checkpoint
from transpiler.frontends.tf.proto import saved_model_pb2 as ours
from transpiler.frontends.tf.saved_model import find_saved_model, load_saved_model
from transpiler.frontends.tf.sstable import read_table
from transpiler.verify.runners import load_opencv_net, run_opencv

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


# ----------------------------------------------------------------------------------------------
# (a) schema
# ----------------------------------------------------------------------------------------------


def _real_oneof(field: Any) -> str | None:
    """The field's oneof, ignoring the synthetic one proto3 makes for an ``optional`` field."""
    oneof = field.containing_oneof
    if oneof is None or (oneof.name == "_" + field.name and len(oneof.fields) == 1):
        return None
    return str(oneof.name)


def _compare_subset(mine: Any, theirs: Any, seen: set[str], problems: list[str]) -> None:
    """Every field we declare exists in TF's message with the same number, type, repetition, oneof."""
    if mine.full_name in seen:
        return
    seen.add(mine.full_name)
    their_fields = {f.name: f for f in theirs.fields}
    for a in mine.fields:
        where = f"{theirs.full_name}.{a.name}"
        b = their_fields.get(a.name)
        if b is None:
            problems.append(f"{where}: not in TensorFlow's message")
            continue
        for attr in ("number", "type", "is_repeated", "is_packed"):
            if getattr(a, attr) != getattr(b, attr):
                problems.append(f"{where}: {attr} {getattr(a, attr)} != TF {getattr(b, attr)}")
        oneof_a, oneof_b = _real_oneof(a), _real_oneof(b)
        if oneof_a != oneof_b:
            problems.append(f"{where}: oneof {oneof_a} != TF {oneof_b}")
        if a.message_type is not None:
            if a.message_type.name != b.message_type.name:
                problems.append(f"{where}: type {a.message_type.name} != TF {b.message_type.name}")
            _compare_subset(a.message_type, b.message_type, seen, problems)
        if a.enum_type is not None:
            mine_values = {(v.name, v.number) for v in a.enum_type.values}
            their_values = {(v.name, v.number) for v in b.enum_type.values}
            if not mine_values <= their_values:
                problems.append(f"{where}: enum {a.enum_type.name}: {mine_values - their_values} not in TF's")


def test_schema_matches_tensorflow(tf: Any) -> None:
    from tensorflow.core.protobuf import saved_model_pb2, tensor_bundle_pb2, trackable_object_graph_pb2

    problems: list[str] = []
    seen: set[str] = set()
    pairs: list[tuple[Any, Any]] = [
        (ours.SavedModel, saved_model_pb2.SavedModel),
        (ours.TrackableObjectGraph, trackable_object_graph_pb2.TrackableObjectGraph),
        (ours.BundleHeaderProto, tensor_bundle_pb2.BundleHeaderProto),
        (ours.BundleEntryProto, tensor_bundle_pb2.BundleEntryProto),
    ]
    for mine, theirs in pairs:
        _compare_subset(mine.DESCRIPTOR, theirs.DESCRIPTOR, seen, problems)
    _compare_index(seen, problems)
    assert not problems, "\n".join(problems)
    # the walk reached every message of our schema
    declared = {m.full_name for m in _all_messages(ours.DESCRIPTOR.message_types_by_name.values())}
    assert declared - seen <= {m for m in declared if m.endswith("Entry")}, declared - seen


# The index messages (saved_model.pb read with function bodies undecoded) and the message each one reads.
INDEX_OF = {"SavedModelIndex": "SavedModel", "MetaGraphIndex": "MetaGraphDef", "GraphIndex": "GraphDef",
            "FunctionLibraryIndex": "FunctionDefLibrary", "FunctionHeader": "FunctionDef", "FunctionName": "OpDef"}


def _compare_index(seen: set[str], problems: list[str]) -> None:
    """Every field of an index message is the full message's field of that name: number, type, repetition;
    its message type is the same one, or the index of it."""
    from transpiler.frontends.tf.proto import tf_graph_pb2

    def full(name: str) -> Any:
        return getattr(ours, name, None) or getattr(tf_graph_pb2, name)

    for index_name, full_name in INDEX_OF.items():
        index = getattr(ours, index_name).DESCRIPTOR
        seen.add(index.full_name)
        fields = {f.name: f for f in full(full_name).DESCRIPTOR.fields}
        for a in index.fields:
            b = fields.get(a.name)
            where = f"{index.full_name}.{a.name}"
            if b is None:
                problems.append(f"{where}: not in {full_name}")
                continue
            for attr in ("number", "type", "is_repeated"):
                if getattr(a, attr) != getattr(b, attr):
                    problems.append(f"{where}: {attr} {getattr(a, attr)} != {full_name}'s {getattr(b, attr)}")
            if a.message_type is not None and a.message_type.GetOptions().map_entry:  # each message has its own
                a, b = (f.message_type.fields_by_name["value"] for f in (a, b))
            if a.message_type is not None and a.message_type.full_name != b.message_type.full_name and \
                    INDEX_OF.get(a.message_type.name) != b.message_type.name:
                problems.append(f"{where}: type {a.message_type.name} reads no {b.message_type.name}")


def _all_messages(messages: Any) -> list[Any]:
    out = []
    for m in messages:
        out.append(m)
        out.extend(_all_messages(m.nested_types))
    return out


# (b) crc32c: tests/frontend/test_crc32c_batch.py


# ----------------------------------------------------------------------------------------------
# (c) checkpoints TF wrote
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tf: Any, tmp_path_factory: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    rng = np.random.default_rng(0)
    values: dict[str, Any] = {
        "f32_scalar": np.float32(2.5),
        "f32_empty": np.zeros((0, 4), np.float32),
        "f32_large": rng.normal(size=(300, 1000)).astype(np.float32),  # 1.2 MB, more than one index block
        "f16": rng.normal(size=(7, 3)).astype(np.float16),
        "f64": rng.normal(size=(5,)),
        "i32": np.arange(-5, 5, dtype=np.int32),
        "i64": np.array([2**40, -3, 0], np.int64),
        "bool": np.array([[True, False], [False, True]]),
        "str": np.array([b"", b"a", b"bytes \xff\x00", b"x" * 300], dtype=object),
        "str_scalar": np.array(b"just one", dtype=object),
        "str_empty": np.zeros((0,), dtype=object),
    }
    variables = {k: tf.Variable(v) for k, v in values.items() if v.dtype != object}
    constants = {k: tf.constant(v) for k, v in values.items() if v.dtype == object}
    module = tf.Module()
    for k, v in variables.items():
        setattr(module, k, v)
    for i in range(4):
        variables[f"medium{i}"] = tf.Variable(rng.normal(size=(180_000,)).astype(np.float32))  # 720 kB
    ckpt = tf.train.Checkpoint(**variables)

    def policy(size: int) -> Any:
        return tf.train.CheckpointOptions(
            experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(max_shard_size=size))

    class OneShardPerTensor(tf.train.experimental.ShardingCallback):  # type: ignore[misc,name-defined]
        @property
        def description(self) -> str:
            return "one shard per tensor"

        def __call__(self, shardable: Any) -> list[dict[str, dict[str, Any]]]:
            return [{t.checkpoint_key: {t.slice_spec: t.tensor}} for t in shardable]

    paths = {"plain": Path(ckpt.write(str(root / "plain" / "ckpt"))),
             # several shards, each holding whole tensors
             "sharded": Path(ckpt.write(str(root / "sharded" / "ckpt"), options=tf.train.CheckpointOptions(
                 experimental_sharding_callback=OneShardPerTensor()))),
             # shards smaller than tensors: TF stores the large ones in slices
             "sliced": Path(ckpt.write(str(root / "sliced" / "ckpt"), options=policy(100_000)))}
    variables["f32_3d"] = tf.Variable(rng.normal(size=(40, 30, 50)).astype(np.float32))
    ckpt = tf.train.Checkpoint(**variables)
    paths["sliced_3d"] = Path(ckpt.write(str(root / "sliced_3d" / "ckpt"), options=policy(30_000)))
    # a TF1 partitioned variable: three slices along the first axis
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        tf1.get_variable("emb", shape=(10, 7, 3), partitioner=tf1.fixed_size_partitioner(3))
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            paths["partitioned"] = Path(saver.save(session, str(root / "partitioned" / "ckpt")))
    # strings, and an index with thousands of keys (several data blocks), through the raw save op
    names = [f"many/{i:05d}/a_long_key_so_that_the_index_spans_several_blocks" for i in range(6000)]
    raw_prefix = root / "raw" / "ckpt"
    raw_prefix.parent.mkdir()
    tf.raw_ops.SaveV2(prefix=str(raw_prefix), tensor_names=[*constants, *names],
                      shape_and_slices=[""] * (len(constants) + len(names)),
                      tensors=[*constants.values(), *[tf.constant(i, tf.int64) for i in range(len(names))]])
    paths["raw"] = raw_prefix
    return paths


def _reference(tf: Any, prefix: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(prefix))
    return {k: np.asarray(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()}


@pytest.mark.parametrize("which", ["plain", "sharded", "sliced", "sliced_3d", "partitioned", "raw"])
def test_checkpoint_matches_tensorflow(tf: Any, checkpoints: dict[str, Path], which: str) -> None:
    prefix = checkpoints[which]
    ours_ = Checkpoint(prefix)
    reference = _reference(tf, prefix)
    assert set(ours_.entries) == set(reference)
    for key, ref in reference.items():
        if ours_.entries[key].sliced:
            assert which in ("sliced", "sliced_3d", "partitioned")
        got = ours_.read(key)
        assert got.shape == ref.shape, key
        if ref.dtype.kind in "OS":
            assert [bytes(x) for x in got.reshape(-1)] == [bytes(x) for x in ref.reshape(-1)], key
        else:
            assert got.dtype == ref.dtype, key
            np.testing.assert_array_equal(got, ref, err_msg=key)
        # a numeric unsliced tensor's stored bytes, as a SavedModel's frozen constant takes them: TF's values
        content = ours_.read_content(key)
        assert (content is None) == (ours_.entries[key].sliced or ref.dtype.kind in "OS"), key
        if content is not None:
            raw, dtype, shape = content
            assert shape == ref.shape and dtype == ours_.entries[key].dtype, key
            np.testing.assert_array_equal(np.frombuffer(raw, ref.dtype.newbyteorder("<")).reshape(shape), ref,
                                          err_msg=key)
    if which.startswith("sliced"):  # large tensors split into slices across shards, assembled
        assert sum(len(e.slices) > 1 for e in ours_.entries.values()) >= 4
    if which == "partitioned":
        assert len(ours_.entries["emb"].slices) == 3
    if which == "sharded":
        assert not any(e.sliced for e in ours_.entries.values())
        assert ours_.num_shards > 3
        assert len({e.shard for e in ours_.entries.values()}) == ours_.num_shards
    if which == "raw":
        assert len(ours_.entries) > 6000
        index = Path(f"{prefix}.index").read_bytes()
        assert len(index) > 2 * 4096  # several blocks (TF's index block size is 4 KiB)


def test_checkpoint_dtypes_seen(checkpoints: dict[str, Path]) -> None:
    dtypes = {e.dtype for p in checkpoints.values() for e in Checkpoint(p).entries.values()}
    assert {ours.BundleEntryProto.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_name[n].number
            for n in ("DT_HALF", "DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_INT64", "DT_BOOL", "DT_STRING")} <= dtypes


def _copy_checkpoint(prefix: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in prefix.parent.iterdir():
        shutil.copy(f, dest / f.name)
    return dest / prefix.name


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_checkpoints_refused(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    src = checkpoints["plain"]
    entry = Checkpoint(src).entries["f32_large/.ATTRIBUTES/VARIABLE_VALUE"]

    prefix = _copy_checkpoint(src, tmp_path / "value")
    data_file = Path(f"{prefix}.data-00000-of-00001")
    _flip(data_file, entry.offset + entry.size // 2)
    ckpt = Checkpoint(prefix)  # the index is intact
    with pytest.raises(ModelLoadError, match="checksum mismatch") as info:
        ckpt.read(entry.key)
    assert str(data_file) in str(info.value)
    with pytest.raises(ModelLoadError, match="checksum mismatch") as info:  # how a SavedModel's weights are read
        ckpt.read_content(entry.key)
    assert str(data_file) in str(info.value)

    for name, damage, fragment in (
        ("block", lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], "checksum mismatch"),
        ("magic", lambda b: b[:-1] + bytes([b[-1] ^ 1]), "bad magic"),
        ("cut", lambda b: b[: len(b) - 20], "bad magic"),
        ("tiny", lambda b: b[:30], "shorter than a table footer"),
    ):
        prefix = _copy_checkpoint(src, tmp_path / name)
        index = Path(f"{prefix}.index")
        index.write_bytes(damage(index.read_bytes()))
        with pytest.raises(ModelLoadError, match=fragment) as info:
            Checkpoint(prefix)
        assert str(index) in str(info.value) and "\n" not in str(info.value)

    prefix = _copy_checkpoint(src, tmp_path / "short_data")
    data_file = Path(f"{prefix}.data-00000-of-00001")
    data_file.write_bytes(data_file.read_bytes()[: entry.offset + 10])
    with pytest.raises(ModelLoadError, match="past the end") as info:
        Checkpoint(prefix).read(entry.key)
    assert str(data_file) in str(info.value)


def test_random_damage_never_crashes(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Random byte flips and cuts of the index or a shard: the tensors read are TF's, or a clear error."""
    src = checkpoints["plain"]
    good = Checkpoint(src)
    expected = {k: good.read(k) for k in good.entries}
    rng = np.random.default_rng(2)
    prefix = _copy_checkpoint(src, tmp_path / "fuzz")
    files = [Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")]
    originals = [f.read_bytes() for f in files]
    outcomes = {"error": 0, "same": 0}
    for trial in range(150):
        which = trial % 2
        data = bytearray(originals[which])
        if trial % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        files[which].write_bytes(bytes(data))
        try:
            ckpt = Checkpoint(prefix)
            for key, value in expected.items():
                got = ckpt.read(key)
                assert [bytes(v) for v in got.reshape(-1)] == [bytes(v) for v in value.reshape(-1)] \
                    if value.dtype == object else np.array_equal(got, value)
                content = ckpt.read_content(key)
                assert content is None or content[0] == value.astype(value.dtype.newbyteorder("<")).tobytes()
            outcomes["same"] += 1
        except (ModelLoadError, UnsupportedModelError) as exc:
            assert str(files[which]) in str(exc) and "\n" not in str(exc), exc
            outcomes["error"] += 1
        files[which].write_bytes(originals[which])
    # undetected: flips in the footer's padding or the (unread) metaindex block, which change nothing read
    assert outcomes["error"] >= 135, outcomes


def test_string_checksum_checked(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    src = checkpoints["raw"]
    entry = Checkpoint(src).entries["str"]
    prefix = _copy_checkpoint(src, tmp_path / "s")
    _flip(Path(f"{prefix}.data-00000-of-00001"), entry.offset + entry.size - 1)  # a string byte
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        Checkpoint(prefix).read("str")


def test_table_reader_keys_in_order(checkpoints: dict[str, Path]) -> None:
    table = read_table(f"{checkpoints['raw']}.index")
    keys = list(table)
    assert keys == sorted(keys) and keys[0] == b""


# ----------------------------------------------------------------------------------------------
# (d) SavedModels, converted and run in OpenCV against the signature run by TF
# ----------------------------------------------------------------------------------------------


def _calibrate(keras: Any, model: Any, x: np.ndarray, rng: np.random.Generator) -> None:
    """Give every BatchNormalization the statistics of its real input (random gamma/beta), layer by
    layer, so a picture's signal reaches the outputs."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    taps = keras.Model(model.inputs, [layer.input for layer in bns])
    for i, bn in enumerate(bns):
        feats = taps([x], training=False)
        feat = np.asarray(feats[i] if len(bns) > 1 else feats)
        axes = tuple(range(feat.ndim - 1))
        gamma, beta, _, _ = (np.asarray(w) for w in bn.get_weights())
        bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                        rng.normal(0, 0.2, beta.shape).astype(np.float32),
                        feat.mean(axis=axes), feat.var(axis=axes) + 1e-3])


def _small_keras(keras: Any, rng: np.random.Generator, x: np.ndarray) -> Any:
    inp = keras.Input(x.shape[1:])
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(12, 1)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(5)(y)
    model = keras.Model(inp, y)
    _calibrate(keras, model, x, rng)
    return model


def _module(tf: Any, rng: np.random.Generator) -> Any:
    """conv + fused batch norm + relu6 + depthwise + dense, with a second signature for the features."""

    def var(*shape: int, scale: float = 0.3) -> Any:
        return tf.Variable(rng.normal(0, scale, shape).astype(np.float32))

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.b = var(3, 3, 3, 6), var(6)
            self.gamma, self.beta = tf.Variable(rng.uniform(0.5, 1.5, 6).astype(np.float32)), var(6)
            self.mean, self.var = var(6, scale=0.5), tf.Variable(rng.uniform(0.5, 2.0, 6).astype(np.float32))
            self.dw, self.fc, self.fcb = var(3, 3, 6, 1), var(6, 4), var(4)

        @tf.function(input_signature=[tf.TensorSpec((1, 12, 12, 3), tf.float32, name="image")])
        def features(self, image: Any) -> Any:
            y = tf.nn.conv2d(image, self.w, 1, "SAME") + self.b
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, self.gamma, self.beta, self.mean, self.var,
                                                       epsilon=1e-3, is_training=False)
            y = tf.nn.relu6(y)
            return tf.nn.depthwise_conv2d(y, self.dw, [1, 1, 1, 1], "VALID")

        @tf.function(input_signature=[tf.TensorSpec((1, 12, 12, 3), tf.float32, name="image")])
        def logits(self, image: Any) -> Any:
            pooled = tf.reduce_mean(self.features(image), axis=[1, 2])
            return {"logits": tf.matmul(pooled, self.fc) + self.fcb}

    return Net()


def _tf1_builder(tf: Any, path: Path, use_resource: bool, rng: np.random.Generator, partitioned: bool = False
                 ) -> None:
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, (1, 10, 10, 3), name="x")
        if partitioned:  # two pieces along the output channels, each restored from a slice of "w"
            pieces = tf1.get_variable("w", shape=(3, 3, 3, 4), partitioner=tf1.fixed_size_partitioner(2, axis=3))
            w = tf.concat(list(pieces), axis=3)
        else:
            w = tf1.get_variable("w", initializer=rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32),
                                 use_resource=use_resource)
        b = tf1.get_variable("b", initializer=rng.normal(0, 0.3, (4,)).astype(np.float32), use_resource=use_resource)
        y = tf.nn.relu6(tf.nn.conv2d(x, w, 1, "SAME") + b, name="y")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            builder = tf1.saved_model.Builder(str(path))
            sig = tf1.saved_model.predict_signature_def({"image": x}, {"scores": y})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()


@pytest.fixture(scope="module")
def saved_models(tf: Any, tmp_path_factory: Any) -> dict[str, Path]:
    import keras

    root = tmp_path_factory.mktemp("saved_models")
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 20, 20, 3)).astype(np.float32)
    small = _small_keras(keras, rng, x)
    small.export(str(root / "keras_export"), verbose=False)
    tf.saved_model.save(small, str(root / "keras_save"))
    net = _module(tf, rng)
    tf.saved_model.save(net, str(root / "module"),
                        signatures={"serving_default": net.logits, "features": net.features})
    a, b = keras.Input((8, 8, 3), name="rgb"), keras.Input((8, 8, 3), name="aux")
    y = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.Add()([a, b]))
    two = keras.Model([a, b], [keras.layers.GlobalAveragePooling2D()(y), keras.layers.Conv2D(2, 1)(y)])
    two.export(str(root / "two_in_two_out"), verbose=False)
    counter = tf.Module()
    counter.v = tf.Variable(np.float32(1.0))
    counter.f = tf.function(lambda x: x * counter.v.assign_add(1.0),
                            input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    tf.saved_model.save(counter, str(root / "counter"), signatures={"serving_default": counter.f})
    multi = tf.Module()  # an op with several output arguments, read through its third
    multi.f = tf.function(lambda x: tf.unique_with_counts(x).count * 2,
                          input_signature=[tf.TensorSpec((8,), tf.int32)])
    tf.saved_model.save(multi, str(root / "multi_output_op"), signatures={"serving_default": multi.f})
    loop = tf.Module()
    loop.w = tf.Variable(np.float32(0.5))
    loop.f = tf.function(lambda x: tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * loop.w), (0, x))[1],
                         input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    tf.saved_model.save(loop, str(root / "loop"), signatures={"serving_default": loop.f})
    _tf1_builder(tf, root / "tf1_resource", True, rng)
    _tf1_builder(tf, root / "tf1_ref", False, rng)
    _tf1_builder(tf, root / "tf1_partitioned", True, rng, partitioned=True)
    return {p.name: p for p in root.iterdir()}


def _convert_and_compare(tf: Any, model: Path, out: Path, signature: str | None, *xs: np.ndarray) -> float:
    """Convert ``model`` once, run each input (batch 1) through OpenCV and the signature in TF; return the
    worst max|Δ|/max|ref| over outputs and inputs (asserted ≤ TOLERANCE)."""
    graph = load_tf_model(model, signature=signature)
    convert(ConvertOptions(model=model, out_dir=out), graph=graph)
    report = json.loads((out / "conversion.json").read_text())
    meta = graph.metadata["signature"]
    (in_key,) = meta["inputs"]
    fn = tf.saved_model.load(str(model)).signatures[meta["name"]]
    entry = report["inputs"][0]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    layers = [o["caffe_layer"] for o in report["outputs"]]
    assert len(report["outputs"]) == len(meta["outputs"])
    worst = 0.0
    for x in xs:
        ref = {k: v.numpy() for k, v in fn(**{in_key: tf.constant(x)}).items()}
        got = run_opencv(net, {entry["caffe_blob"]: x.transpose(entry["permutation"])}, layers)
        for key, o in zip(sorted(meta["outputs"]), report["outputs"], strict=True):
            expected = np.transpose(ref[key], o["permutation"])
            result = got[o["caffe_layer"]]
            assert result.shape == expected.shape, key
            err = float(np.abs(result - expected).max() / max(np.abs(expected).max(), 1e-12))
            assert err <= TOLERANCE, f"{model.name} {key}: max|Δ|/max|ref| = {err:.2e}"
            worst = max(worst, err)
    return worst


@pytest.mark.parametrize(
    ("name", "signature", "shape"),
    [
        ("keras_export", None, (1, 20, 20, 3)),
        ("keras_export", "serve", (1, 20, 20, 3)),
        ("keras_save", None, (1, 20, 20, 3)),
        ("module", None, (1, 12, 12, 3)),
        ("module", "features", (1, 12, 12, 3)),
        ("tf1_resource", None, (1, 10, 10, 3)),
        ("tf1_ref", None, (1, 10, 10, 3)),
        ("tf1_partitioned", None, (1, 10, 10, 3)),
    ],
)
def test_saved_model_matches_tensorflow(tf: Any, saved_models: dict[str, Path], tmp_path: Path, name: str,
                                        signature: str | None, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32)
    worst = _convert_and_compare(tf, saved_models[name], tmp_path / "out", signature, x)
    print(f"{name} {signature}: max|Δ|/max|ref| = {worst:.2e}")


@pytest.fixture(scope="module")
def tf_keras_models(tf: Any, tf_keras: Any, tmp_path_factory: Any) -> dict[str, Path]:
    # tf-keras (Keras 2) exports keep FusedBatchNormV3 and name the output key after the last layer
    root = tmp_path_factory.mktemp("tf_keras")
    rng = np.random.default_rng(5)
    model = _small_keras(tf_keras, rng, rng.uniform(-1, 1, (4, 20, 20, 3)).astype(np.float32))
    tf.saved_model.save(model, str(root / "saved_model_save"))
    model.save(str(root / "model_save"), save_format="tf")
    return {p.name: p for p in root.iterdir()}


@pytest.mark.parametrize("name", ["saved_model_save", "model_save"])
def test_tf_keras_saved_model_matches_tensorflow(tf: Any, tf_keras_models: dict[str, Path], tmp_path: Path,
                                                 name: str) -> None:
    x = np.random.default_rng(4).uniform(-1, 1, (1, 20, 20, 3)).astype(np.float32)
    _convert_and_compare(tf, tf_keras_models[name], tmp_path / "out", None, x)
    assert "FusedBatchNormV3" in {n.op for n in load_saved_model(tf_keras_models[name]).graph.node}


@pytest.mark.parametrize("name", ["keras_export", "keras_save", "module"])
def test_same_net_as_tensorflow_freezing(tf: Any, saved_models: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Our reader gives the net TF's own freezing (convert_variables_to_constants_v2 on the loaded
    signature) gives: OpenCV outputs equal bit for bit."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = saved_models[name]
    loaded = tf.saved_model.load(str(model))  # keeps the variables alive while freezing
    fn = loaded.signatures["serving_default"]
    frozen = tmp_path / "frozen.pb"
    frozen.write_bytes(convert_variables_to_constants_v2(fn).graph.as_graph_def().SerializeToString())
    outputs = []
    for source, out in ((model, tmp_path / "ours"), (frozen, tmp_path / "tf")):
        convert(ConvertOptions(model=source, out_dir=out))
        report = json.loads((out / "conversion.json").read_text())
        entry = report["inputs"][0]
        x = np.random.default_rng(9).uniform(-1, 1, entry["tf_shape"]).astype(np.float32)
        net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
        layers = [o["caffe_layer"] for o in report["outputs"]]
        got = run_opencv(net, {entry["caffe_blob"]: x.transpose(entry["permutation"])}, layers)
        outputs.append([got[layer] for layer in layers])
    assert len(outputs[0]) == len(outputs[1])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_several_inputs_and_outputs(tf: Any, saved_models: dict[str, Path], tmp_path: Path) -> None:
    model, out = saved_models["two_in_two_out"], tmp_path / "out"
    convert(ConvertOptions(model=model, out_dir=out))
    report = json.loads((out / "conversion.json").read_text())
    rng = np.random.default_rng(6)
    feeds = {key: rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32) for key in ("aux", "rgb")}
    ref = tf.saved_model.load(str(model)).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in feeds.items()})
    declared = load_saved_model(model)
    assert [i["tf_tensor"] for i in report["inputs"]] == [declared.declared_inputs[k] for k in ("aux", "rgb")]
    outputs = [declared.declared_outputs[k] for k in ("output_0", "output_1")]
    assert [o["tf_tensor"] for o in report["outputs"]] == outputs
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    layers = [o["caffe_layer"] for o in report["outputs"]]
    got = run_opencv(net, {i["caffe_blob"]: feeds[k].transpose(i["permutation"])
                           for i, k in zip(report["inputs"], ("aux", "rgb"), strict=True)}, layers)
    for o, key in zip(report["outputs"], ("output_0", "output_1"), strict=True):
        expected = np.transpose(ref[key].numpy(), o["permutation"])
        err = np.abs(got[o["caffe_layer"]] - expected).max() / np.abs(expected).max()
        assert err <= TOLERANCE, (key, err)


def test_saved_model_pb_file_and_keys(saved_models: dict[str, Path], tmp_path: Path) -> None:
    model = saved_models["keras_export"]
    assert find_saved_model(model) == model / "saved_model.pb"
    assert find_saved_model(model / "saved_model.pb") == model / "saved_model.pb"
    assert find_saved_model(model / "variables" / "variables.index") is None
    loaded = load_saved_model(model / "saved_model.pb")
    assert loaded.signature == "serving_default" and set(loaded.signatures) == {"serve", "serving_default"}
    # Keras 3 names the key keras_tensor, or keras_tensor_N when other Keras models were built in this process
    (key,) = list(loaded.inputs)
    assert re.fullmatch(r"keras_tensor(_\d+)?", key) and list(loaded.outputs) == ["output_0"]
    # signature keys and tensor names both work as --input/--output
    by_key = load_tf_model(model, inputs=[], outputs=["output_0"])
    by_name = load_tf_model(model, outputs=[loaded.outputs["output_0"]])
    by_outer_name = load_tf_model(model, outputs=[loaded.declared_outputs["output_0"]])
    assert [v.shape for v in by_key.outputs] == [v.shape for v in by_name.outputs] == [(1, 5)]
    assert [v.shape for v in by_outer_name.outputs] == [(1, 5)]
    # inlined nodes are named as in their function where unique; such a name works as --output
    (conv,) = [n.name for n in loaded.graph.node if n.op == "Conv2D" and "/" in n.name][:1]
    assert not conv.startswith("StatefulPartitionedCall")
    assert load_tf_model(model, outputs=[conv]).outputs[0].shape == (1, 10, 10, 8)
    from transpiler.frontends.tf.importer import InputSpec

    resized = load_tf_model(model, inputs=[InputSpec(key, (1, 40, 40, 3))])
    assert resized.inputs[0].shape == (1, 40, 40, 3)
    with pytest.raises(UsageError, match="no signature 'nope'"):
        load_tf_model(model, signature="nope")
    with pytest.raises(UsageError, match="names no node"):
        load_tf_model(model, outputs=["output_9"])


def test_text_saved_model_and_cut_file(saved_models: dict[str, Path], tmp_path: Path) -> None:
    from google.protobuf import text_format

    src = saved_models["module"]
    model = tmp_path / "text"
    shutil.copytree(src, model)
    pb = model / "saved_model.pb"
    message = ours.SavedModel.FromString(pb.read_bytes())
    pb.unlink()
    (model / "saved_model.pbtxt").write_text(text_format.MessageToString(message))
    assert find_saved_model(model) == model / "saved_model.pbtxt"
    assert find_saved_model(model / "saved_model.pbtxt") == model / "saved_model.pbtxt"
    ours_text = load_saved_model(model)
    ours_binary = load_saved_model(src)
    assert ours_text.graph == ours_binary.graph and ours_text.outputs == ours_binary.outputs
    # a cut saved_model.pb named as a file is reported as a damaged SavedModel
    cut = tmp_path / "cut" / "saved_model.pb"
    cut.parent.mkdir()
    cut.write_bytes((src / "saved_model.pb").read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match=r"cannot load SavedModel .*truncated or corrupt"):
        load_tf_model(cut)


@pytest.mark.parametrize("name", ["keras_export", "keras_save", "module", "tf1_resource", "tf1_ref"])
def test_variable_bindings_agree(saved_models: dict[str, Path], name: str) -> None:
    """The object graph and the restore subgraph bind each variable to the same values."""
    model = saved_models[name]
    ckpt = Checkpoint(model / "variables" / "variables")
    auto = load_saved_model(model)
    routes = {}
    for binding in ("object", "restore"):
        try:
            routes[binding] = load_saved_model(model, binding=binding)
        except UnsupportedModelError as exc:
            # tf.saved_model.save of a Keras 3 model restores other handles than the signature reads;
            # TF1 SavedModels have no object graph
            expected_failures = {("keras_save", "restore"), ("tf1_resource", "object"), ("tf1_ref", "object")}
            assert (name, binding) in expected_failures, exc
            assert "have no value in the checkpoint" in str(exc)
    expected_routes = {"tf1_resource": {"restore"}, "tf1_ref": {"restore"}}.get(name, {"object", "restore"})
    assert {route for _, route in auto.bindings.values()} <= expected_routes
    for var, (key, _) in auto.bindings.items():
        for route in routes.values():
            if var in route.bindings:
                np.testing.assert_array_equal(ckpt.read(route.bindings[var][0]), ckpt.read(key))
    assert auto.bindings, "no variable was bound"


def test_output_arguments_from_the_op_list(saved_models: dict[str, Path]) -> None:
    """A body reads ``UniqueWithCounts:count:0``: output 2 (after y and idx), from the SavedModel's op list."""
    loaded = load_saved_model(saved_models["multi_output_op"])
    nodes = {n.name: n for n in loaded.graph.node}
    (mul,) = [n for n in nodes.values() if n.op == "Mul"]
    unique = [i for i in mul.input if nodes[i.rsplit(":", 1)[0]].op == "UniqueWithCounts"]
    assert len(unique) == 1 and unique[0].endswith(":2"), list(mul.input)


def test_while_loop_refused(saved_models: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedModelError, match="While") as info:
        load_tf_model(saved_models["loop"])
    assert "'while'" in str(info.value)  # the node, by its name in the function


def test_signature_writing_variables_refused(saved_models: dict[str, Path]) -> None:
    """x * v.assign_add(1) computes with v + 1 in TF; with v's stored value it would be silently wrong."""
    with pytest.raises(UnsupportedModelError, match=r"writes variables \(1 node\(s\), e\.g\. .*AssignAddVariableOp"):
        load_saved_model(saved_models["counter"])


def test_report_names_signature_tensors(saved_models: dict[str, Path], tmp_path: Path) -> None:
    model = saved_models["keras_export"]
    convert(ConvertOptions(model=model, out_dir=tmp_path / "o"))
    report = json.loads((tmp_path / "o" / "conversion.json").read_text())
    declared = ours.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    sig = next(m for m in declared.meta_graphs).signature_def["serving_default"]
    (key,) = sig.inputs  # keras_tensor, or keras_tensor_N when other Keras models were built in this process
    assert [i["tf_tensor"] for i in report["inputs"]] == [sig.inputs[key].name]
    assert [o["tf_tensor"] for o in report["outputs"]] == [sig.outputs["output_0"].name]


def test_binding_that_contradicts_the_graph_refused(saved_models: dict[str, Path], tmp_path: Path) -> None:
    """Swap the keys the TF1 restore op reads: each variable would get the other's value; refused."""
    from transpiler.frontends.tf.proto import tf_graph_pb2
    from transpiler.frontends.tf.tensors import numpy_to_tensor, tensor_to_numpy

    model = tmp_path / "swapped"
    shutil.copytree(saved_models["tf1_resource"], model)
    message = ours.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    (names,) = [n for n in message.meta_graphs[0].graph_def.node
                if n.op == "Const" and n.name.endswith("RestoreV2/tensor_names")]
    keys = tensor_to_numpy(names.attr["value"].tensor)
    assert sorted(bytes(k) for k in keys) == [b"b", b"w"]
    names.attr["value"].tensor.CopyFrom(numpy_to_tensor(keys[::-1].copy()))
    assert names.attr["value"].tensor.dtype == tf_graph_pb2.DT_STRING
    (model / "saved_model.pb").write_bytes(message.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"is declared \[.*\], but its checkpoint value '[bw]' is"):
        load_saved_model(model)


def test_undecodable_restore_key_refused(saved_models: dict[str, Path], tmp_path: Path) -> None:
    """A restore key that is not UTF-8 (a damaged file) binds nothing: refused naming the file, no crash."""
    from transpiler.frontends.tf.tensors import numpy_to_tensor, tensor_to_numpy

    model = tmp_path / "garbled"
    shutil.copytree(saved_models["tf1_resource"], model)
    message = ours.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    (names,) = [n for n in message.meta_graphs[0].graph_def.node
                if n.op == "Const" and n.name.endswith("RestoreV2/tensor_names")]
    keys = tensor_to_numpy(names.attr["value"].tensor).copy()
    keys[0] = b"\xc9" + bytes(keys[0])
    names.attr["value"].tensor.CopyFrom(numpy_to_tensor(keys))
    (model / "saved_model.pb").write_bytes(message.SerializeToString())
    with pytest.raises(ModelLoadError) as info:
        load_saved_model(model)
    assert str(model) in str(info.value)


def test_unbound_variable_refused(saved_models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(saved_models["module"], model)
    shutil.rmtree(model / "variables")
    with pytest.raises(ModelLoadError, match=r"variables\.index' is missing"):
        load_saved_model(model)


def test_damaged_saved_model_pb_never_crashes(saved_models: dict[str, Path], tmp_path: Path) -> None:
    """Cut or flipped saved_model.pb: it loads (protobuf has no checksum) or fails with a TranspilerError."""
    from transpiler.errors import TranspilerError

    model = tmp_path / "m"
    shutil.copytree(saved_models["keras_export"], model)
    pb = model / "saved_model.pb"
    original = pb.read_bytes()
    rng = np.random.default_rng(4)
    failures = 0
    for trial in range(60):
        data = bytearray(original)
        if trial % 2:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        pb.write_bytes(bytes(data))
        try:
            load_tf_model(model)
        except TranspilerError as exc:
            assert str(model) in str(exc) and "\n" not in str(exc).split("\n  - ")[0], exc
            failures += 1
    assert failures >= 30


def test_function_bodies_decoded_as_called(saved_models: dict[str, Path], tmp_path: Path) -> None:
    """The library is read as an index and each body decoded when asked for: the bodies are exactly the
    file's; a body that does not decode is refused naming the file and function, even though the index read."""
    src = saved_models["keras_export"]
    whole = ours.SavedModel.FromString((src / "saved_model.pb").read_bytes()).meta_graphs[0].graph_def.library
    loaded = load_saved_model(src)
    library = loaded.library
    assert sorted(library) == sorted(f.signature.name for f in whole.function)
    for f in whole.function:
        assert library[f.signature.name] == f, f.signature.name

    model = tmp_path / "bad_body"
    shutil.copytree(src, model)
    index = ours.SavedModelIndex.FromString((model / "saved_model.pb").read_bytes())
    headers = index.meta_graphs[0].graph_def.library.function
    assert loaded.inlined is not None
    called = next(h for h in headers if h.signature.name in set(loaded.inlined.calls.values()))
    called.MergeFromString(b"\x1a\x03\xff\xff\xff")  # a node_def (field 3) whose bytes are no NodeDef
    (model / "saved_model.pb").write_bytes(index.SerializeToString())
    with pytest.raises(ModelLoadError, match=f"cannot decode function '{called.signature.name}'") as info:
        load_saved_model(model)
    assert str(model) in str(info.value)


def test_cli_converts_without_tensorflow(saved_models: dict[str, Path], tmp_path: Path) -> None:
    assert_converts_without_heavy_imports([saved_models["keras_export"]], tmp_path, timeout=120)


def test_cli_signature_and_keys(saved_models: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from transpiler.cli import main

    model = saved_models["module"]
    declared = ours.SavedModel.FromString((model / "saved_model.pb").read_bytes()).meta_graphs[0].signature_def
    for signature, outputs in (("features", ["output_0"]), ("serving_default", ["logits"])):
        out = tmp_path / signature
        assert main([str(model), "-o", str(out), "--signature", signature, "--input", "image:1x16x16x3",
                     "--output", outputs[0]]) == 0
        report = json.loads((out / "conversion.json").read_text())
        assert [o["tf_tensor"] for o in report["outputs"]] == [declared[signature].outputs[outputs[0]].name]
        assert report["inputs"][0]["tf_shape"] == [1, 16, 16, 3]
    assert main([str(model), "-o", str(tmp_path / "x"), "--signature", "nope"]) == 2
    assert "no signature 'nope' (it has: features, serving_default)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # --verify calls the chosen signature in TF (tests/verify/test_verify_saved_model.py)
    assert main([str(model), "-o", str(tmp_path / "v"), "--signature", "features", "--input", "image:1x16x16x3",
                 "--verify"]) == 0
    assert "signature 'features'" in capsys.readouterr().out


def _cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_cli_refuses_damaged_saved_model(saved_models: dict[str, Path], tmp_path: Path) -> None:
    src = saved_models["keras_export"]
    cases = {}
    model = tmp_path / "bad_value"
    shutil.copytree(src, model)
    data_file = model / "variables" / "variables.data-00000-of-00001"
    ckpt = Checkpoint(src / "variables" / "variables")
    entry = max(ckpt.entries.values(), key=lambda e: e.size if e.key.startswith("variables/") else 0)
    _flip(data_file, entry.offset + 3)
    cases[model] = (data_file, "checksum mismatch")
    model = tmp_path / "bad_magic"
    shutil.copytree(src, model)
    index = model / "variables" / "variables.index"
    index.write_bytes(index.read_bytes()[:-3] + b"abc")
    cases[model] = (index, "bad magic")
    model = tmp_path / "cut_pb"
    shutil.copytree(src, model)
    pb = model / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    cases[model] = (model, "")
    for model, (named, fragment) in cases.items():
        out = tmp_path / f"{model.name}_out"
        result = _cli(model, "-o", out)
        assert result.returncode == 2, result.stderr
        assert str(named) in result.stderr and fragment in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not out.exists()


# ----------------------------------------------------------------------------------------------
# (e) MobileNetV2 (alpha 0.35, 96x96), Keras 3 export and tf.saved_model.save, on real pictures
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mobilenet_v2_saved_model(tf: Any, tmp_path: Path, pictures: Any) -> None:
    import keras

    rng = np.random.default_rng(11)
    x = np.stack([pictures(n, (96, 96)) for n in ("astronaut", "chelsea", "coffee")]).astype(np.float32) / 127.5 - 1
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                           classifier_activation=None)
    _calibrate(keras, model, x, rng)
    model.export(str(tmp_path / "export"), verbose=False)
    tf.saved_model.save(model, str(tmp_path / "save"))
    for kind in ("export", "save"):
        pictures_ = [x[i : i + 1] for i in range(len(x))]
        worst = _convert_and_compare(tf, tmp_path / kind, tmp_path / f"{kind}_out", None, *pictures_)
        print(f"MobileNetV2 0.35 96x96, {kind}: max|Δ|/max|ref| = {worst:.2e}")


def test_composite_function_calls_are_kept_with_their_inputs(tf: Any, tmp_path: Path) -> None:
    """A ``tf.function(experimental_implements=...)`` stands for a runtime's own op and returns placeholders in
    TF (TFLite_Detection_PostProcess in the OD API's TFLite export): the reader records the call, its
    ``_implements`` attributes and the tensors passed to it, and keeps what computes them although the
    signature's outputs (constants) do not need it."""
    from transpiler.frontends.tf.saved_model import load_saved_model

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.full((1, 1, 3, 2), 0.5, np.float32))

        @tf.function(experimental_implements='name: "Custom_Op" attr { key: "k" value { i: 3 } }')
        def custom(self, a: Any, b: Any) -> Any:
            return tf.constant(0.0, name="placeholder_result")

        @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            y = tf.nn.conv2d(x, self.w, 1, "VALID")
            return self.custom(y, tf.nn.relu(y))

    module = Module()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures=module.__call__.get_concrete_function())
    model = load_saved_model(tmp_path / "m")
    (function, attr, args), = model.implements.values()
    assert attr.func.name == "Custom_Op" and attr.func.attr["k"].i == 3 and function in model.library
    nodes = {n.name: n for n in model.graph.node}
    assert len(args) == 2 and nodes[args[1].split(":")[0]].op == "Relu"
    assert any(n.op == "Conv2D" for n in model.graph.node)
