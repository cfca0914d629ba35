"""``python -m transpiler``: see :mod:`transpiler.cli`."""

import sys

from transpiler.cli import main

sys.exit(main())
