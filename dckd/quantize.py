"""`dckd-quantize`: a trained network in 8 bits (post-training quantization), calibrated on the
run's own training inputs, and what the 8 bits cost: PSNR and latency, FP32 against INT8, the same
inputs in the same process.

Examples:
  dckd-quantize --model options/demo/demo_dckd_x4.yml:experiments/demo_dckd_x4/models/net_g_latest.pth \\
      --benchmark Set5=datasets/Set5/GTmod12,datasets/Set5/LRbicx4 --out results/student_x86.int8.pth
  dckd-quantize --model X.yml:net_g.pth --backend onnx --calib-images datasets/DIV2K/LR_x4 --out student.int8.onnx

--model: network_g of an options file with a checkpoint (OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT], as
for dckd-evaluate; EMA weights first). Calibration: --calib N LQ patches drawn (seeded) from the
options file's datasets.train through BasicSR's dataset, random crops and flips as in training;
or --calib-images FOLDER: the first N LR images of a folder (for real-world runs, whose LQ images
are made during training). Backends (dckd_arch/quantized.py):
  x86      torchao's PT2E, X86InductorQuantizer; OUT.pth, run by torch.compile (int8 kernels)
  xnnpack  ExecuTorch's XNNPACKQuantizer (ARM, phones); OUT.pth, and OUT.pte for ExecuTorch (LR sides <= 1024)
  onnx     onnxruntime's static quantization of the ONNX export, QDQ; OUT.onnx
The INT8 artifact is read like a checkpoint (weights only; ONNX) by dckd-evaluate, dckd-compare and
dckd-restore: --model NAME=OUT.pth. The printed table: PSNR/SSIM on each --benchmark (Y channel,
border = scale) for FP32 and INT8, and the latency of one LR image of --latency-size pixels on
this machine: FP32 eager, FP32 compiled, INT8 (median of --repeats after a warm-up, with the
range), ratios to FP32 compiled. Where INT8 is slower, it says so.
"""
import argparse
import os
import random
import statistics
import tempfile

import numpy as np
import torch
import yaml

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from basicsr.data import build_dataset
from basicsr.utils import img2tensor
from dckd.evaluate.benchmarks import load_pairs, resolve
from dckd.evaluate.cost import timings_ms
from dckd.evaluate.metrics import convention
from dckd.evaluate.models import Int8Model, model_at_its_scale, options_path
from dckd.evaluate.table import evaluate, markdown_table
from dckd.export import export
from dckd_arch import quantized
from dckd_arch.padding import Deployable
from dckd_data.image_files import read_images
from dckd_utils.checkpoint import save_atomically

SUFFIX = {'x86': '.pth', 'xnnpack': '.pth', 'onnx': '.onnx'}


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-quantize', description=__doc__.split('\n\n')[0][len('`dckd-quantize`: '):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', required=True, help='OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]')
    parser.add_argument('--backend', choices=quantized.BACKENDS, default='x86')
    parser.add_argument('--per-tensor', action='store_true', help='one scale per weight tensor (default: per channel)')
    parser.add_argument('--calib', type=int, default=32, metavar='N', help='calibration inputs (default 32)')
    parser.add_argument('--calib-images', metavar='FOLDER', help='calibrate on these LR images, not datasets.train')
    parser.add_argument('--seed', type=int, default=0, help='which training patches calibrate')
    parser.add_argument('--benchmark', action='append', default=[],
                        help='NAME prepared under --root by dckd-prepare, or NAME=GT_PATH,LQ_PATH. Repeatable.')
    parser.add_argument('--root', default='datasets', help='where prepared benchmarks live')
    parser.add_argument('--latency-size', type=int, default=128, help='LR side of the timed input (default 128)')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per model (default 10)')
    parser.add_argument('--out', required=True, help='the INT8 artifact: .pth (x86, xnnpack) or .onnx (onnx)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out')
    return parser


