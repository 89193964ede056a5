"""`dckd-test` / `python test.py -opt X.yml`: BasicSR's test pipeline with dckd registered.
Results go under ./results/<name>."""
import argparse
import os
import sys

import basicsr.test
import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd_models.preflight import read_options_file
from dckd_utils.schema import OptionError


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    options_file = parser.parse_known_args()[0].opt
    if options_file:
        try:
            read_options_file(options_file)
        except OptionError as error:
            sys.exit(f'dckd-test: {error}')

    basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
