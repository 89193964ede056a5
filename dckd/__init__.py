"""dckd: Dynamic Contrastive Knowledge Distillation (AAAI 2025) as a BasicSR extension.

The registrable parts live in the sibling packages `dckd_arch`, `dckd_losses` and
`dckd_models`; this package holds the glue: compatibility fixes, checkpoint loading,
data preparation, evaluation, figures, the command-line entries and the demo.

Importing any `dckd` module makes BasicSR 1.4.2 importable on current torchvision and Python
first (see `dckd.compat`); that holds in worker processes too, which import modules afresh.
"""
from dckd import compat

compat.install()

__version__ = '0.2.0'