def check(args):
    """Every problem of the arguments, found before any work; (FP32 model, scale, options, benchmarks)."""
    if os.path.splitext(args.out)[1] != SUFFIX[args.backend]:
        raise SystemExit(f'--out {args.out}: backend {args.backend} writes a {SUFFIX[args.backend]} file')
    for path in [args.out] + ([pte_path(args.out)] if args.backend == 'xnnpack' else []):
        if os.path.exists(path) and not args.force:
            raise SystemExit(f'{path} exists; pass --force to replace it.')
    if args.calib < 1:
        raise SystemExit('--calib: give at least 1 calibration input')
    if args.calib_images and not os.path.isdir(args.calib_images):
        raise SystemExit(f'--calib-images {args.calib_images}: no such folder')
    try:
        quantized.require(args.backend)
        if args.backend != 'onnx':
            quantized.quantizer(args.backend, per_channel=not args.per_tensor)
        model, scale = model_at_its_scale(args.model)
        benchmarks = [resolve(spec, scale, args.root) for spec in args.benchmark]
    except (quantized.QuantizationError, FileNotFoundError, KeyError, ValueError) as error:
        raise SystemExit(f'dckd-quantize: {error}') from error
    if not hasattr(model, 'net'):
        raise SystemExit(f'--model {args.model}: give OPTIONS.yml:CHECKPOINT (a network in FP32)')
    with open(options_path(args.model)) as f:
        opt = yaml.safe_load(f)
    if not args.calib_images:
        train = (opt.get('datasets') or {}).get('train')
        if train is None:
            raise SystemExit(f'--model {args.model}: its options have no datasets.train to calibrate on; '
                             'give --calib-images FOLDER of LR images')
        for key in ('dataroot_gt', 'dataroot_lq'):
            if key in train and not os.path.exists(train[key]):
                raise SystemExit(f'datasets.train.{key} {train[key]}: not found from {os.getcwd()} (paths are relative to '
                                 'the folder you train in, as for dckd-train): run there, or give --calib-images FOLDER')
    return model, scale, opt, benchmarks


def calibration_inputs(opt, scale, count, seed, folder=None):
    """`count` LR inputs: seeded training patches of datasets.train (random crops and flips, as
    BasicSR's dataset gives them), or the first `count` images of `folder`."""
    if folder:
        images = read_images(folder)
        return [img2tensor(images[key].astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)
                for key in sorted(images)[:count]]
    dataset = build_dataset(dict(opt['datasets']['train'], phase='train', scale=scale))
    random.seed(seed)  # BasicSR's crops and flips draw from `random`
    np.random.seed(seed)
    indices = random.Random(seed).sample(range(len(dataset)), min(count, len(dataset)))
    first = dataset[indices[0]]
    if 'lq' not in first:
        raise SystemExit(f'datasets.train ({opt["datasets"]["train"]["type"]}) gives no LQ images (they are made '
                         'during training): give --calib-images FOLDER of LR images')
    return [first['lq'].unsqueeze(0)] + [dataset[index]['lq'].unsqueeze(0) for index in indices[1:]]


def quantize_pt2e(net, made, inputs, out):
    """Calibrate the prepared graph on `inputs` and write the artifact to `out` (and for xnnpack the
    ExecuTorch program beside it, OUT.pte)."""
    prepared = quantized.prepare(net, made)
    with torch.no_grad():
        for images in inputs:
            prepared(images)
    save_atomically(quantized.artifact(made, prepared, sum(p.numel() for p in net.parameters())), out)
    if made['backend'] == 'xnnpack':
        quantized.write_pte(quantized.convert(prepared), made['window'], pte_path(out))


def pte_path(out):
    return os.path.splitext(out)[0] + '.pte'


