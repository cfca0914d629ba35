"""Pass registry and pass manager.

A pass is a class with a registered name and ``run(graph, ctx) -> bool`` (whether it changed the
graph: a pass that changes anything, attributes included, must say so). The manager runs an ordered
pipeline, re-infers shapes and verifies the IR after every pass that changed the graph (by its word, or
by :attr:`Graph.revision`, which counts structural edits whatever the pass says; always on: a broken
graph must never reach the backend), logs an op-count diff per pass
(``BatchNorm -52 (52->0)``), optionally dumps the IR after each pass (``NN_<pass>.ir.txt``), and
names the pass when something fails. Passes whose ``fixed_point`` is set are repeated until they
report no change.

Failures are told apart by who is at fault: a pass from a ``--plugin`` that raises is a
:class:`PluginError` naming the plugin, the pass and (when the traceback shows one) the node it was
working on (exit 2); a built-in pass that raises is an internal error (exit 70); shape inference that
cannot handle a node names the node (exit 2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from transpiler.errors import IRError, PluginError, TranspilerError, UnsupportedModelError, UsageError
from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import infer_node
from transpiler.ir.printer import to_text
from transpiler.ir.verifier import verify
from transpiler.plugins import claim, owner_of, plugin_of

log = logging.getLogger("transpiler.passes")


@dataclass
class PassContext:
    """What passes may know besides the graph: options from the CLI and collected warnings."""

    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record a warning for the report (the CLI prints them once, after conversion)."""
        log.info("warning: %s", message)
        self.warnings.append(message)


class Pass:
    """Base class of rewrite passes. Subclasses set ``name`` (via :func:`register_pass`)."""

    name: str = ""
    fixed_point: bool = False
    description: str = ""
    run_after: str | None = None  # where the default pipeline places a plugin pass

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        raise NotImplementedError


PASSES: dict[str, type[Pass]] = {}
P = TypeVar("P", bound=type[Pass])


def register_pass(name: str, *, fixed_point: bool = False, run_after: str | None = None) -> Callable[[P], P]:
    """Class decorator: ``@register_pass("fold-batchnorm")``. Later registrations override.

    ``run_after="fold-batchnorm"`` puts a (plugin) pass into the default pipeline after that pass.
    """

    def deco(cls: P) -> P:
        if not claim("pass", name, owner_of(cls)):
            return cls  # a built-in does not replace a plugin's pass of the same name
        cls.name = name
        cls.fixed_point = fixed_point
        cls.run_after = run_after
        if not cls.description and cls.__doc__:
            cls.description = cls.__doc__.strip().splitlines()[0]
        PASSES[name] = cls
        return cls

    return deco


def get_pass(name: str) -> Pass:
    try:
        return PASSES[name]()
    except KeyError:
        raise UsageError(f"unknown pass '{name}' (known: {', '.join(sorted(PASSES))})") from None


def with_plugin_passes(pipeline: Sequence[str]) -> list[str]:
    """``pipeline`` with every registered pass that asks to ``run_after`` one of its passes inserted."""
    result = list(pipeline)
    for name, cls in PASSES.items():
        if cls.run_after and name not in result and cls.run_after in result:
            result.insert(result.index(cls.run_after) + 1, name)
    return result


def infer_checked(node: Node) -> None:
    """Infer ``node``'s output shapes; any failure becomes an error naming the node (and the plugin, if one
    registered its op) instead of a bare exception from deep inside an inference function."""
    try:
        infer_node(node)
    except TranspilerError:
        raise
    except Exception as exc:
        shapes = ", ".join("x".join(map(str, v.shape)) if v.shape is not None else "?" for v in node.inputs)
        what = f"{node.describe()}: shape inference failed for inputs of shape ({shapes}): {type(exc).__name__}"
        what += f": {exc}" if str(exc) else ""
        plugin = plugin_of("IR op", node.op)
        if plugin is not None:
            raise PluginError(f"plugin '{plugin}': {what}") from exc
        raise UnsupportedModelError(f"{what} (this combination of ops is not supported)") from exc


