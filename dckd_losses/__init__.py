"""Importing this package registers dckd's losses in BasicSR's LOSS_REGISTRY (compat fix first)."""
import dckd_utils  # noqa: F401  (BasicSR's compatibility fix, installed on import, before anything of BasicSR)

from .contrastive_loss import DynamicContrastiveLoss
from .distribution_loss import DistributionMappingLoss

__all__ = ['DynamicContrastiveLoss', 'DistributionMappingLoss']
