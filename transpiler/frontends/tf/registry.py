"""Registry of TensorFlow op handlers: ``@tf_op("Conv2D")`` maps a TF op type to an IR builder.

A handler receives the :class:`ImportContext` and the ``NodeDef`` and returns the IR values for
the TF node's outputs (index ``i`` of the list is TF output ``:i``). It builds IR through
``ctx.add`` and reads constant-valued inputs (shapes, axes, paddings) through ``ctx.static``. Users
add handlers from their own module, loaded with ``--plugin``: a plugin's handler replaces a built-in
one (with a note), and a built-in never replaces a plugin's (see :mod:`transpiler.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from transpiler.plugins import claim, owner_of

if TYPE_CHECKING:
    from transpiler.frontends.tf.importer import ImportContext
    from transpiler.ir.core import Value

Handler = Callable[["ImportContext", Any], "list[Value]"]
H = TypeVar("H", bound=Handler)

TF_HANDLERS: dict[str, Handler] = {}


def tf_op(*op_types: str) -> Callable[[H], H]:
    """Decorator registering a handler for one or more TF op types."""

    def deco(fn: H) -> H:
        for op_type in op_types:
            if claim("TF handler", op_type, owner_of(fn)):
                TF_HANDLERS[op_type] = fn
        return fn

    return deco
