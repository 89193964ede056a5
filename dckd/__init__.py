"""dckd: Dynamic Contrastive Knowledge Distillation (AAAI 2025) as a BasicSR extension.

The registrable parts live in the sibling packages `dckd_arch`, `dckd_losses` and
`dckd_models`; this package holds the glue: compatibility fixes, checkpoint loading,
the command-line entries and the demo.
"""
__version__ = '0.1.0'