def infer_shapes(graph: Graph) -> None:
    for node in graph.nodes:
        infer_checked(node)


def node_in_traceback(exc: BaseException, module: str) -> Node | None:
    """The IR node a failing plugin function was working on: the innermost ``Node`` local of a frame
    of ``module`` in ``exc``'s traceback (a best effort, to name the node in the message)."""
    tb = exc.__traceback__
    found: Node | None = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__") == module:
            local = frame.f_locals
            named = local.get("node")
            found = named if isinstance(named, Node) else next(
                (v for v in local.values() if isinstance(v, Node)), found)
        tb = tb.tb_next
    return found


def _pass_failure(p: Pass, exc: Exception) -> TranspilerError:
    plugin = plugin_of("pass", p.name)
    if plugin is None:  # a bug in a built-in pass: say which pass, keep the traceback
        if isinstance(exc, IRError):
            return IRError(f"pass '{p.name}' broke the IR: {exc}")
        return IRError(f"pass '{p.name}' failed: {type(exc).__name__}: {exc}")
    node = node_in_traceback(exc, plugin)
    at = f" at {node.describe()}" if node is not None else ""
    if isinstance(exc, IRError):
        return PluginError(f"plugin '{plugin}': pass '{p.name}' broke the IR{at}: {exc}")
    return PluginError(f"plugin '{plugin}': pass '{p.name}' failed{at}: {type(exc).__name__}: {exc}")


@dataclass
class PassRecord:
    name: str
    changed: bool
    seconds: float
    diff: dict[str, tuple[int, int]]

    def diff_text(self) -> str:
        if not self.diff:
            return "no op-count change"
        return ", ".join(f"{op} {after - before:+d} ({before}->{after})" for op, (before, after) in self.diff.items())


def op_count_diff(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    ops = sorted(set(before) | set(after))
    return {op: (before.get(op, 0), after.get(op, 0)) for op in ops if before.get(op, 0) != after.get(op, 0)}


class PassManager:
    """Runs named passes in order over a graph."""

    def __init__(self, names: Sequence[str], *, dump_dir: Path | None = None, max_iterations: int = 20) -> None:
        self.passes = [get_pass(n) for n in names]
        self.dump_dir = dump_dir
        self.max_iterations = max_iterations
        self.records: list[PassRecord] = []

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        ctx = ctx or PassContext()
        infer_shapes(graph)
        verify(graph)
        self._dump(0, "import", graph)
        after = graph.op_counts()
        for index, p in enumerate(self.passes, start=1):
            before = after
            start = time.perf_counter()
            changed = False
            for _ in range(self.max_iterations if p.fixed_point else 1):
                revision = graph.revision
                try:
                    step = p.run(graph, ctx)
                except IRError as exc:
                    raise _pass_failure(p, exc) from exc
                except TranspilerError:
                    raise
                except Exception as exc:
                    raise _pass_failure(p, exc) from exc
                # A pass that reports no change and left the structure as it was needs no second look (half the
                # passes of a MobileNetV2 conversion; the walks cost 2-4 ms each).
                if step or graph.revision != revision:
                    try:
                        infer_shapes(graph)
                        verify(graph)
                    except IRError as exc:
                        raise _pass_failure(p, exc) from exc
                changed |= step
                if not step:
                    break
            after = graph.op_counts()
            record = PassRecord(p.name, changed, time.perf_counter() - start, op_count_diff(before, after))
            self.records.append(record)
            log.info("pass %-22s %s", p.name, record.diff_text())
            self._dump(index, p.name, graph)
        return graph

    def _dump(self, index: int, name: str, graph: Graph) -> None:
        if self.dump_dir is None:
            return
        path = self.dump_dir / f"{index:02d}_{name}.ir.txt"
        try:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(to_text(graph))
        except OSError as exc:
            raise UsageError(f"--dump-ir {self.dump_dir}: cannot write {path.name}: {exc.strerror or exc}") from exc
