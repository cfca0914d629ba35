"""The typed IR: values, nodes and the graph that owns them, with a small safe mutation API.

A :class:`Value` is an SSA edge: one producer (a node output) or none (a graph input or a constant),
a dtype, a static shape, and the list of ``(node, input_index)`` uses. A :class:`Node` has an IR op
type (framework-neutral: ``Conv``, ``Pool``, ``Affine``...), typed attributes, ordered inputs and
outputs, and the names of the source-framework nodes it came from. The :class:`Graph` keeps nodes in
topological order and keeps every use-list consistent: passes change the graph only through
:meth:`Graph.add_node`, :meth:`Graph.set_input`, :meth:`Graph.replace_all_uses_with` and
:meth:`Graph.remove`, never by editing lists directly.

Shapes are tuples of ints, ``None`` for an unknown dimension; a value of unknown rank has
``shape is None``. Layout is explicit: ``Value.layout`` is ``"NHWC"`` or ``"NCHW"`` for 4-D feature
maps and ``None`` otherwise; ``Value.tf_name``/``Value.tf_perm`` say which source tensor a value equals
and how its axes map (``value = transpose(tf_tensor, tf_perm)``, reshaped to the value's shape where
the ranks differ: a map flattened in NCHW order), which is what ``--verify
--per-layer`` uses to compare every blob with its TensorFlow counterpart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from transpiler.errors import IRError
from transpiler.ir.dtypes import DType

Shape = tuple[int | None, ...]


class Value:
    """An SSA value: produced by at most one node, used by any number."""

    __slots__ = ("_uses", "const", "dtype", "layout", "name", "producer", "shape", "tf_name", "tf_perm")

    def __init__(
        self,
        name: str,
        dtype: DType,
        shape: Shape | None,
        const: np.ndarray | None = None,
        *,
        layout: str | None = None,
        tf_name: str | None = None,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.shape: Shape | None = tuple(shape) if shape is not None else None
        self.const = const
        self.producer: Node | None = None
        self._uses: list[tuple[Node, int]] = []
        self.layout = layout
        self.tf_name = tf_name
        self.tf_perm: tuple[int, ...] | None = None

    @property
    def uses(self) -> tuple[tuple[Node, int], ...]:
        """``(node, input_index)`` pairs reading this value (read-only view)."""
        return tuple(self._uses)

    @property
    def users(self) -> list[Node]:
        """Distinct nodes reading this value, in use order."""
        seen: dict[int, Node] = {}
        for node, _ in self._uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def static_shape(self) -> tuple[int, ...]:
        """The shape with every dimension known; raises :class:`IRError` otherwise."""
        if self.shape is None or any(d is None for d in self.shape):
            raise IRError(f"value %{self.name} has no static shape ({format_shape(self.shape)})")
        return tuple(int(d) for d in self.shape)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"%{self.name}<{self.dtype.short}{format_shape(self.shape)}>"


class Node:
    """One operation. Attributes are plain Python values (ints, floats, strs, tuples, arrays)."""

    __slots__ = ("attrs", "graph", "inputs", "name", "op", "outputs", "source_names")

    def __init__(
        self,
        op: str,
        name: str,
        attrs: dict[str, Any] | None = None,
        source_names: Sequence[str] = (),
    ) -> None:
        self.op = op
        self.name = name
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.source_names: tuple[str, ...] = tuple(source_names)
        self.graph: Graph | None = None

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise IRError(f"{self.describe()} has {len(self.outputs)} outputs, expected one")
        return self.outputs[0]

    def describe(self) -> str:
        """``Op 'name' (from tf/node/a, tf/node/b)`` for error messages."""
        src = f" (from {', '.join(self.source_names)})" if self.source_names else ""
        return f"{self.op} '{self.name}'{src}"

    def __repr__(self) -> str:
        return f"<Node {self.describe()}>"


class Graph:
    """An ordered list of nodes (topological), with graph inputs and outputs.

    Constants are values with ``const`` set and no producer; they live as long as some node uses
    them. Mutation keeps use-lists exact; :func:`transpiler.ir.verifier.verify` checks it.
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self._names: set[str] = set()  # node names
        self._value_names: set[str] = set()
        self.metadata: dict[str, Any] = {}
        # Counts structural changes (nodes added, removed, moved or rewired): the pass manager re-infers and
        # re-verifies after a pass that reports no change only if this moved.
        self.revision = 0

    # ----------------------------------------------------------------- reading
    @property
    def nodes(self) -> tuple[Node, ...]:
        """Snapshot of the nodes in order: safe to iterate while mutating the graph."""
        return tuple(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self._nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def values(self) -> list[Value]:
        """Every value reachable: graph inputs, node inputs (incl. constants) and outputs, once each."""
        seen: dict[int, Value] = {}
        for v in self.inputs:
            seen.setdefault(id(v), v)
        for node in self._nodes:
            for v in (*node.inputs, *node.outputs):
                seen.setdefault(id(v), v)
        return list(seen.values())

    def find_node(self, name: str) -> Node | None:
        for node in self._nodes:
            if node.name == name:
                return node
        return None

    # ------------------------------------------------------------------ naming
    def unique_name(self, base: str, *, value: bool = False) -> str:
        """``base`` if no node (or, with ``value``, no value) has it yet, else ``base_1``, ``base_2``..."""
        taken = self._value_names if value else self._names
        name, i = base, 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        return name

    # ---------------------------------------------------------------- building
    def add_input(self, name: str, dtype: DType, shape: Shape | None, **kw: Any) -> Value:
        value = Value(self.unique_name(name, value=True), dtype, shape, **kw)
        self.inputs.append(value)
        return value

    def constant(self, name: str, array: np.ndarray | float | int, dtype: DType | None = None) -> Value:
        """A new constant value holding ``array`` (copied to a numpy array)."""
        arr = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype.numpy)
        return Value(self.unique_name(name, value=True), dtype or DType.from_numpy(arr.dtype), arr.shape, const=arr)

    def add_node(
        self,
        op: str,
        inputs: Sequence[Value],
        outputs: Sequence[Value] | int = 1,
        attrs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        source_names: Sequence[str] = (),
        before: Node | None = None,
        after: Node | None = None,
    ) -> Node:
        """Create a node and insert it (at the end, or before/after an existing node).

        ``outputs`` is either the values to attach (fresh, unproduced values) or a count, in which case
        placeholder values of unknown type are made, to be typed by shape inference.
        """
        node = Node(op, self.unique_name(name or op.lower()), attrs, source_names)
        node.graph = self
        self.revision += 1
        for i, v in enumerate(inputs):
            node.inputs.append(v)
            v._uses.append((node, i))
        if isinstance(outputs, int):
            outputs = [
                Value(self.unique_name(node.name if i == 0 else f"{node.name}:{i}", value=True), DType.FLOAT32, None)
                for i in range(outputs)
            ]
        for v in outputs:
            if v.producer is not None:
                raise IRError(f"value %{v.name} already produced by {v.producer.describe()}")
            v.producer = node
            node.outputs.append(v)
        if before is not None:
            self._nodes.insert(self._index(before), node)
        elif after is not None:
            self._nodes.insert(self._index(after) + 1, node)
        else:
            self._nodes.append(node)
        return node

    def new_value(self, name: str, like: Value | None = None, **kw: Any) -> Value:
        """A fresh unproduced value; copies dtype/shape/layout from ``like`` unless given."""
        dtype = kw.pop("dtype", like.dtype if like is not None else DType.FLOAT32)
        shape = kw.pop("shape", like.shape if like is not None else None)
        layout = kw.pop("layout", like.layout if like is not None else None)
        return Value(self.unique_name(name, value=True), dtype, shape, layout=layout, **kw)

    # ---------------------------------------------------------------- mutation
    def set_input(self, node: Node, index: int, value: Value) -> None:
        """Make input ``index`` of ``node`` read ``value``."""
        old = node.inputs[index]
        old._uses.remove((node, index))
        self.revision += 1
        node.inputs[index] = value
        value._uses.append((node, index))

    def set_inputs(self, node: Node, values: Sequence[Value]) -> None:
        """Replace the whole input list of ``node``."""
        for i, v in enumerate(node.inputs):
            v._uses.remove((node, i))
        node.inputs = []
        self.revision += 1
        for i, v in enumerate(values):
            node.inputs.append(v)
            v._uses.append((node, i))

    def rewrite(self, node: Node, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None) -> None:
        """Turn ``node`` into another op in place: same name, same output values, new inputs/attrs.

        The usual way to replace one node by one equivalent node: readers, names and the TF
        correspondence of the outputs are kept. Shapes are re-inferred by the pass manager.
        """
        node.op = op
        node.attrs = dict(attrs or {})
        self.revision += 1
        self.set_inputs(node, inputs)

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        """Every reader of ``old`` (and the graph outputs) reads ``new`` instead."""
        if old is new:
            return
        for node, index in list(old._uses):
            self.set_input(node, index, new)
        self.outputs = [new if v is old else v for v in self.outputs]
        self.revision += 1

    def remove(self, node: Node) -> None:
        """Remove a node whose outputs have no users; refuses otherwise."""
        for out in node.outputs:
            if out._uses or any(out is o for o in self.outputs):
                users = ", ".join(u.describe() for u in out.users) or "a graph output"
                raise IRError(f"cannot remove {node.describe()}: %{out.name} is still used by {users}")
        for i, v in enumerate(node.inputs):
            v._uses.remove((node, i))
        for out in node.outputs:
            out.producer = None
        self.revision += 1
        self._nodes.remove(node)
        node.graph = None

    def move_before(self, node: Node, anchor: Node) -> None:
        """Reorder ``node`` just before ``anchor`` (the caller keeps the order topological)."""
        self._nodes.remove(node)
        self._nodes.insert(self._index(anchor), node)
        self.revision += 1

    def topological_sort(self) -> None:
        """Reorder nodes so every producer precedes its users (stable for already-sorted graphs)."""
        order: list[Node] = []
        state: dict[int, int] = {}

        def visit(start: Node) -> None:
            stack: list[tuple[Node, bool]] = [(start, False)]
            while stack:
                node, done = stack.pop()
                if done:
                    state[id(node)] = 2
                    order.append(node)
                    continue
                mark = state.get(id(node), 0)
                if mark == 2:
                    continue
                if mark == 1:
                    raise IRError(f"cycle through {node.describe()}")
                state[id(node)] = 1
                stack.append((node, True))
                for v in reversed(node.inputs):
                    p = v.producer
                    if p is not None and state.get(id(p), 0) != 2:
                        if state.get(id(p), 0) == 1:
                            raise IRError(f"cycle through {p.describe()}")
                        stack.append((p, False))

        for node in self._nodes:
            visit(node)
        self._nodes = order
        self.revision += 1

    def _index(self, node: Node) -> int:
        for i, n in enumerate(self._nodes):
            if n is node:
                return i
        raise IRError(f"{node.describe()} is not in graph '{self.name}'")


def format_shape(shape: Shape | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"
