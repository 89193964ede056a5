"""Make BasicSR 1.4.2 importable on current torchvision and Python.

BasicSR 1.4.2 imports `torchvision.transforms.functional_tensor` (removed in torchvision 0.17)
and `distutils` (removed in Python 3.12). `install()` appends a finder to `sys.meta_path` that
supplies stand-ins for exactly those modules, and only when the real ones cannot be found, so
nothing changes on environments where they still exist.
"""
import importlib.abc
import importlib.machinery
import re
import sys
import types

_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'


class LooseVersion:
    """The part of `distutils.version.LooseVersion` BasicSR uses: parse and compare."""

    def __init__(self, vstring):
        self.vstring = str(vstring)
        parts = [p for p in re.split(r'(\d+|[a-z]+|\.)', self.vstring.lower()) if p and p != '.']
        self.version = [int(p) if p.isdigit() else p for p in parts]

    def _key(self):
        # numbers sort before words, as in 1.0 < 1.0a; avoids comparing int with str
        return [(0, p, '') if isinstance(p, int) else (1, 0, p) for p in self.version]

    def __eq__(self, other):
        return self._key() == LooseVersion(other)._key()

    def __lt__(self, other):
        return self._key() < LooseVersion(other)._key()

    def __le__(self, other):
        return self._key() <= LooseVersion(other)._key()

    def __gt__(self, other):
        return self._key() > LooseVersion(other)._key()

    def __ge__(self, other):
        return self._key() >= LooseVersion(other)._key()

    def __str__(self):
        return self.vstring


def _fill_functional_tensor(module):
    from torchvision.transforms import _functional_tensor
    module.__dict__.update({k: v for k, v in vars(_functional_tensor).items() if not k.startswith('__')})


def _fill_distutils(module):
    module.__path__ = []


def _fill_distutils_version(module):
    module.LooseVersion = LooseVersion


_STAND_INS = {
    _FUNCTIONAL_TENSOR: _fill_functional_tensor,
    'distutils': _fill_distutils,
    'distutils.version': _fill_distutils_version,
}


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last-resort finder: consulted only after every regular finder failed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _STAND_INS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == 'distutils')
        return None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        _STAND_INS[module.__name__](module)


def install():
    """Idempotent; call before anything imports basicsr."""
    if not any(isinstance(finder, _StandInFinder) for finder in sys.meta_path):
        sys.meta_path.append(_StandInFinder())
