"""`dckd-profile`: what each model costs at inference, side by side, as Markdown and CSV.

Parameters, multiply-adds (PyTorch's FLOP counter) and peak memory of one forward pass, and the
median latency of timed passes after warm-up, batch 1, in float32 and bfloat16, on the CPU and on
CUDA where present. The input is the LR image of a 1280x720 output (efficient-SR papers'
convention; --output-size changes it). Models are given as for dckd-evaluate; without a
checkpoint the network keeps random weights (the cost does not depend on them). An INT8 artifact
of dckd-quantize (--model NAME=FILE.pth or .onnx) gets its latency on the CPU in a column of its
own, and the multiply-adds of its network (a .pth).

Example:
  dckd-profile --scale 4 --model teacher=options/train/swinir/dckd_swinir_x4.yml@network_t \\
      --model student=options/train/swinir/dckd_swinir_x4.yml --out results/profile_swinir_x4
"""
import argparse
import csv
import io
import os

import torch

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd.evaluate.cost import latency_ms, multiply_adds, peak_memory_mib
from dckd.evaluate.models import Int8Model, NetworkModel, model_from_spec
from dckd.evaluate.table import format_parameters, markdown_table


def _size(text):
    width, _, height = text.partition('x')
    return int(width), int(height)


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-profile', description=__doc__.split('\n\n')[0][len('`dckd-profile`: '):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', action='append', required=True,
                        help='NAME=OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT] (as dckd-evaluate). Repeatable.')
    parser.add_argument('--scale', type=int, default=1)
    parser.add_argument('--output-size', type=_size, default=(1280, 720), metavar='WxH',
                        help='output size; the input is WxH / scale (default 1280x720)')
    parser.add_argument('--device', action='append', choices=['cpu', 'cuda'],
                        help='default: the CPU, and CUDA where present')
    parser.add_argument('--precision', action='append', choices=['float32', 'bfloat16'],
                        help='default: both')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=5, help='timed passes; the median is reported')
    parser.add_argument('--out', help='write OUT.md and OUT.csv')
    return parser


def profile(args):
    """[(model name, {column: value})] in table order."""
    width, height = args.output_size
    if width % args.scale or height % args.scale:
        raise SystemExit(f'--output-size {width}x{height} is not a multiple of --scale {args.scale}')
    devices = args.device or ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    precisions = args.precision or ['float32', 'bfloat16']
    models = [model_from_spec(spec, args.scale, 'cpu', weights=False) for spec in args.model]  # all checked first
    rows = []
    for model in models:
        row = {'params': model.parameters}
        if isinstance(model, Int8Model):
            rows.append((model.name, int8_row(model, row, height // args.scale, width // args.scale, args)))
            continue
        for device in devices:
            model.net.to(device)
            images = torch.rand(1, 3, height // args.scale, width // args.scale, device=device)
            if 'MACs (G)' not in row:
                row['MACs (G)'] = multiply_adds(model._forward, images) / 1e9
            for precision in precisions:
                row[f'{device} {precision} (ms)'] = latency_ms(model._forward, images, precision, args.warmup, args.runs)
            row[f'{device} peak (MiB)'] = peak_memory_mib(model._forward, images)
            print(f'{model.name} on {device}: ' + ', '.join(f'{k} {v:.4g}' for k, v in row.items()), flush=True)
        model.net.to('cpu')
        rows.append((model.name, row))
    return rows


def int8_row(model, row, height, width, args):
    """An INT8 artifact's row: the multiply-adds of its network (the same count, done in 8 bits; not
    known for an ONNX file) and its latency on the CPU, where it runs."""
    images = torch.rand(1, 3, height, width)
    if model.network_opt is not None:
        row['MACs (G)'] = multiply_adds(NetworkModel('fp32', model.network_opt, None)._forward, images) / 1e9
    row['cpu int8 (ms)'] = latency_ms(model._forward, images, 'float32', args.warmup, args.runs)
    print(f'{model.name} on cpu: ' + ', '.join(f'{k} {v:.4g}' for k, v in row.items()), flush=True)
    return row


def cell(value):
    return f'{value:.2f}' if isinstance(value, float) else value


def tables(rows, args):
    """(Markdown, CSV) of the profile."""
    columns = list(dict.fromkeys(column for _, row in rows for column in row))  # an INT8 row has columns of its own
    width, height = args.output_size
    cells = [[name, format_parameters(row['params'])] + [cell(row.get(c, '-')) for c in columns[1:]] for name, row in rows]
    note = (f'\nInput {width // args.scale}x{height // args.scale} (output {width}x{height}), batch 1; multiply-adds '
            f"from torch.utils.flop_counter; latency: median of {args.runs} passes after {args.warmup}; peak: the "
            f'tensors one pass creates (weights and input excluded); torch {torch.__version__}\n')
    markdown = markdown_table(['model', 'params'] + columns[1:], cells) + note
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(['model'] + columns)
    writer.writerows([[name] + [row.get(c, '') for c in columns] for name, row in rows])
    return markdown, out.getvalue()


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.out and any(os.path.exists(args.out + ext) for ext in ('.md', '.csv')):
        raise SystemExit(f'{args.out}.md or .csv exists; choose another --out')
    markdown, table_csv = tables(profile(args), args)
    print('\n' + markdown)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + '.md', 'w') as f:
            f.write(markdown)
        with open(args.out + '.csv', 'w') as f:
            f.write(table_csv)


if __name__ == '__main__':
    main()
