"""Importing this package registers dckd's datasets in BasicSR's DATASET_REGISTRY (compat fix first)."""
from dckd import compat

compat.install()

from .padded_paired_dataset import PaddedPairedImageDataset  # noqa: E402

__all__ = ['PaddedPairedImageDataset']
