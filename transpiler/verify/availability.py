"""Checks that ``--verify`` and ``demo`` can run, made before anything is converted or written.

``--verify`` needs TensorFlow (to run the source graph) and OpenCV 4.x (to run the Caffe model: OpenCV
5 removed its Caffe importer). TensorFlow is looked up with ``importlib.util.find_spec``, without
importing it (that takes seconds); OpenCV is imported, since only the module knows its version.
A picture given with ``--verify-input`` or ``demo --image`` is read once here, so that a missing or
unreadable file is refused before the model is written.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transpiler.errors import UsageError

EXTRA = 'pip install "tf2caffe-transpiler[verify]"'


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def missing_for_verify() -> list[str]:
    """What ``--verify`` lacks, as short phrases (empty when it can run)."""
    missing = []
    if importlib.util.find_spec("tensorflow") is None:
        missing.append("TensorFlow is not installed")
    try:
        import cv2
    except ImportError:
        missing.append("OpenCV is not installed")
    else:
        version = str(getattr(cv2, "__version__", "0"))
        if _major(version) >= 5:
            missing.append(f"OpenCV {version} has no Caffe importer (OpenCV 4.x is needed)")
    return missing


def require_verify(option: str = "--verify") -> None:
    """Raise :class:`UsageError` naming the extra to install unless TensorFlow and OpenCV 4.x are present."""
    missing = missing_for_verify()
    if missing:
        raise UsageError(f"{option} needs TensorFlow and OpenCV 4.x: {'; '.join(missing)}. Install them with "
                         f"{EXTRA} (it pins opencv-python-headless<5)")


def require_picture(path: Path, option: str) -> None:
    """Raise :class:`UsageError` unless ``path`` is a picture OpenCV can read (call after :func:`require_verify`)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file")
    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        pixels = None
    if pixels is None:
        raise UsageError(f"{option} {path}: not a picture OpenCV can read")
