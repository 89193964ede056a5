"""dckd: Dynamic Contrastive Knowledge Distillation (AAAI 2025) as a BasicSR extension.

This package holds the commands (`dckd-train`, `dckd-test`, `dckd-fetch`, `dckd-prepare`,
`dckd-evaluate`, the figures, `dckd-profile`, `dckd-restore`, `dckd-export`, the converters,
`dckd-dropin`, the demo) and the helpers only they use. The library lies below and never imports
it: `dckd_models` (the KD models and their terms) on `dckd_arch`, `dckd_losses` and `dckd_data`, all
on `dckd_utils` (BasicSR compatibility, registry, option schema, checkpoints).

Importing it makes BasicSR importable on current torchvision and Python first (`dckd_utils`).
"""
import dckd_utils  # noqa: F401  (BasicSR's compatibility fix, before anything imports basicsr)
from dckd import moved

moved.install()

__version__ = '0.2.0'
