"""Read a TensorFlow GraphDef (frozen ``.pb`` or text ``.pbtxt``) without TensorFlow.

:func:`load_graphdef` returns our own ``GraphDef`` message (``tf_graph_pb2``), parsed with the
schema in ``proto/tf_graph.proto``. Binary or text is decided from the content (text graphs are
UTF-8 without control characters; a binary GraphDef starts with field tags that are control
bytes), so a text graph named ``.pb`` or a binary one named ``.pbtxt`` both load.

Every problem the user can fix raises :class:`~transpiler.errors.ModelLoadError` with a one-line
message that names the file: missing file, directory, SavedModel (freeze it first), empty file,
another known format (Keras HDF5/.keras, TFLite), undecodable or truncated bytes, and graphs that
parse but cannot be real (no nodes, nodes without a name or op, duplicate names, inputs naming
nodes that do not exist — what a cut-off file usually leaves).

A file cut exactly between two nodes can still decode into a smaller valid graph whose missing
nodes nobody references; that case surfaces later, when the requested outputs are not found.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from transpiler.errors import ModelLoadError
from transpiler.frontends.tf.proto import tf_graph_pb2

__all__ = ["load_graphdef", "looks_like_text", "parse_graphdef"]

GraphDef = tf_graph_pb2.GraphDef

_FREEZE_HINT = (
    "freeze it to a GraphDef first (e.g. convert_variables_to_constants_v2 on the serving "
    "signature, or the Object Detection API's export_inference_graph / export_tflite_graph) "
    "and give the frozen .pb"
)

# Leading bytes of formats people hand us by mistake.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89HDF\r\n\x1a\n", "a Keras/HDF5 file (.h5); " + _FREEZE_HINT),
    (0, b"PK\x03\x04", "a zip archive (a Keras .keras file?); " + _FREEZE_HINT),
    (4, b"TFL3", "a TensorFlow Lite model, not a GraphDef"),
)

_SNIFF_BYTES = 4096
_TEXT_CONTROL_OK = {"\t", "\n", "\r", "\f", "\v"}


class _GraphLoadError(Exception):
    """Internal: a reason without the file name, wrapped into ModelLoadError by the caller."""


def looks_like_text(data: bytes) -> bool:
    """Whether ``data`` looks like a text-format protobuf rather than a binary one."""
    head = data[:_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        if exc.start < len(head) - 4:
            return False
        text = head[: exc.start].decode("utf-8")
    return not any(ch < " " and ch not in _TEXT_CONTROL_OK for ch in text) and "\x7f" not in text


def _check_graph(graph: tf_graph_pb2.GraphDef) -> None:
    if not graph.node:
        raise _GraphLoadError("no nodes found; not a TensorFlow GraphDef (or the file is cut short)")
    names: set[str] = set()
    for index, node in enumerate(graph.node):
        if not node.name or not node.op:
            what = "name" if not node.name else "op"
            raise _GraphLoadError(
                f"node #{index} ({node.name or node.op or '?'}) has no {what}; the file is corrupt or "
                "truncated, or not a GraphDef"
            )
        if node.name in names:
            raise _GraphLoadError(f"two nodes are named '{node.name}'; not a valid GraphDef")
        names.add(node.name)
    for node in graph.node:
        for inp in node.input:
            source = inp[1:] if inp.startswith("^") else inp.split(":", 1)[0]
            if source not in names:
                raise _GraphLoadError(
                    f"node '{node.name}' reads '{inp}', which is not in the graph; the file is "
                    "truncated or the graph is incomplete"
                )


def parse_graphdef(data: bytes, *, text: bool | None = None) -> tf_graph_pb2.GraphDef:
    """Parse GraphDef bytes (binary or text; ``text=None`` sniffs) and check it is plausible.

    Raises ModelLoadError (without a file name: :func:`load_graphdef` adds it).
    """
    try:
        return _parse(data, text)
    except _GraphLoadError as exc:
        raise ModelLoadError(str(exc)) from None


def _parse(data: bytes, text: bool | None) -> tf_graph_pb2.GraphDef:
    if not data:
        raise _GraphLoadError("the file is empty")
    for offset, magic, what in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            raise _GraphLoadError(f"this is {what}")
    graph = GraphDef()
    if text is None:
        text = looks_like_text(data)
    if text:
        try:
            text_format.Parse(data.decode("utf-8-sig"), graph)
        except UnicodeDecodeError as exc:
            raise _GraphLoadError(f"not valid UTF-8 text at byte {exc.start}") from None
        except text_format.ParseError as exc:
            raise _GraphLoadError(f"not a text-format GraphDef ({_one_line(exc)})") from None
    else:
        try:
            graph.ParseFromString(data)
        except DecodeError as exc:
            raise _GraphLoadError(
                f"cannot decode a binary GraphDef ({_one_line(exc)}); the file is truncated, "
                "corrupt, or not a TensorFlow graph"
            ) from None
    _check_graph(graph)
    return graph


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def load_graphdef(path: str | os.PathLike[str]) -> tf_graph_pb2.GraphDef:
    """Load a frozen TensorFlow graph from ``path`` (binary ``.pb`` or text ``.pbtxt``).

    Raises ModelLoadError naming ``path`` when the file cannot be a usable GraphDef.
    """
    p = Path(path)
    shown = os.fspath(path)

    def fail(reason: str) -> ModelLoadError:
        return ModelLoadError(f"cannot load TensorFlow graph '{shown}': {reason}")

    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            raise fail(f"this is a SavedModel directory; {_FREEZE_HINT}")
        raise fail("this is a directory; give the frozen graph file (.pb or .pbtxt)")
    if not p.exists():
        raise fail("no such file")
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        raise fail(f"this is a SavedModel, not a frozen GraphDef; {_FREEZE_HINT}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read it ({exc.strerror or exc})") from None
    try:
        return _parse(data, None)
    except _GraphLoadError as exc:
        raise fail(str(exc)) from None
