"""Importing this package registers dckd's archs in BasicSR's ARCH_REGISTRY.

It imports nothing of BasicSR but the registry, so it is safe to import while BasicSR scans its
own `archs` folder (the drop-in file does that), and it installs the compatibility fix first.
"""
import dckd_utils  # noqa: F401  (BasicSR's compatibility fix, installed on import, before anything of BasicSR)

from .nafnet_arch import NAFNet
from .pretrained_arch import PretrainedModel
from .restormer_arch import Restormer
from .vqgan_arch import VQGANEncoder

__all__ = ['NAFNet', 'PretrainedModel', 'Restormer', 'VQGANEncoder']
