"""`dckd-curves`: validation PSNR (or any logged metric) against iteration for several BasicSR
experiment folders, as one PNG, read from tensorboard events when the run kept them
(`<root>/tb_logger/<name>`), else from the experiment's train_*.log files. With `--losses`, one
panel per experiment below it plots that run's logged loss terms (`l_*`, log scale)."""
import argparse
import glob
import os
import re

import cv2
import numpy as np

from .drawing import BLACK, GRAY, PALETTE, padded_to_width, put_text, text_width

ITER = re.compile(r'iter:\s*([\d,]+),')
VALIDATION = re.compile(r'Validation (\S+)')
METRIC = re.compile(r'# (\w+): ([-\d.]+)')
LOSS = re.compile(r'\b(l_\w+): ([-+\d.eE]+|nan|inf)')


def _log_lines(experiment):
    """Every line of the experiment's train_*.log files, oldest log first (a resumed run adds one)."""
    for log in sorted(glob.glob(os.path.join(experiment, 'train_*.log'))):
        with open(log) as f:
            yield from f


def curve_from_logs(experiment, dataset, metric):
    """{iteration: value}. A validation block is attributed to the last logged training iteration
    (BasicSR validates right after logging when val_freq is a multiple of print_freq)."""
    points, last_iter, current = {}, 0, None
    for line in _log_lines(experiment):
        if (match := ITER.search(line)):
            last_iter = int(match.group(1).replace(',', ''))
        elif (match := VALIDATION.search(line)):
            current = match.group(1)
        elif current and (match := METRIC.search(line)):
            if (dataset is None or current == dataset) and match.group(1) == metric:
                points[last_iter] = float(match.group(2))
    return points


def losses_from_logs(experiment):
    """{term: {iteration: value}} from the training lines (`iter: N, ...] l_pix: 1.2e-02 ...`)."""
    terms = {}
    for line in _log_lines(experiment):
        if (match := ITER.search(line)):
            iteration = int(match.group(1).replace(',', ''))
            for term, value in LOSS.findall(line[match.end():]):
                terms.setdefault(term, {})[iteration] = float(value)
    return terms


def _scalars(event_folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(event_folder)
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()['scalars']}


def curve_from_events(event_folder, dataset, metric):
    scalars = _scalars(event_folder)
    tags = [t for t in scalars if t.startswith('metrics/') and t.endswith(f'/{metric}')]
    tags = [t for t in tags if dataset is None or t == f'metrics/{dataset}/{metric}']
    return scalars[tags[0]] if tags else {}


def losses_from_events(event_folder):
    """BasicSR logs each loss as the scalar `losses/<name>`."""
    return {tag.split('/', 1)[1]: points for tag, points in _scalars(event_folder).items()
            if tag.startswith('losses/l_')}


def _event_folder(experiment):
    name = os.path.basename(os.path.normpath(experiment))
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(experiment))), 'tb_logger', name)
    return folder if os.path.isdir(folder) else None


def load_curve(experiment, dataset, metric):
    events = _event_folder(experiment)
    points = curve_from_events(events, dataset, metric) if events else {}
    return points or curve_from_logs(experiment, dataset, metric)


def load_losses(experiment):
    events = _event_folder(experiment)
    return (losses_from_events(events) if events else {}) or losses_from_logs(experiment)


def nice_ticks(low, high, count=5):
    return np.linspace(low, high, count)


