"""`dckd-convert-rcan RCAN_BIX4.pt RCAN_BIX4_basicsr.pth`: official RCAN checkpoint -> BasicSR `RCAN`.

The conversion (renamed keys, mean-shift layers checked and dropped, network options read off the
keys) is dckd_arch/rcan_layout.py's; this command writes it to a file once and prints the options.
"""
import argparse

from dckd_utils.checkpoint import load_checkpoint, refuse_to_replace, save_atomically
from dckd_arch.rcan_layout import is_official_rcan, official_to_basicsr


def convert(checkpoint_path, output_path, force=False):
    """Write `{'params': converted}` for an official RCAN file; returns the inferred network options."""
    refuse_to_replace(output_path, force)
    checkpoint = load_checkpoint(checkpoint_path, what='RCAN checkpoint')
    if not is_official_rcan(checkpoint):
        raise SystemExit(f'{checkpoint_path} is not an official RCAN checkpoint (no head.0.weight, sub_mean.weight '
                         'and conv_du keys); a BasicSR RCAN .pth needs no conversion.')
    try:
        converted, info = official_to_basicsr(checkpoint)
    except ValueError as error:
        raise SystemExit(f'cannot convert {checkpoint_path}: {error}') from error
    save_atomically({'params': converted}, output_path)
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-convert-rcan', description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='official RCAN checkpoint (e.g. RCAN_BIX4.pt from yulunzhang/RCAN)')
    parser.add_argument('output', help="BasicSR .pth to write ({'params': ...})")
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    args = parser.parse_args(argv)
    info = convert(args.checkpoint, args.output, args.force)
    print(f'wrote {args.output}; network options for it (e.g. network_t):')
    for key, value in info.items():
        print(f'  {key}: {value}')


if __name__ == '__main__':
    main()
