"""`dckd-dropin install|remove FORK`: make a BasicSR checkout (or fork) train dckd's models.

`install` writes three one-line registration files into FORK/basicsr/{archs,losses,models}, which
BasicSR's own folder scan imports, so `python basicsr/train.py -opt options/train/*/dckd_*.yml` works in
the fork without editing it. `remove` deletes exactly those files. Files are recognised by a marker
line; a file of the same name without it is never touched. dckd must be importable by the Python
that runs the fork (install both into one environment).
"""
import argparse
import os
import sys

MARKER = '# written by dckd-dropin; remove with: dckd-dropin remove <fork>'
FILES = {
    'archs/dckd_ext_arch.py': 'import dckd_arch  # noqa: F401  (compat fix + VQGANEncoder)',
    'losses/dckd_ext_loss.py': 'import dckd_losses  # noqa: F401  (DynamicContrastiveLoss, DistributionMappingLoss)',
    'models/dckd_ext_model.py': 'import dckd_models  # noqa: F401  (KDModel, DCKDModel)',
}


def _package_dir(fork):
    package = os.path.join(fork, 'basicsr')
    missing = [d for d in ('archs', 'losses', 'models') if not os.path.isdir(os.path.join(package, d))]
    if missing:
        raise SystemExit(f'{fork} is not a BasicSR checkout: {package} lacks {", ".join(missing)}/')
    return package


def _ours(path):
    with open(path) as f:
        return MARKER in f.read()


def install(fork):
    package = _package_dir(fork)
    for relative, line in FILES.items():
        path = os.path.join(package, relative)
        if os.path.exists(path) and not _ours(path):
            raise SystemExit(f'{path} exists and was not written by dckd-dropin; not touching it.')
    for relative, line in FILES.items():
        with open(os.path.join(package, relative), 'w') as f:
            f.write(f'{MARKER}\n{line}\n')
        print(f'wrote {os.path.join(package, relative)}')


def remove(fork):
    package = _package_dir(fork)
    for relative in FILES:
        path = os.path.join(package, relative)
        if os.path.exists(path):
            if not _ours(path):
                print(f'kept {path}: not written by dckd-dropin', file=sys.stderr)
                continue
            os.remove(path)
            print(f'removed {path}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-dropin', description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=['install', 'remove'])
    parser.add_argument('fork', help='root of the BasicSR checkout (the folder holding basicsr/)')
    args = parser.parse_args(argv)
    (install if args.action == 'install' else remove)(args.fork)


if __name__ == '__main__':
    main()
