"""pyproject.toml installs every package of the source tree under the one namespace ``transpiler``.

An editable install finds modules even when the list misses one; a wheel does not. This checks the
list against the folders that hold an ``__init__.py``, mapped as setuptools' package-dir maps them.
"""

from __future__ import annotations

import tomllib

from conftest import REPO


def test_every_source_package_is_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = {folder: name for name, folder in config["package-dir"].items()}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *relative)))
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"listed packages without an __init__.py: {sorted(listed - found)}"
