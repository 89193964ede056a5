"""`dckd-evaluate`: models x benchmarks -> PSNR/SSIM table (printed, and written as .md and .csv);
photographs without ground truth get NIQE, the no-reference score (lower is better).

Examples:
  dckd-evaluate --scale 4 --benchmark Set5 --benchmark Set14 \\
      --model bicubic --model DCKD=options/test/swinir/test_swinir_x4.yml --out results/swinir_x4
  dckd-evaluate --scale 4 --photos phone=photos/ --model Teacher=X.yml@network_t --model Student=Y.yml
"""
import argparse
import os

import torch

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from .benchmarks import load_photos, load_pairs, resolve, resolve_photos
from .cost import multiply_adds
from .metrics import convention
from .models import model_from_spec
from .table import evaluate, evaluate_without_reference, results_csv, results_markdown


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-evaluate', description=__doc__.split('\n')[0][len('`dckd-evaluate`: '):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', action='append', required=True,
                        help="'bicubic', 'nearest' (the LR image enlarged) or NAME=OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]: network_g (or NETWORK_KEY, "
                        'e.g. network_t) of the options file; the checkpoint defaults to its '
                        'path.pretrain_<NETWORK_KEY>; params_ema first. Repeatable.')
    parser.add_argument('--benchmark', action='append', default=[],
                        help='NAME prepared under --root by dckd-prepare, or NAME=GT_PATH,LQ_PATH. Repeatable.')
    parser.add_argument('--photos', action='append', default=[],
                        help='NAME=FOLDER (or LMDB) of photographs without ground truth: scored by NIQE, Y channel, '
                        'border as for PSNR (lower is better). Repeatable.')
    parser.add_argument('--scale', type=int, default=1)
    parser.add_argument('--task', choices=['sr', 'deblur', 'derain'], default='sr',
                        help='metric convention: sr = Y channel, border = scale; deblur = RGB; derain = Y')
    parser.add_argument('--root', default='datasets', help='where prepared benchmarks live')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 flips/rotations (networks only)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--tile', type=int, help='restore in overlapping tiles of this many LR pixels (large images)')
    parser.add_argument('--overlap', type=int, default=32, help='tile overlap in LR pixels (default 32)')
    parser.add_argument('--profile', action='store_true',
                        help='add a column of multiply-adds for a 1280x720 output (dckd-profile has the rest)')
    parser.add_argument('--out', help='write OUT.md and OUT.csv')
    return parser


def multiply_adds_at_720p(model, scale):
    """Multiply-adds of a network model for the LR input of a 1280x720 output; None for bicubic and nearest."""
    if not hasattr(model, 'net'):
        return None
    return multiply_adds(model._forward, torch.rand(1, 3, 720 // scale, 1280 // scale, device=model.device))


def run(args):
    if args.out and any(os.path.exists(args.out + ext) for ext in ('.md', '.csv')):
        raise SystemExit(f'{args.out}.md or .csv exists; choose another --out')
    if not (args.benchmark or args.photos):
        raise SystemExit('dckd-evaluate: give --benchmark (with ground truth) or --photos (without)')
    benchmarks = [resolve(spec, args.scale, args.root) for spec in args.benchmark]  # all checked before any work
    photo_sets = [resolve_photos(spec) for spec in args.photos]
    models = [model_from_spec(spec, args.scale, args.device, args.self_ensemble, tile=args.tile, overlap=args.overlap)
              for spec in args.model]
    y_channel, border = convention(args.task, args.scale)
    results = [(m.name, m.parameters, {}) for m in models]
    for name, gt_path, lq_path in benchmarks:
        pairs = load_pairs(gt_path, lq_path)
        for model, (_, _, scores) in zip(models, results):
            scores[name] = evaluate(model, pairs, y_channel, border, desc=f'{model.name} on {name}')
            print(f'{model.name} on {name}: {scores[name][0]:.2f} dB / {scores[name][1]:.4f}', flush=True)
    for name, path in photo_sets:
        photos = load_photos(path)
        for model, (_, _, scores) in zip(models, results):
            scores[name] = evaluate_without_reference(model, photos, border, desc=f'{model.name} on {name}')
            print(f'{model.name} on {name}: NIQE {scores[name][0]:.3f}', flush=True)
    columns = [(name, ('psnr', 'ssim')) for name, _, _ in benchmarks] + [(name, ('niqe', )) for name, _ in photo_sets]
    macs = {m.name: multiply_adds_at_720p(m, args.scale) for m in models} if args.profile else None
    table = results_markdown(results, columns, macs)
    channel = 'Y channel' if y_channel else 'RGB'
    note = ('\n' + '; '.join((['PSNR (dB) / SSIM, ' + channel] if benchmarks else [])
                             + (['NIQE (no reference, lower is better), Y channel'] if photo_sets else []))
            + f', border {border}' + (', x8 self-ensemble' if args.self_ensemble else ''))
    if args.profile:
        note += f'; MACs: multiply-adds for a 1280x720 output (input {1280 // args.scale}x{720 // args.scale})'
    print('\n' + table + note)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + '.md', 'w') as f:
            f.write(table + note + '\n')
        with open(args.out + '.csv', 'w') as f:
            f.write(results_csv(results, columns, macs))
    return results


def main(argv=None):
    run(build_parser().parse_args(argv))


if __name__ == '__main__':
    main()