def plot(curves, metric, size=(900, 520), log_y=False):
    """curves: {label: {iteration: value}} -> BGR image with axes, ticks and a legend. With `log_y`
    (every value positive), the vertical axis is logarithmic."""
    if log_y:
        curves = {label: {x: float(np.log10(y)) for x, y in points.items()} for label, points in curves.items()}
    width, height = size
    left, right, top, bottom = 70, 20, 34, 50
    img = np.full((height, width, 3), 255, np.uint8)
    xs = [x for c in curves.values() for x in c]
    ys = [y for c in curves.values() for y in c.values()]
    x_max = max(xs) or 1
    y_low, y_high = min(ys), max(ys)
    pad = (y_high - y_low) * 0.05 or 0.5
    y_low, y_high = y_low - pad, y_high + pad

    def to_pixel(x, y):
        return (int(left + x / x_max * (width - left - right)),
                int(top + (y_high - y) / (y_high - y_low) * (height - top - bottom)))

    for value in nice_ticks(y_low, y_high):
        _, py = to_pixel(0, value)
        cv2.line(img, (left, py), (width - right, py), (235, 235, 235), 1)
        tick = f'{10 ** value:.2g}' if log_y else f'{value:.2f}'
        put_text(img, tick, (left - 8 - text_width(tick, 0.4), py + 4), 0.4)
    for value in nice_ticks(0, x_max):
        px, _ = to_pixel(value, y_low)
        put_text(img, f'{int(value):,}', (px - text_width(f'{int(value):,}', 0.4) // 2, height - bottom + 18), 0.4)
    cv2.rectangle(img, (left, top), (width - right, height - bottom), GRAY, 1)
    put_text(img, 'iteration', ((width - text_width('iteration')) // 2, height - 8))
    put_text(img, metric, (8, 18))
    for index, (label, points) in enumerate(curves.items()):
        color = PALETTE[index % len(PALETTE)]
        line = np.array([to_pixel(x, points[x]) for x in sorted(points)], np.int32)
        cv2.polylines(img, [line], False, color, 2, cv2.LINE_AA)
        for point in line:
            cv2.circle(img, tuple(int(v) for v in point), 3, color, -1, cv2.LINE_AA)
        legend_y = top + 20 + 20 * index
        cv2.line(img, (left + 12, legend_y - 4), (left + 36, legend_y - 4), color, 2)
        put_text(img, label, (left + 42, legend_y), 0.45, BLACK)
    return img


def loss_panels(losses, width, height=300):
    """One panel per run of its loss terms, side by side: {label: {term: {iteration: value}}}."""
    panel_width = width // len(losses)
    panels = []
    for label, terms in losses.items():
        positive = all(v > 0 for points in terms.values() for v in points.values())
        panels.append(plot(terms, f'{label}: losses{" (log)" if positive else ""}', (panel_width, height), positive))
    return padded_to_width(np.concatenate(panels, axis=1), width)


def labelled_folder(argument):
    """`LABEL=FOLDER` or `FOLDER` (labelled by its name) -> (label, folder)."""
    label, sep, folder = argument.partition('=')
    if sep and not os.path.isdir(argument):
        return label, folder
    return os.path.basename(os.path.normpath(argument)), argument


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-curves', description=__doc__.split('\n')[0][len('`dckd-curves`: '):])
    parser.add_argument('experiments', nargs='+',
                        help='BasicSR experiment folders (experiments/<name>), each optionally as LABEL=FOLDER')
    parser.add_argument('--metric', default='psnr')
    parser.add_argument('--dataset', help='validation set name (default: the first one logged)')
    parser.add_argument('--losses', action='store_true', help="add a panel of each run's loss terms below")
    parser.add_argument('--out', required=True, help='PNG to write (never overwritten)')
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        raise SystemExit(f'{args.out} exists; choose another --out')
    curves, losses = {}, {}
    for label, experiment in map(labelled_folder, args.experiments):
        points = load_curve(experiment, args.dataset, args.metric)
        if not points:
            raise SystemExit(f'no validation {args.metric} found for {experiment} (tb_logger events or train_*.log)')
        curves[label] = points
        if args.losses:
            losses[label] = load_losses(experiment)
            if not losses[label]:
                raise SystemExit(f'no loss terms (l_*) logged for {experiment} (tb_logger events or train_*.log)')
    figure = plot(curves, args.metric)
    if args.losses:
        figure = np.concatenate([figure, loss_panels(losses, figure.shape[1])], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f'wrote {args.out}: ' + ', '.join(f'{k} ({len(v)} points)' for k, v in curves.items()))


if __name__ == '__main__':
    main()
