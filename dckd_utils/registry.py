"""Registration into BasicSR's registries with a clear error on name clashes."""


def register(registry):
    """Class decorator like `registry.register()`, but a clash names both sides.

    Re-importing our own module (same qualified name) is not a clash; a different object
    under the same name (a fork that registers its own `DCKDModel`, say) is.
    """

    def decorate(cls):
        existing = dict(iter(registry)).get(cls.__name__)
        if existing is None:
            registry.register(cls)
        elif (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise RuntimeError(
                f"dckd cannot register '{cls.__name__}' ({cls.__module__}) in BasicSR's "
                f"'{registry._name}' registry: that name is already taken by {existing.__module__}."
                f'{existing.__qualname__}. Rename or remove one of the two, then import dckd again.')
        return cls

    return decorate
