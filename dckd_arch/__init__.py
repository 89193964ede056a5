"""Importing this package registers dckd's archs in BasicSR's ARCH_REGISTRY.

It imports nothing of BasicSR but the registry, so it is safe to import while BasicSR scans its
own `archs` folder (the drop-in file does that), and it installs the compatibility fix first.
"""
from dckd import compat

compat.install()

from .vqgan_arch import VQGANEncoder  # noqa: E402

__all__ = ['VQGANEncoder']
