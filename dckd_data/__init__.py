"""Importing this package registers dckd's datasets in BasicSR's DATASET_REGISTRY (compat fix first)."""
import dckd_utils  # noqa: F401  (BasicSR's compatibility fix, installed on import, before anything of BasicSR)

from .hr_image_dataset import HRImageDataset
from .padded_paired_dataset import PaddedPairedImageDataset

__all__ = ['HRImageDataset', 'PaddedPairedImageDataset']
