"""Features of named modules, tapped with forward hooks while a network runs (torchdistill's way):
no network needs a `forward_features` of its own."""
import contextlib

from dckd_utils.schema import OptionError, closest


def check_module_names(net, names, where):
    """OptionError naming the option and the closest module when a name is not a module of `net`."""
    modules = dict(net.named_modules())
    for name in names:
        if name not in modules:
            raise OptionError(f'{where}: {type(net).__name__} has no module {name!r}'
                              f'{closest(name, [n for n in modules if n])}')


def as_tokens(features):
    """(B, N, C): feature maps (B, C, H, W) with their N = H*W positions in row order, as SwinIR
    lays out its tokens; tokens as they are."""
    return features.flatten(2).transpose(1, 2) if features.dim() == 4 else features


def positions(shape):
    """The number of positions of features of `shape`: H*W of (B, C, H, W), N of tokens (B, N, C)."""
    return shape[2] * shape[3] if len(shape) == 4 else shape[1]


def channels(shape):
    """The channels of features of `shape`: (B, C, H, W) or tokens (B, N, C)."""
    return shape[1] if len(shape) == 4 else shape[2]


class FeatureTaps:
    """Records the outputs of `names` (module paths as in `named_modules()`) of `net` during
    `recording()`: {name: [output of each forward pass, in order]}."""

    def __init__(self, net, names):
        modules = dict(net.named_modules())
        self.names, self.recorded = list(dict.fromkeys(names)), {}
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

    def remove(self):
        """Take the hooks off the network."""
        for handle in self.handles:
            handle.remove()
