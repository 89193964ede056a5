"""Importing this package registers dckd's losses in BasicSR's LOSS_REGISTRY (compat fix first)."""
from dckd import compat

compat.install()

from .contrastive_loss import DynamicContrastiveLoss  # noqa: E402
from .distribution_loss import DistributionMappingLoss  # noqa: E402

__all__ = ['DynamicContrastiveLoss', 'DistributionMappingLoss']
