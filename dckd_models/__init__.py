"""Importing this package registers dckd's models in BasicSR's MODEL_REGISTRY, and the archs and
losses they use (it imports dckd_arch and dckd_losses first)."""
import dckd_arch  # noqa: F401  (compat fix and archs before any BasicSR model module)
import dckd_losses  # noqa: F401

from .dckd_model import DCKDModel  # noqa: E402
from .kd_model import KDModel  # noqa: E402

__all__ = ['DCKDModel', 'KDModel']
