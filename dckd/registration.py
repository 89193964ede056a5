"""One call that registers every dckd arch, loss and model in BasicSR's registries."""


def register_all():
    import dckd_models  # noqa: F401  (imports dckd_arch and dckd_losses too)
