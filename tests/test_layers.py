"""The layers of the code: the library below, the commands on top, every import pointing down.

    dckd                                the commands (dckd-train, dckd-fetch, ...) and helpers only they use
    dckd_models                         the KD models, their terms, the option schema, the checks before training
    dckd_arch, dckd_losses, dckd_data   networks, losses, datasets: independent of each other
    dckd_utils                          what they all share: BasicSR compatibility, registry, option kinds,
                                        checkpoints, random states, the known published files

A module imports its own package and the layers below it, never one above or beside it. No module
imports a dckd package inside a function: an import hidden there to dodge a cycle is how layers
tangle without anyone seeing it. The imports are read from the source (`ast`), so a module that
is never imported by the tests is checked too.
"""
import ast
import os
import subprocess
import sys

from conftest import PROJECT_ROOT

LAYERS = {'dckd_utils': 0, 'dckd_arch': 1, 'dckd_losses': 1, 'dckd_data': 1, 'dckd_models': 2, 'dckd': 3}


def modules(root):
    """(dotted name, path) of every module of the layered packages under `root`."""
    for package in LAYERS:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in sorted(files):
                if name.endswith('.py'):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
                    yield dotted.removesuffix('.__init__'), path


def imports(dotted, path):
    """(imported module, line, inside a function) for every import statement of one module."""
    tree = ast.parse(open(path).read(), path)
    package = dotted if path.endswith('__init__.py') else dotted.rpartition('.')[0]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                yield from ((alias.name, child.lineno, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: from the package, up level - 1 packages
                    base = package.split('.')[:len(package.split('.')) - child.level + 1]
                    yield '.'.join(base + ([child.module] if child.module else [])), child.lineno, inside
                else:
                    yield child.module, child.lineno, inside
            yield from visit(child, inside)

    yield from visit(tree, False)


def violations(root):
    """What breaks the layers under `root`, one line each."""
    found = []
    for dotted, path in modules(root):
        own = dotted.split('.')[0]
        for imported, line, in_function in imports(dotted, path):
            target = imported.split('.')[0]
            if target not in LAYERS or target == own:
                if target == own and in_function:
                    found.append(f'{dotted}:{line} imports {imported} inside a function')
                continue
            if LAYERS[target] >= LAYERS[own]:
                found.append(f'{dotted}:{line} imports {imported}, a layer above or beside {own}')
            elif in_function:
                found.append(f'{dotted}:{line} imports {imported} inside a function')
    return found


def test_every_import_points_down_and_none_hides_in_a_function():
    assert violations(PROJECT_ROOT) == []


def test_the_check_finds_an_upward_import_a_sideways_one_and_one_inside_a_function(tmp_path):
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / '__init__.py').write_text('')
    (tmp_path / 'dckd_models' / 'preflight.py').write_text('from dckd.train import main\n')
    (tmp_path / 'dckd_losses' / 'loss.py').write_text('import os\n\nfrom dckd_arch import vqgan_arch\n')
    (tmp_path / 'dckd' / 'train.py').write_text('def main():\n    from dckd_models import kd_model\n')
    (tmp_path / 'dckd' / 'fetch.py').write_text('def main():\n    from .train import main\n')
    assert violations(tmp_path) == [
        'dckd_losses.loss:3 imports dckd_arch, a layer above or beside dckd_losses',
        'dckd_models.preflight:1 imports dckd.train, a layer above or beside dckd_models',
        'dckd.fetch:2 imports dckd.train inside a function',
        'dckd.train:2 imports dckd_models inside a function',
    ]


def test_every_package_of_the_project_has_its_layer():
    packages = {name for name in os.listdir(PROJECT_ROOT)
                if os.path.isfile(os.path.join(PROJECT_ROOT, name, '__init__.py'))}
    assert packages == set(LAYERS)


def run_python(code, *options):
    return subprocess.run([sys.executable, *options, '-c', code], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(PROJECT_ROOT))


def test_old_import_paths_give_the_moved_modules_and_name_their_new_place():
    works = run_python('from dckd.registry import register\nfrom dckd import compat\nimport dckd.schema, dckd_utils.registry\n'
                       'assert register is dckd_utils.registry.register and compat.install\n'
                       'from dckd.fetch.known import KNOWN\nfrom dckd.prepare.images import lmdb_shapes')
    assert works.returncode == 0, works.stderr
    warned = run_python('import dckd.registry', '-W', 'error::DeprecationWarning:__main__')
    assert 'dckd.registry moved to dckd_utils.registry' in warned.stderr
