"""Importing this package registers dckd's models in BasicSR's MODEL_REGISTRY, and the archs,
losses and datasets they use (it imports dckd_arch, dckd_losses and dckd_data first)."""
import dckd_arch  # noqa: F401  (compat fix and archs before any BasicSR model module)
import dckd_data  # noqa: F401
import dckd_losses  # noqa: F401

from .dckd_model import DCKDModel  # noqa: E402
from .kd_model import KDModel  # noqa: E402
from .realworld_model import RealWorldKDModel  # noqa: E402
from .vqgan_model import VQGANModel  # noqa: E402

__all__ = ['DCKDModel', 'KDModel', 'RealWorldKDModel', 'VQGANModel']
