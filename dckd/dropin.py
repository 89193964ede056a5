"""`dckd-dropin install|remove FORK`: make a BasicSR checkout, or a BasicSR-based project, train dckd's models.

BasicSR imports every `*_arch.py`, `*_model.py`, `*_loss.py` and `*_dataset.py` of its `archs/`,
`models/`, `losses/` and `data/` folders; projects built on it (HAT, Real-ESRGAN, SRFormer...)
scan their own package's folders the same way, with basicsr installed from pip. `install` finds
that package (FORK/basicsr in a checkout, else the one package of FORK whose `archs/` and `models/`
scan) and writes one-line registration files into its folders: our archs, losses, datasets and
models are then registered, and BasicSR's train_pipeline, which the fork's own train.py calls, runs
with dckd's parts (resumable data stream, teacher check, robust resume, stop signals: dckd/train.py),
so `python basicsr/train.py -opt options/train/*/dckd_*.yml` or `python hat/train.py -opt ...` trains
DCKD without editing the fork; a stop or a refusal ends it as it ends dckd-train (exit code 75
or 1 with one line). A fork's package imports basicsr before any file of its folders is read, and
basicsr fails to import on torchvision >= 0.17 and Python >= 3.12 without dckd's import fix: so
`install` also writes a start-up hook into the environment of the Python that runs it (HOOK in
its site-packages, read by every Python start there), which installs the fix first. `remove`
deletes exactly those files, the hook once no fork of the environment needs it. Files are
recognised by a marker line; a file of the same name without it is never touched. dckd must be
importable by the Python that runs the fork (install both into one environment, and run
dckd-dropin with that Python).
"""
import argparse
import os
import sys
import sysconfig

MARKER = '# written by dckd-dropin; remove with: dckd-dropin remove <fork>'
# folder: (registration file, its line); archs/ and models/ must be there, losses/ and data/ may
FILES = {
    'archs': ('dckd_ext_arch.py', 'import dckd_arch  # noqa: F401  (compat fix + VQGANEncoder, NAFNet, Restormer)'),
    'losses': ('dckd_ext_loss.py', 'import dckd_losses  # noqa: F401  (DynamicContrastiveLoss, DistributionMappingLoss)'),
    'data': ('dckd_ext_dataset.py', 'import dckd_data  # noqa: F401  (PaddedPairedImageDataset)'),
    'models': ('dckd_ext_model.py', 'import dckd_models  # noqa: F401  (KDModel, DCKDModel, RealWorldKDModel)\n'
               "from dckd.train import install_on_training  # dckd's parts in the fork's train_pipeline\n"
               'install_on_training()'),
}
SCANNED = {'archs': '_arch.py', 'models': '_model.py', 'losses': '_loss.py', 'data': '_dataset.py'}
HOOK = 'dckd_dropin.pth'  # site-packages runs a .pth file's `import` lines at every start of Python
HOOK_FORK = '# for: '  # one line per fork installed (a comment to site-packages)
HOOK_IMPORT = ("import importlib.util; importlib.util.find_spec('dckd_utils') and __import__('dckd_utils')"
               '  # installs the fix (dckd_utils/compat.py); nothing once dckd is uninstalled')


def _scans(package, folder):
    """Whether `package/folder/__init__.py` imports its `*<suffix>` files, as BasicSR's folders do."""
    init = os.path.join(package, folder, '__init__.py')
    if not os.path.isfile(init):
        return False
    with open(init) as f:
        return SCANNED[folder] in f.read()


