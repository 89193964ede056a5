"""Result tables in the paper's layout: one row per model, PSNR / SSIM per data set (NIQE per set of
photographs without ground truth)."""
import csv
import io

from tqdm import tqdm

from .metrics import niqe, psnr_ssim

FORMATS = {'psnr': '.2f', 'ssim': '.4f', 'niqe': '.3f'}


def evaluate(model, pairs, y_channel, border, desc=None):
    """Mean PSNR and SSIM of `model` over (key, lq, gt) pairs, with a progress bar per image."""
    psnrs, ssims = [], []
    for key, lq, gt in tqdm(pairs, unit='image', desc=desc, leave=False):
        output = model.restore(lq)
        if output.shape != gt.shape:
            raise ValueError(f'{model.name} turned {key} {lq.shape[:2]} into {output.shape[:2]}, GT is {gt.shape[:2]}: '
                             'wrong scale for this benchmark?')
        psnr, ssim = psnr_ssim(output, gt, y_channel, border)
        psnrs.append(psnr)
        ssims.append(ssim)
    return sum(psnrs) / len(psnrs), sum(ssims) / len(ssims)


def evaluate_without_reference(model, photos, border, desc=None):
    """(mean NIQE,) of `model`'s outputs over {key: lq} photographs."""
    scores = [niqe(model.restore(lq), border) for lq in tqdm(photos.values(), unit='image', desc=desc, leave=False)]
    return sum(scores) / len(scores),


def format_parameters(count):
    if not count:
        return '-'
    return f'{count / 1e6:.2f}M' if count >= 1e6 else f'{count / 1e3:.1f}k'


def markdown_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def results_rows(results, columns, macs=None):
    """results: [(model name, parameter count, {data set: scores})] and columns: [(data set, its
    metrics, e.g. ('psnr', 'ssim'))] -> table cells; with `macs` ({model name: multiply-adds or
    None}), a column of them."""
    return [[name, format_parameters(params)] + ([f'{macs[name] / 1e9:.1f}' if macs[name] else '-'] if macs else [])
            + [' / '.join(f'{v:{FORMATS[m]}}' for m, v in zip(metrics, scores[d])) for d, metrics in columns]
            for name, params, scores in results]


def results_markdown(results, columns, macs=None):
    header = ['model', 'params'] + (['MACs (G)'] if macs else []) + [f'{d} {" / ".join(m.upper() for m in metrics)}'
                                                                     for d, metrics in columns]
    return markdown_table(header, results_rows(results, columns, macs))


def results_csv(results, columns, macs=None):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(['model', 'params'] + (['macs'] if macs else []) + [f'{d}_{m}' for d, metrics in columns
                                                                         for m in metrics])
    for name, params, scores in results:
        writer.writerow([name, params] + ([macs[name] or ''] if macs else []) + [f'{v:.4f}' for d, _ in columns
                                                                                for v in scores[d]])
    return out.getvalue()
