"""`dckd-compare`: benchmark images, one zoomed crop each, every model side by side (the paper's
figure style). One row per `--image`: the whole GT with the crop marked, then the same crop of
every model in `--model` order (the LR input by `nearest`, bicubic, students, teacher), each
labelled with its name and its PSNR on the whole image, and the GT last. Photographs without
ground truth (`--photos`): the whole LR photograph (enlarged) with the crop marked, then every
model's crop labelled with its NIQE (no-reference, lower is better)."""
import argparse
import os

import cv2
import numpy as np
import torch

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd.evaluate.benchmarks import load_pairs, load_photos, resolve, resolve_photos
from dckd.evaluate.metrics import convention, niqe, psnr_ssim
from dckd.evaluate.models import NearestModel, model_from_spec
from .drawing import labelled, padded_to_width

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


def stack_rows(rows):
    """Rows of the figure one below the other, white-padded on the right to the widest."""
    width = max(row.shape[1] for row in rows)
    padded = []
    for row in rows:
        padded += [np.full((GAP, width, 3), 255, np.uint8)] if padded else []
        padded.append(padded_to_width(row, width))
    return np.concatenate(padded, axis=0)


def parse_crop(text, gt_shape, image):
    x, y, size = (int(v) for v in text.split(','))
    if x < 0 or y < 0 or x + size > gt_shape[1] or y + size > gt_shape[0]:
        raise SystemExit(f'--crop {text} leaves the {gt_shape[1]}x{gt_shape[0]} image {image}')
    return x, y, size


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-compare', description=__doc__.split('\n\n')[0])
    images = parser.add_mutually_exclusive_group(required=True)
    images.add_argument('--benchmark', help='NAME prepared under --root, or NAME=GT_PATH,LQ_PATH')
    images.add_argument('--photos', help='NAME=FOLDER (or LMDB) of photographs without ground truth')
    parser.add_argument('--image', action='append', required=True,
                        help='image name (file stem), e.g. butterfly; repeatable: one row each')
    parser.add_argument('--model', action='append', required=True,
                        help="as in dckd-evaluate ('bicubic', 'nearest' allowed); panels in this order")
    parser.add_argument('--scale', type=int, default=1)
    parser.add_argument('--task', choices=['sr', 'deblur', 'derain'], default='sr')
    parser.add_argument('--root', default='datasets')
    parser.add_argument('--crop', help='X,Y,SIZE in output pixels, for every image; default: where the models differ most')
    parser.add_argument('--crop-size', type=int, default=64, help='size of the automatic crop')
    parser.add_argument('--panel', type=int, default=192, help='panel size in pixels')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', required=True, help='PNG to write (never overwritten)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if os.path.exists(args.out):
        raise SystemExit(f'{args.out} exists; choose another --out')
    if args.photos:
        _, where = resolve_photos(args.photos)
        pairs = {key: (lq, None) for key, lq in load_photos(where).items()}
    else:
        _, where, lq_path = resolve(args.benchmark, args.scale, args.root)
        pairs = {key: (lq, gt) for key, lq, gt in load_pairs(where, lq_path)}
    missing = [image for image in args.image if image not in pairs]
    if missing:
        raise SystemExit(f'--image {", ".join(missing)}: not in {where}; it holds {sorted(pairs)[:10]}')
    models = [model_from_spec(spec, args.scale, args.device) for spec in args.model]
    y_channel, border = convention(args.task, args.scale)
    rows, crops = [], []
    for image in args.image:
        lq, gt = pairs[image]
        outputs = [m.restore(lq) for m in models]
        whole = gt if gt is not None else NearestModel(args.scale).restore(lq)  # shown whole, crop marked
        if args.crop:
            x, y, size = parse_crop(args.crop, whole.shape, image)
        else:
            size = min(args.crop_size, *whole.shape[:2])
            x, y = most_different_crop(([] if gt is None else [gt]) + outputs, size)
        if gt is None:
            panels = [(f'{m.name} NIQE {niqe(o, border):.2f}', o) for m, o in zip(models, outputs)]
        else:
            panels = [(f'{m.name} {psnr_ssim(o, gt, y_channel, border)[0]:.2f} dB', o)
                      for m, o in zip(models, outputs)] + [('GT', gt)]
        rows.append(compose(whole, panels, (x, y, size), args.panel))
        crops.append(f'{image} x={x} y={y} size={size}')
    figure = stack_rows(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f'wrote {args.out} ({figure.shape[1]}x{figure.shape[0]}), crop {"; ".join(crops)}')


if __name__ == '__main__':
    main()
