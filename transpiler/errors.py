"""Errors the transpiler raises, each mapped to a process exit code by the CLI.

Every error names what it is about (a file, a TF node, an IR node) so that a user sees one clear
message. The CLI prints ``str(error)`` and exits with ``error.exit_code``:

- 2: bad input, unsupported model, or a failing plugin (nothing written);
- 3: ``--verify`` found outputs beyond tolerance;
- 70: an internal error (a bug in the transpiler; the CLI says how to report it).

Exit code 1 is never used: anything unexpected is caught by the CLI and reported as 70.
"""

from __future__ import annotations


class TranspilerError(Exception):
    """Base class: a problem the user can act on. Exit code 2 (bad input or unsupported model)."""

    exit_code = 2


class ModelLoadError(TranspilerError):
    """The model file is missing, unreadable, or not a GraphDef."""


class UnsupportedModelError(TranspilerError):
    """The graph uses ops or patterns no handler supports; lists every offender at once."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class UsageError(TranspilerError):
    """Command-line arguments that do not fit the model (unknown input name, bad shape...)."""


class IRError(TranspilerError):
    """An IR invariant is broken (verifier failure or an illegal mutation). A bug, not user input."""

    exit_code = 70


class BackendError(TranspilerError):
    """The IR cannot be expressed in the chosen backend / flavor."""


class PluginError(TranspilerError):
    """Something a ``--plugin`` registered (TF handler, IR op, pass, Caffe emitter) raised; names the plugin
    and the node. Exit code 2: the fix is in the user's plugin, not in the transpiler."""


class VerificationFailed(TranspilerError):
    """--verify found outputs that differ from TensorFlow beyond tolerance."""

    exit_code = 3


def name_the_place(exc: TranspilerError, where: str) -> None:
    """Prefix ``where`` (a file, a node) to an error raised by a helper that could not know it (decoding a tensor,
    say), unless its message already names that place; ``exc`` is changed in place, to be re-raised. Internal
    errors (a bug: the CLI says where it happened) and a plugin's (they name the plugin) are left as they are."""
    if exc.exit_code != 2 or isinstance(exc, PluginError):
        return
    message = str(exc.args[0]) if exc.args else ""
    if where.split(":", 1)[0] not in message:
        exc.args = (f"{where}: {message}" if message else where, *exc.args[1:])
