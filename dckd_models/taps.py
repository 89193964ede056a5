"""Features of named modules, tapped with forward hooks while a network runs (torchdistill's way):
no network needs a `forward_features` of its own."""
import contextlib

from dckd.schema import OptionError, closest


def check_module_names(net, names, where):
    """OptionError naming the option and the closest module when a name is not a module of `net`."""
    modules = dict(net.named_modules())
    for name in names:
        if name not in modules:
            raise OptionError(f'{where}: {type(net).__name__} has no module {name!r}'
                              f'{closest(name, [n for n in modules if n])}')


class FeatureTaps:
    """Records the outputs of `names` (module paths as in `named_modules()`) of `net` during
    `recording()`: {name: [output of each forward pass, in order]}."""

    def __init__(self, net, names):
        modules = dict(net.named_modules())
        self.names, self.recorded = list(names), {}
        self.handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.names]
        self.active = False

    def _hook(self, name):
        def record(module, inputs, output):
            if self.active:
                self.recorded.setdefault(name, []).append(output)
        return record

    @contextlib.contextmanager
    def recording(self):
        self.recorded, self.active = {}, True
        try:
            yield self.recorded
        finally:
            self.active = False
