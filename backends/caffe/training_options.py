"""The user's choices for the SSD fine-tuning files (``--emit train,test,solver``): data sources, batch sizes,
test schedule. Kept apart from :mod:`training`, which writes the files, so that a conversion that writes none
does not load it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainingOptions:
    train_data: str = "trainval_lmdb"
    test_data: str = "test_lmdb"
    batch_size: int | None = None  # default: pipeline.config's, else 32
    test_batch_size: int = 8
    label_map_file: str = "labelmap.prototxt"
    test_iter: int = 100
    test_interval: int = 2000
