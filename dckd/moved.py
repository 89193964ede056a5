"""Old import paths of modules that moved below the commands, to the library's packages (dckd 0.3).

`import dckd.compat` or `from dckd.registry import register` in a user's code still works: the
old name gives the module at its new place, with a DeprecationWarning naming that place.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    'dckd.compat': 'dckd_utils.compat',
    'dckd.registry': 'dckd_utils.registry',
    'dckd.schema': 'dckd_utils.schema',
    'dckd.checkpoint': 'dckd_utils.checkpoint',
    'dckd.random_states': 'dckd_utils.random_states',
    'dckd.basicsr_versions': 'dckd_utils.basicsr_versions',
    'dckd.fetch.known': 'dckd_utils.known_files',
    'dckd.rcan_layout': 'dckd_arch.rcan_layout',
    'dckd.prepare.images': 'dckd_data.image_files',
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an old name with the module at its new place."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f'{spec.name} moved to {MOVED[spec.name]}: import it from there', DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the module at its new place is already executed


def install():
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
