"""How fast the SavedModel reader is: crc32c throughput, and reading a SavedModel into a flat GraphDef.

    python bench/bench_saved_model_read.py [SAVED_MODEL_DIR ...] [--runs 5]

1. **crc32c**: CRC-32C of 14 MB of random bytes (the size of MobileNetV2's float32 weights) by Google's
   library (what conversions use when ``google-crc32c`` is installed), by our vectorised numpy fallback, and
   by the plain table-driven byte loop on 1 MB, scaled to 14 MB; median of ``--runs``.
2. **load**: ``load_saved_model`` (parse ``saved_model.pb``, inline the signature's calls, read and
   CRC-check the variables, make them constants) on each SavedModel, median of ``--runs`` in this
   process (imports excluded). Without arguments a Keras 3 MobileNetV2 (224×224, alpha 1, random
   weights) is exported with ``model.export`` into a temporary folder first (needs TensorFlow).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from transpiler.frontends.tf import crc32c as crc_module  # noqa: E402
from transpiler.frontends.tf.saved_model import load_saved_model  # noqa: E402


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def export_mobilenet_v2(folder: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    model = keras.applications.MobileNetV2(weights=None)
    path = folder / "mobilenet_v2"
    model.export(str(path), verbose=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    data = np.random.default_rng(0).integers(0, 256, 14_000_000, dtype=np.uint8).tobytes()
    native = median_seconds(lambda: crc_module.crc32c(data), args.runs) if crc_module.NATIVE else float("nan")
    fast = median_seconds(lambda: crc_module.numpy_crc32c(data), args.runs)
    sample = data[:1_000_000]
    slow = median_seconds(lambda: crc_module._run_bytes(0xFFFFFFFF, sample), max(1, args.runs // 2))
    print(f"crc32c, 14 MB: google-crc32c {native * 1e3:.1f} ms ({len(data) / native / 1e6:.0f} MB/s); numpy "
          f"vectorised {fast * 1e3:.0f} ms ({len(data) / fast / 1e6:.0f} MB/s); byte loop {slow * 14 * 1e3:.0f} ms "
          "(measured on 1 MB)")

    with tempfile.TemporaryDirectory() as tmp:
        models = args.models or [export_mobilenet_v2(Path(tmp))]
        for model in models:
            loaded = load_saved_model(model)
            seconds = median_seconds(lambda m=model: load_saved_model(m), args.runs)
            size = sum(f.stat().st_size for f in (Path(model) / "variables").glob("variables.data-*"))
            print(f"load_saved_model {Path(model).name}: {seconds * 1e3:.0f} ms ({len(loaded.graph.node)} nodes, "
                  f"{len(loaded.bindings)} variables, checkpoint {size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
