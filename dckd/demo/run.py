"""`dckd-demo`: the whole method on a laptop-sized problem, through BasicSR's real pipeline.

1. paired x4 LMDBs from scikit-image photographs (datasets/demo, reused when present);
2. train a small teacher, then three students of identical architecture and iteration count
   (scratch, Logits KD, DCKD) with `dckd.train` on the option files in options/demo/;
3. evaluate every model on the held-out photographs (Y channel, border 4) and print a table
   with the time each training took (also written to experiments/demo_results.md).

Run from the repository root. Existing experiment folders are archived by BasicSR, not replaced.
"""
import argparse
import logging
import os
import subprocess
import sys
import time

import torch
import yaml

from dckd.evaluate.table import format_parameters, markdown_table
from dckd.registration import register_all

STEPS = (
    ('teacher', 'demo_teacher_x4', 'network_g'),
    ('scratch', 'demo_scratch_x4', 'network_g'),
    ('Logits KD', 'demo_logits_x4', 'network_g'),
    ('DCKD', 'demo_dckd_x4', 'network_g'),
)
SHOWN_LOG_PARTS = ('INFO: [', 'Validation', '# psnr', '# ssim', 'WARNING', 'End of training', 'Error')


def repository_root():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isdir(os.path.join(root, 'options', 'demo')):
        raise FileNotFoundError('dckd-demo needs the repository checkout (options/demo/); install dckd with '
                                '`pip install -e .` from a clone and run it there.')
    return root


def train(option_file, logger):
    """Run dckd's training entry in a child process, showing its progress lines; returns seconds."""
    start = time.time()
    command = [sys.executable, '-m', 'dckd.train', '-opt', option_file]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        tail = []
        for line in child.stdout:
            tail = (tail + [line])[-30:]
            if any(part in line for part in SHOWN_LOG_PARTS):
                print('   ', line.rstrip(), flush=True)
    if child.returncode:
        raise RuntimeError(f'training with {option_file} failed:\n{"".join(tail)}')
    return time.time() - start


def results_table(rows, vqgan_note):
    header = ['model', 'parameters', 'PSNR (dB)', 'SSIM', 'training time']
    cells = [[name, format_parameters(params), f'{psnr:.2f}', f'{ssim:.4f}', f'{seconds:.0f} s' if seconds else '-']
             for name, params, psnr, ssim, seconds in rows]
    return markdown_table(header, cells) + f'\n{vqgan_note}\n'


def main(argv=None):
    argparse.ArgumentParser(prog='dckd-demo', description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    logger = logging.getLogger('dckd.demo')
    register_all()
    from dckd.demo.data import SCALE, prepare_demo_data
    from dckd.evaluate.benchmarks import load_pairs
    from dckd.evaluate.models import BicubicModel, NetworkModel
    from dckd.evaluate.table import evaluate

    os.chdir(repository_root())
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    logger.info(f'dckd demo on {device}; outputs under {os.getcwd()}/experiments')
    prepare_demo_data('datasets/demo', logger)
    pairs = load_pairs('datasets/demo/val_gt.lmdb', 'datasets/demo/val_lq_x4.lmdb')
    rows = [('bicubic', 0, *evaluate(BicubicModel(SCALE), pairs, y_channel=True, border=SCALE), None)]
    for label, name, network_key in STEPS:
        option_file = os.path.join('options', 'demo', f'{name}.yml')
        logger.info(f'[{label}] training with {option_file}')
        seconds = train(option_file, logger)
        with open(option_file) as f:
            opt = yaml.safe_load(f)
        model = NetworkModel(label, opt[network_key], os.path.join('experiments', name, 'models', 'net_g_latest.pth'),
                             device)
        rows.append((label, model.parameters, *evaluate(model, pairs, y_channel=True, border=SCALE), seconds))
        logger.info(f'[{label}] done in {seconds:.0f} s: PSNR {rows[-1][2]:.2f} dB')

    vqgan_note = ('DCKD here uses a RANDOMLY INITIALISED, shrunk VQGAN encoder (no pretrained weights are '
                  'available offline); with the pretrained ImageNet VQGAN use options/train/*/dckd_*.yml.')
    table = results_table(rows, vqgan_note)
    summary = (f'Held-out images: chelsea, rocket (x{SCALE}, Y channel, border {SCALE}); '
               f'students: identical EDSR, identical iterations; device: {device}.\n\n{table}')
    print('\n' + summary)
    with open(os.path.join('experiments', 'demo_results.md'), 'w') as f:
        f.write(summary)


if __name__ == '__main__':
    main()
