"""Importing this package registers dckd's archs in BasicSR's ARCH_REGISTRY.

It imports nothing of BasicSR but the registry, so it is safe to import while BasicSR scans its
own `archs` folder (the drop-in file does that), and it installs the compatibility fix first.
"""
from dckd import compat

compat.install()

from .nafnet_arch import NAFNet  # noqa: E402
from .pretrained_arch import PretrainedModel  # noqa: E402
from .restormer_arch import Restormer  # noqa: E402
from .vqgan_arch import VQGANEncoder  # noqa: E402

__all__ = ['NAFNet', 'PretrainedModel', 'Restormer', 'VQGANEncoder']