def quantize_onnx(net, made, inputs, out):
    """The ONNX export of `net`, quantized by onnxruntime (QDQ, uint8 activations, int8 weights),
    calibrated on `inputs`; its scale and parameter count in the file's metadata."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = iter(inputs)

        def get_next(self):
            images = next(self.left, None)
            return None if images is None else {'lq': images.numpy()}

    with tempfile.TemporaryDirectory() as work:
        exported, fp32, prepared, int8 = (os.path.join(work, name) for name in
                                          ('exported.onnx', 'fp32.onnx', 'prepared.onnx', 'int8.onnx'))
        export(Deployable(net, made['window'], made['scale']).eval(), exported, 'onnx')
        onnx.save(onnx.load(exported), fp32)  # one file: the exporter may keep the weights beside it
        quant_pre_process(fp32, prepared, skip_symbolic_shape=True)  # ONNX's own shape inference suffices here
        quantize_static(prepared, int8, Reader(), quant_format=QuantFormat.QDQ, per_channel=made['per_channel'],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = onnx.load(int8)
        for key, value in {'dckd_scale': made['scale'], 'dckd_parameters': sum(p.numel() for p in net.parameters()),
                           'dckd_backend': 'onnx'}.items():
            model.metadata_props.add(key=key, value=str(value))
        onnx.save(model, out + '.tmp')
        os.replace(out + '.tmp', out)


def latency(forward, size, repeats):
    """(median, fastest, slowest) milliseconds of forward on one random LR image of size x size,
    after two warm-up runs (which compile)."""
    times = timings_ms(forward, torch.rand(1, 3, size, size), warmup=2, runs=repeats)
    return statistics.median(times), min(times), max(times)


def report(fp32, int8, scale, benchmarks, args):
    """The comparison table (Markdown) and the note under it."""
    y_channel, border = convention('sr', scale)
    scores = {name: [evaluate(m, load_pairs(gt, lq), y_channel, border, desc=f'{m.name} on {name}')
                     for m in (fp32, int8)] for name, gt, lq in benchmarks}
    compiled_fp32 = torch.compile(Deployable(fp32.net, fp32.window_size, scale).eval())
    timed = {'FP32, eager': latency(fp32._forward, args.latency_size, args.repeats),
             'FP32, compiled': latency(compiled_fp32, args.latency_size, args.repeats)}
    # xnnpack: its .pte through ExecuTorch's runtime (XNNPACK's kernels, which run on x86 too)
    int8_forward = quantized.Pte(pte_path(args.out)) if args.backend == 'xnnpack' else int8._forward
    timed[f'INT8, {args.backend}'] = latency(int8_forward, args.latency_size, args.repeats)
    reference = timed['FP32, compiled'][0]
    header = ['model'] + [f'{name} PSNR / SSIM' for name in scores] + [
        f'ms per {args.latency_size}x{args.latency_size} (range)', 'x FP32 compiled', 'file']
    rows = []
    for index, label in enumerate(['FP32, eager', 'FP32, compiled', f'INT8, {args.backend}']):
        model_scores = [scores[name][0 if index < 2 else 1] for name in scores]
        median, fastest, slowest = timed[label]
        file = pte_path(args.out) if args.backend == 'xnnpack' else args.out
        size = f'{os.path.getsize(file) / 2**20:.2f} MiB' if index == 2 else ''
        rows.append([label] + [f'{psnr:.2f} / {ssim:.4f}' for psnr, ssim in model_scores] +
                    [f'{median:.1f} ({fastest:.1f}-{slowest:.1f})', f'{reference / median:.2f}', size])
    note = (f'\n{args.backend}, weights per {"tensor" if args.per_tensor else "channel"}, {len(args.inputs)} '
            f'calibration inputs; {torch.get_num_threads()} CPU threads, torch {torch.__version__}; PSNR on the Y '
            f'channel, border {border}; latency: median of {args.repeats}.')
    if args.backend == 'xnnpack':
        note += (f' xnnpack: PSNR of the quantized graph ({args.out}); latency and size of the ExecuTorch program '
                 f'{pte_path(args.out)} run here by ExecuTorch\'s runtime with XNNPACK\'s kernels (a phone\'s ARM '
                 'cores differ).')
    if timed[f'INT8, {args.backend}'][0] > reference:
        note += ' INT8 is slower than FP32 compiled on this machine (a narrow network, or a CPU without int8 ' \
                'instructions): keep FP32 here.'
    return markdown_table(header, rows) + note


def main(argv=None):
    args = build_parser().parse_args(argv)
    fp32, scale, opt, benchmarks = check(args)
    made = quantized.recipe(fp32.network_opt, scale, args.backend, per_channel=not args.per_tensor)
    args.inputs = calibration_inputs(opt, scale, args.calib, args.seed, args.calib_images)
    print(f'calibrating {args.backend} on {len(args.inputs)} inputs', flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        (quantize_onnx if args.backend == 'onnx' else quantize_pt2e)(fp32.net, made, args.inputs, args.out)
        int8 = Int8Model('INT8', args.out)  # what was written, read back as any user reads it
    except quantized.QuantizationError as error:
        raise SystemExit(f'dckd-quantize: {error}') from error
    print(f'wrote {args.out}', flush=True)
    print('\n' + report(fp32, int8, scale, benchmarks, args))


if __name__ == '__main__':
    main()
