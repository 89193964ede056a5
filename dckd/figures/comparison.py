"""`dckd-compare`: one benchmark image, one zoomed crop, every model side by side (the paper's
figure style): the whole GT with the crop marked, then GT, bicubic, teacher and students, each
labelled with its name and its PSNR on the whole image."""
import argparse
import os

import cv2
import numpy as np
import torch

from dckd.registration import register_all
from .drawing import labelled

LABEL_HEIGHT = 22
GAP = 4


def most_different_crop(images, size):
    """Top-left (x, y) of the size x size window where `images` (GT and the models' outputs)
    disagree most: the largest sum of per-pixel standard deviations across them."""
    stack = np.stack([o.astype(np.float32).mean(axis=2) for o in images])
    spread = stack.std(axis=0)
    window_sums = cv2.boxFilter(spread, -1, (size, size), normalize=False, anchor=(0, 0),
                                borderType=cv2.BORDER_CONSTANT)
    valid = window_sums[:spread.shape[0] - size + 1, :spread.shape[1] - size + 1]
    y, x = np.unravel_index(np.argmax(valid), valid.shape)
    return int(x), int(y)


def compose(gt, panels, crop, panel_size):
    """The figure: whole GT (crop marked) + one zoomed, labelled panel per (label, image)."""
    x, y, size = crop
    height = panel_size + LABEL_HEIGHT
    overview_width = round(gt.shape[1] * height / gt.shape[0])
    overview = cv2.resize(gt, (overview_width, height), interpolation=cv2.INTER_AREA)
    ratio = height / gt.shape[0]
    cv2.rectangle(overview, (round(x * ratio), round(y * ratio)),
                  (round((x + size) * ratio), round((y + size) * ratio)), (0, 0, 255), 2)
    tiles = [overview]
    for label, image in panels:
        zoomed = cv2.resize(image[y:y + size, x:x + size], (panel_size, panel_size), interpolation=cv2.INTER_NEAREST)
        tiles += [np.full((height, GAP, 3), 255, np.uint8), labelled(zoomed, label, LABEL_HEIGHT)]
    return np.concatenate(tiles, axis=1)


def figure_size(gt_shape, model_count, panel_size):
    """(height, width) of `compose`'s result: the overview keeps the GT's aspect ratio."""
    height = panel_size + LABEL_HEIGHT
    return height, round(gt_shape[1] * height / gt_shape[0]) + (model_count + 1) * (panel_size + GAP)


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-compare', description=__doc__.split('\n\n')[0])
    parser.add_argument('--benchmark', required=True, help='NAME prepared under --root, or NAME=GT_PATH,LQ_PATH')
    parser.add_argument('--image', required=True, help='image name (file stem), e.g. butterfly')
    parser.add_argument('--model', action='append', required=True, help="as in dckd-evaluate; 'bicubic' allowed")
    parser.add_argument('--scale', type=int, default=1)
    parser.add_argument('--task', choices=['sr', 'deblur', 'derain'], default='sr')
    parser.add_argument('--root', default='datasets')
    parser.add_argument('--crop', help='X,Y,SIZE in GT pixels; default: where the models differ most')
    parser.add_argument('--crop-size', type=int, default=64, help='size of the automatic crop')
    parser.add_argument('--panel', type=int, default=192, help='panel size in pixels')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', required=True, help='PNG to write (never overwritten)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if os.path.exists(args.out):
        raise SystemExit(f'{args.out} exists; choose another --out')
    register_all()
    from dckd.evaluate.benchmarks import load_pairs, resolve
    from dckd.evaluate.metrics import convention, psnr_ssim
    from dckd.evaluate.models import model_from_spec

    _, gt_path, lq_path = resolve(args.benchmark, args.scale, args.root)
    pairs = {key: (lq, gt) for key, lq, gt in load_pairs(gt_path, lq_path)}
    if args.image not in pairs:
        raise SystemExit(f'--image {args.image} is not in {gt_path}; it holds {sorted(pairs)[:10]}')
    lq, gt = pairs[args.image]
    models = [model_from_spec(spec, args.scale, args.device) for spec in args.model]
    y_channel, border = convention(args.task, args.scale)
    outputs = [m.restore(lq) for m in models]
    if args.crop:
        x, y, size = (int(v) for v in args.crop.split(','))
        if x < 0 or y < 0 or x + size > gt.shape[1] or y + size > gt.shape[0]:
            raise SystemExit(f'--crop {args.crop} leaves the {gt.shape[1]}x{gt.shape[0]} image')
    else:
        size = min(args.crop_size, *gt.shape[:2])
        x, y = most_different_crop([gt] + outputs, size)
    panels = [('GT', gt)] + [(f'{m.name} {psnr_ssim(o, gt, y_channel, border)[0]:.2f} dB', o)
                             for m, o in zip(models, outputs)]
    figure = compose(gt, panels, (x, y, size), args.panel)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, figure)
    print(f'wrote {args.out} ({figure.shape[1]}x{figure.shape[0]}), crop x={x} y={y} size={size}')


if __name__ == '__main__':
    main()
