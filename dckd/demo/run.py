"""`dckd-demo`: the whole method on a laptop-sized problem, through BasicSR's real pipeline.

1. paired x4 LMDBs from scikit-image photographs (datasets/demo, reused when present);
2. train a small teacher, then three students of identical architecture and iteration count
   (scratch, Logits KD, DCKD) with `dckd.train` on the option files in options/demo/;
3. evaluate every model on the held-out photographs (Y channel, border 4) and print a table
   with the time each training took (also written to experiments/demo_results.md);
4. draw the result: experiments/demo_comparison.png (the same crop of each held-out photograph
   for the LR input, bicubic, the three students, the teacher and the ground truth, with their
   PSNRs; dckd-compare) and experiments/demo_curves.png (validation PSNR and every loss term of
   the three students over the iterations; dckd-curves).

Run from the repository root. Existing experiment folders are archived by BasicSR, not replaced;
the results of an earlier demo are kept under dated names (`demo_results_archived_<time>.md`).
"""
import argparse
import logging
import os
import subprocess
import sys
import time

import torch
import yaml

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd.demo.data import HELD_OUT_IMAGES, SCALE, prepare_demo_data
from dckd.evaluate.benchmarks import load_pairs
from dckd.evaluate.models import BicubicModel, NetworkModel
from dckd.evaluate.table import evaluate, format_parameters, markdown_table
from dckd.figures import comparison, curves

STEPS = (  # (label, options and experiment name), in training order
    ('teacher', 'demo_teacher_x4'),
    ('scratch', 'demo_scratch_x4'),
    ('Logits KD', 'demo_logits_x4'),
    ('DCKD', 'demo_dckd_x4'),
)
STUDENTS = STEPS[1:]
RESULTS = 'experiments/demo_results.md'
COMPARISON = 'experiments/demo_comparison.png'
CURVES = 'experiments/demo_curves.png'
HELD_OUT = 'held_out=datasets/demo/val_gt.lmdb,datasets/demo/val_lq_x4.lmdb'
CHECKPOINT = 'experiments/{}/models/net_g_latest.pth'

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


def keep_earlier(path):
    """An earlier demo's output moves aside under a dated name, as BasicSR archives experiment folders."""
    if os.path.exists(path):
        stem, extension = os.path.splitext(path)
        os.rename(path, f'{stem}_archived_{time.strftime("%Y%m%d_%H%M%S")}{extension}')


def draw_figures(held_out_images):
    """The comparison (one row per held-out image) and the training curves, through the commands."""
    models = ['nearest', 'bicubic'] + [f'{label}=options/demo/{name}.yml:{CHECKPOINT.format(name)}'
                                       for label, name in STUDENTS + STEPS[:1]]
    comparison.main(['--scale', '4', '--benchmark', HELD_OUT, '--crop-size', '48', '--panel', '144',
                     *[a for image in held_out_images for a in ('--image', image)],
                     *[a for model in models for a in ('--model', model)], '--out', COMPARISON])
    curves.main([f'{label}=experiments/{name}' for label, name in STUDENTS] + ['--losses', '--out', CURVES])


def main(argv=None):
    argparse.ArgumentParser(prog='dckd-demo', description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    logger = logging.getLogger('dckd.demo')

    os.chdir(repository_root())
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    logger.info(f'dckd demo on {device}; outputs under {os.getcwd()}/experiments')
    prepare_demo_data('datasets/demo', logger)
    pairs = load_pairs('datasets/demo/val_gt.lmdb', 'datasets/demo/val_lq_x4.lmdb')
    rows = [('bicubic', 0, *evaluate(BicubicModel(SCALE), pairs, y_channel=True, border=SCALE), None)]
    for label, name in STEPS:
        option_file = os.path.join('options', 'demo', f'{name}.yml')
        logger.info(f'[{label}] training with {option_file}')
        seconds = train(option_file, logger)
        with open(option_file) as f:
            opt = yaml.safe_load(f)
        model = NetworkModel(label, opt['network_g'], CHECKPOINT.format(name), device)
        rows.append((label, model.parameters, *evaluate(model, pairs, y_channel=True, border=SCALE), seconds))
        logger.info(f'[{label}] done in {seconds:.0f} s: PSNR {rows[-1][2]:.2f} dB')

    vqgan_note = ('DCKD here uses a RANDOMLY INITIALISED, shrunk VQGAN encoder (no pretrained weights are '
                  'available offline); with the pretrained ImageNet VQGAN use options/train/*/dckd_*.yml.')
    table = results_table(rows, vqgan_note)
    summary = (f'Held-out images: chelsea, rocket (x{SCALE}, Y channel, border {SCALE}); '
               f'students: identical EDSR, identical iterations; device: {device}.\n\n{table}')
    print('\n' + summary)
    for path in (RESULTS, COMPARISON, CURVES):
        keep_earlier(path)
    with open(RESULTS, 'w') as f:
        f.write(summary)
    draw_figures(HELD_OUT_IMAGES)
    print(f'\nTable: {RESULTS}\nComparison: {COMPARISON}\nCurves: {CURVES}')


if __name__ == '__main__':
    main()
