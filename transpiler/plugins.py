"""Plugins: loading them, and who owns each registered TF handler, IR op, pass and Caffe emitter.

A plugin is a Python module (``--plugin NAME``) or file (``--plugin path/to/file.py``) that registers
what it needs through the ordinary decorators (``tf_op``, ``register_op``, ``register_pass``,
``caffe_op``). The built-in registrations are imported first and plugins last, so a plugin's entry
replaces a built-in one; every replacement is recorded as a note ("plugin 'p' replaces the built-in
TF handler for Relu6"). The rule does not depend on import order: a built-in module imported after a
plugin never takes an entry back (:func:`claim`).

An owner is the name of the module that registered an entry; names under ``transpiler`` are built-in.
When something a plugin registered raises, the error names the plugin (:func:`plugin_of`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from transpiler.errors import UsageError

log = logging.getLogger("transpiler")

# (kind, key) -> module that owns the entry now; kind is "TF handler", "IR op", "pass", "Caffe emitter".
_OWNERS: dict[tuple[str, str], str] = {}
# Notes on replaced built-ins, per loaded plugin (in load order).
_NOTES: dict[str, list[str]] = {}
_LOADING: list[str] = []  # the plugin being loaded (a stack: a plugin may load another)


def is_builtin(owner: str) -> bool:
    return owner == "transpiler" or owner.startswith("transpiler.")


def owner_of(obj: object) -> str:
    """The module that defined ``obj`` (a function or class)."""
    return str(getattr(obj, "__module__", None) or "?")


def claim(kind: str, key: str, owner: str) -> bool:
    """Whether ``owner`` may register ``key`` now (a built-in never replaces a plugin's entry).

    Records the new owner, and a note when a plugin replaces a built-in or another plugin's entry.
    """
    previous = _OWNERS.get((kind, key))
    if previous is not None and is_builtin(owner) and not is_builtin(previous):
        return False
    if previous is not None and previous != owner:
        note = f"plugin '{owner}' replaces the {kind} for {key} (from {previous})"
        log.info("%s", note)
        _NOTES.setdefault(_LOADING[-1] if _LOADING else owner, []).append(note)
    _OWNERS[(kind, key)] = owner
    return True


def registered_by(kind: str, key: str) -> str | None:
    """The module that registered ``key`` of ``kind``, if known."""
    return _OWNERS.get((kind, key))


def plugin_of(kind: str, key: str) -> str | None:
    """The plugin that registered ``key`` of ``kind``, or None when it is built-in (or unknown)."""
    owner = _OWNERS.get((kind, key))
    return owner if owner is not None and not is_builtin(owner) else None


def caller_module(depth: int = 2) -> str:
    """Name of the module calling the function that calls this (for registrations made by a plain call)."""
    return str(sys._getframe(depth).f_globals.get("__name__", "?"))


def load_builtins() -> None:
    """Import every built-in registration, so that plugins loaded afterwards replace them."""
    # Imported for their registrations (Caffe emitters, TF op handlers, passes).
    import transpiler.backends.caffe
    import transpiler.frontends.tf.handlers
    import transpiler.passes  # noqa: F401


_LOADED: set[str] = set()


def _with_current_folder() -> None:
    """Put the current folder on ``sys.path``, as ``python -m`` does, so that the ``tf2caffe`` script finds
    ``--plugin NAME`` modules there too."""
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)


def load_plugins(modules: Sequence[str]) -> list[str]:
    """Import user modules (once each), after the built-ins; returns the notes on what they replaced.

    ``NAME`` is imported as a module, from the current folder or ``sys.path``; a name ending in ``.py`` or
    containing a ``/`` is loaded as a file.
    """
    load_builtins()
    for name in modules:
        if name in _LOADED:
            continue
        _LOADED.add(name)
        _LOADING.append(name)
        try:
            if name.endswith(".py") or "/" in name:
                path = Path(name)
                if not path.is_file():
                    raise UsageError(f"--plugin {name}: no such file")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                if spec is None or spec.loader is None:
                    raise UsageError(f"--plugin {name}: cannot load it as a Python file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module  # so its registrations can name it
                spec.loader.exec_module(module)
            else:
                _with_current_folder()
                importlib.import_module(name)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"--plugin {name}: {type(exc).__name__}: {exc}") from exc
        finally:
            _LOADING.pop()
        log.info("loaded plugin %s", name)
    return [note for name in modules for note in _NOTES.get(name, [])]
