"""`dckd-restore`: restore a folder of images with a trained network, in tiles when they are large.

Example:
  dckd-restore --model options/test/swinir/test_swinir_x4.yml --input photos/ --output restored/ --tile 256

The network is `network_g` of the options file (or @NETWORK_KEY), with the checkpoint it names or
:CHECKPOINT (`params_ema` first), at the file's `scale`. Images larger than --tile LR pixels are
restored in overlapping tiles, blended (dckd/evaluate/tiles.py). Outputs are PNGs named as the
inputs; existing outputs are never replaced unless --overwrite is given.
"""
import argparse
import os

import cv2
import torch
from tqdm import tqdm

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd.evaluate.models import model_at_its_scale

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-restore', description=__doc__.split('\n\n')[0][len('`dckd-restore`: '):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', required=True, help='OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]')
    parser.add_argument('--input', required=True, help='folder of images')
    parser.add_argument('--output', required=True, help='folder for the restored PNGs')
    parser.add_argument('--tile', type=int, help='tile size in input pixels (default: whole images)')
    parser.add_argument('--overlap', type=int, default=32, help='tile overlap in input pixels (default 32)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    return parser


def planned_outputs(args):
    """(input path, output path) of every image; SystemExit naming what is missing or would be replaced."""
    if not os.path.isdir(args.input):
        raise SystemExit(f'--input {args.input}: no such folder')
    names = sorted(n for n in os.listdir(args.input) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise SystemExit(f'--input {args.input}: no images ({", ".join(IMAGE_EXTENSIONS)})')
    pairs = [(os.path.join(args.input, n), os.path.join(args.output, os.path.splitext(n)[0] + '.png')) for n in names]
    existing = [out for _, out in pairs if os.path.exists(out)]
    if existing and not args.overwrite:
        raise SystemExit(f'{len(existing)} output(s) exist, e.g. {existing[0]}; choose another --output or pass '
                         '--overwrite')
    return pairs


def main(argv=None):
    args = build_parser().parse_args(argv)
    pairs = planned_outputs(args)  # before the network is loaded
    try:
        model, scale = model_at_its_scale(args.model, args.device, tile=args.tile, overlap=args.overlap)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    os.makedirs(args.output, exist_ok=True)
    for source, target in tqdm(pairs, unit='image', desc='dckd-restore'):
        image = cv2.imread(source, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f'{source}: cannot be read as an image')
        cv2.imwrite(target, model.restore(image))
    print(f'{len(pairs)} image(s) restored at x{scale} into {args.output}')


if __name__ == '__main__':
    main()
