"""``python -m transpiler`` and the ``tf2caffe`` command: see :mod:`transpiler.cli`."""

import gc
from typing import NoReturn


def main() -> NoReturn:
    # One conversion is a short process that allocates many small objects (numpy's import alone makes hundreds of
    # thousands) and frees nearly all of them by reference counting: a collection every 700 allocations (Python's
    # default) cost ~4 % of a detector SavedModel's conversion, counted from before the imports. Every 10000 still
    # collects reference cycles.
    gc.set_threshold(10_000, 50, 50)
    from transpiler.cli import entry

    entry()


if __name__ == "__main__":
    main()
