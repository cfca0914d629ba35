"""``python -m transpiler``: see :mod:`transpiler.cli`."""

from transpiler.cli import entry

entry()