def find_package(fork):
    """The package whose folders BasicSR-style scans import: FORK/basicsr, or FORK's one package
    that scans its archs/ and models/; SystemExit naming what is missing otherwise."""
    checkout = os.path.join(fork, 'basicsr')
    if os.path.isdir(checkout):
        missing = [d for d in ('archs', 'losses', 'models') if not os.path.isdir(os.path.join(checkout, d))]
        if missing:
            raise SystemExit(f'{fork} is not a BasicSR checkout: {checkout} lacks {", ".join(missing)}/')
        return checkout
    if not os.path.isdir(fork):
        raise SystemExit(f'{fork}: no such folder')
    packages = [os.path.join(fork, d) for d in sorted(os.listdir(fork))
                if os.path.isfile(os.path.join(fork, d, '__init__.py'))]
    scanning = [p for p in packages if _scans(p, 'archs') and _scans(p, 'models')]
    if len(scanning) == 1:
        return scanning[0]
    if scanning:
        raise SystemExit(f'{fork} has several packages that scan archs/ and models/ ({", ".join(scanning)}); '
                         'give the one whose train.py you run: dckd-dropin install <that folder>/..')
    raise SystemExit(f'{fork} is neither a BasicSR checkout (no basicsr/ folder) nor a BasicSR-based project: none '
                     f'of its packages ({", ".join(os.path.basename(p) for p in packages) or "none"}) has archs/ and '
                     "models/ folders whose __init__.py imports their *_arch.py and *_model.py files as BasicSR's do.")


def _targets(package):
    """(path, text) of each registration file for the folders `package` has."""
    return [(os.path.join(package, folder, name), f'{MARKER}\n{line}\n') for folder, (name, line) in FILES.items()
            if os.path.isdir(os.path.join(package, folder))]


def _ours(path):
    with open(path) as f:
        return MARKER in f.read()


def hook_path():
    """The start-up hook's path: the site-packages of the Python running dckd-dropin."""
    return os.path.join(sysconfig.get_paths()['purelib'], HOOK)


def _hooked_forks(hook):
    """The forks the hook at `hook` serves (none when there is no hook)."""
    if not os.path.exists(hook):
        return []
    with open(hook) as f:
        return [line[len(HOOK_FORK):].rstrip('\n') for line in f if line.startswith(HOOK_FORK)]


def _write_hook(hook, forks):
    lines = [MARKER, "# dckd's import fix for basicsr before any package imports it (dckd-dropin, docs/dropin.md)",
             *(HOOK_FORK + fork for fork in forks), HOOK_IMPORT]
    with open(hook, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def install(fork):
    package = find_package(fork)
    targets = _targets(package)
    hook = hook_path()
    for path, _ in targets + [(hook, None)]:
        if os.path.exists(path) and not _ours(path):
            raise SystemExit(f'{path} exists and was not written by dckd-dropin; not touching it.')
    if not os.access(os.path.dirname(hook), os.W_OK):
        raise SystemExit(f'cannot write the start-up hook into {os.path.dirname(hook)} (not writable): run dckd-dropin '
                         "with the Python of the environment that runs the fork, as a user who may install into it "
                         "(python -m dckd.dropin install ...); nothing was written.")
    for path, text in targets:
        with open(path, 'w') as f:
            f.write(text)
        print(f'wrote {path}')
    forks = [other for other in _hooked_forks(hook) if other != os.path.abspath(fork)]
    _write_hook(hook, forks + [os.path.abspath(fork)])
    print(f"wrote {hook}: a start-up hook of this environment ({sys.prefix}) that installs dckd's import fix before "
          "the fork's package imports basicsr")


def remove(fork):
    for path, _ in _targets(find_package(fork)):
        if os.path.exists(path):
            if not _ours(path):
                print(f'kept {path}: not written by dckd-dropin', file=sys.stderr)
                continue
            os.remove(path)
            print(f'removed {path}')
    hook = hook_path()
    if not os.path.exists(hook) or not _ours(hook):
        return
    others = [other for other in _hooked_forks(hook) if other != os.path.abspath(fork)]
    if others:
        _write_hook(hook, others)
        print(f'kept {hook}: the start-up hook serves {", ".join(others)} too')
    else:
        os.remove(hook)
        print(f'removed {hook}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-dropin', description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=['install', 'remove'])
    parser.add_argument('fork', help='root of the BasicSR checkout (holding basicsr/) or of the project (holding '
                                     'its package, e.g. hat/)')
    args = parser.parse_args(argv)
    (install if args.action == 'install' else remove)(args.fork)


if __name__ == '__main__':
    main()
