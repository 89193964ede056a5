"""Result tables in the paper's layout: one row per model, PSNR / SSIM per data set."""
import csv
import io

from tqdm import tqdm

from .metrics import psnr_ssim


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


def format_parameters(count):
    if not count:
        return '-'
    return f'{count / 1e6:.2f}M' if count >= 1e6 else f'{count / 1e3:.1f}k'


def markdown_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def results_rows(results, datasets, macs=None):
    """results: [(model name, parameter count, {dataset: (psnr, ssim)})] -> table cells; with `macs`
    ({model name: multiply-adds or None}), a column of them."""
    return [[name, format_parameters(params)] + ([f'{macs[name] / 1e9:.1f}' if macs[name] else '-'] if macs else [])
            + [f'{scores[d][0]:.2f} / {scores[d][1]:.4f}' for d in datasets] for name, params, scores in results]


def results_markdown(results, datasets, macs=None):
    header = ['model', 'params'] + (['MACs (G)'] if macs else []) + [f'{d} PSNR / SSIM' for d in datasets]
    return markdown_table(header, results_rows(results, datasets, macs))


def results_csv(results, datasets, macs=None):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(['model', 'params'] + (['macs'] if macs else []) + [f'{d}_{m}' for d in datasets
                                                                         for m in ('psnr', 'ssim')])
    for name, params, scores in results:
        writer.writerow([name, params] + ([macs[name] or ''] if macs else []) + [f'{v:.4f}' for d in datasets
                                                                                for v in scores[d]])
    return out.getvalue()
