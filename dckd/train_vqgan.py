"""`dckd-train-vqgan -opt X.yml`: a VQGAN of your own images (VQGANModel), as DCKD's feature space.

dckd-train's pipeline for options whose model_type is VQGANModel (options/vqgan/): the same checks
(--check), resume (--auto_resume) and stop signals, in one process (--launcher is refused: the
replicas drift apart, docs/vqgan.md). Validation reports the reconstruction
PSNR and the codebook's usage (codes used, perplexity; a collapse is a warning); the run ends with
models/vqgan_encoder.pth, the file path.pretrain_network_vqgan of a DCKD run takes, and a summary
line (dckd_models/vqgan_model.py, docs/vqgan.md).
"""
import sys

from dckd import train
from dckd_models.options import trains_vqgan
from dckd_models.preflight import read_options_file
from dckd_utils.schema import OptionError


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if {'-h', '--help'} & set(argv):
        print('usage: dckd-train-vqgan [--check] -opt OPTIONS.yml [dckd-train arguments]\n')
        print(__doc__.replace('`', ''))
        return
    _, seen, _ = train.dckd_arguments(argv)
    if seen.opt is not None:
        try:
            model_type = read_options_file(seen.opt).get('model_type')
        except OptionError as error:
            sys.exit(f'dckd-train-vqgan: {seen.opt}: {error}')
        if not trains_vqgan(model_type):
            sys.exit(f'dckd-train-vqgan: {seen.opt}: model_type is {model_type}: dckd-train-vqgan trains a VQGAN '
                     '(model_type: VQGANModel, options/vqgan/); train a student with dckd-train.')
    train.main(argv)


if __name__ == '__main__':
    main()
