"""`dckd-fetch`: download the pretrained files and data an options file needs, and verify them.

  dckd-fetch --list                              every known file, its source and destination
  dckd-fetch NAME [NAME ...]                     these files (e.g. swinir_m_x4 vqgan_f16_1024)
  dckd-fetch --for options/train/swinir/dckd_swinir_x4.yml
                                                 every missing file the options file names
  dckd-fetch data div2k                          a data archive, unpacked for dckd-prepare

Files land where the options expect them (relative to the current folder, the repository root).
A download goes to <file>.partial and is resumed by the next call after a cut; the file appears
under its name only once complete and checked: sha256 where upstream publishes one, and always a
strict load into the network the options build. Files no script can fetch are listed with their
page and the path to put them in; run dckd-fetch again to verify them there.
"""
import argparse
import sys

from dckd_utils import known_files
from dckd_utils.schema import OptionError
from .fetching import fetch_for_options, fetch_known


def _list(entries):
    for entry in entries:
        how = f'page {entry.page}' if entry.page else entry.link
        checksum = f', sha256 {entry.sha256}...' if entry.sha256 else ''
        print(f'{entry.name:<26} -> {entry.destination}\n{"":<26}    from {how}{checksum}\n{"":<26}    ({entry.source})')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-fetch', description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', help="known files (dckd-fetch --list), or 'data NAME'")
    parser.add_argument('--for', dest='options', metavar='OPTIONS', help='fetch what this options file needs')
    parser.add_argument('--list', action='store_true', help='list the known files and stop')
    args = parser.parse_args(argv)

    if args.list:
        _list(known_files.MODELS + known_files.DATA)
        return
    names = args.names[1:] if args.names[:1] == ['data'] else args.names
    if not (names or args.options):
        parser.error('name a known file (dckd-fetch --list), data NAME, or --for OPTIONS')
    unknown = [n for n in names if n not in known_files.KNOWN]
    if unknown:
        parser.error(f'unknown: {", ".join(unknown)}; known: {", ".join(known_files.KNOWN)}')
    try:
        results = fetch_for_options(args.options) if args.options else [fetch_known(known_files.KNOWN[n]) for n in names]
    except OptionError as error:
        sys.exit(f'dckd-fetch: {error}')
    for line in results:
        print(line)
    if any(line.startswith('by hand') for line in results):
        sys.exit(1)


if __name__ == '__main__':
    main()
