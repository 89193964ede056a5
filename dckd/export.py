"""`dckd-export`: a trained network as an ONNX file (dynamic height and width) or a torch.export
program, checked against PyTorch on an input of another size.

Example:
  dckd-export --model options/test/swinir/test_swinir_x4.yml --out results/swinir_x4_student.onnx

The network is `network_g` of the options file (or @NETWORK_KEY) with the checkpoint it names or
:CHECKPOINT, EMA weights (`params_ema`) first. Windowed networks (SwinIR) carry their padding to
whole windows inside the graph, so any input of at least one window exports and runs. The ONNX
file is run with onnxruntime when it is installed (pip install dckd[export]) and compared with
PyTorch: the largest difference is printed, and more than 1e-4 is an error. Inputs of 16 to 8192
pixels a side are accepted.
"""
import argparse
import importlib.util
import os

import torch

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from dckd.evaluate.models import model_at_its_scale
from dckd_arch.padding import MAX_SIDE, MIN_SIDE, Deployable, example_input

TOLERANCE = 1e-4


def export(deployable, path, kind):
    """Write `deployable` as `kind` ('onnx' or 'exported') with dynamic height and width."""
    window = deployable.window
    example = example_input(window)
    height = torch.export.Dim('height', min=max(window or 0, MIN_SIDE), max=MAX_SIDE)
    width = torch.export.Dim('width', min=max(window or 0, MIN_SIDE), max=MAX_SIDE)
    dynamic = {'images': {2: height, 3: width}}
    if kind == 'onnx':
        if importlib.util.find_spec('onnxscript') is None:  # torch's ONNX exporter needs it
            raise SystemExit('ONNX export needs onnx and onnxscript: pip install dckd[export] (or onnx onnxscript '
                             'onnxruntime)')
        torch.onnx.export(deployable, (example, ), path, input_names=['lq'], output_names=['output'],
                          dynamic_shapes=dynamic, dynamo=True, verbose=False)
    else:  # sizes left to export to bound: SwinIR's shape tests make named ranges fail its checks
        flexible = {'images': {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}}
        torch.export.save(torch.export.export(deployable, (example, ), dynamic_shapes=flexible), path)


def largest_difference(deployable, path, kind, size=(37, 29)):
    """Max |exported - PyTorch| on a random input of `size` (not the example's); None for ONNX
    without onnxruntime."""
    images = torch.rand(1, 3, *size)
    with torch.no_grad():
        expected = deployable(images)
    if kind == 'onnx':
        try:
            import onnxruntime
        except ImportError:
            return None
        session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        got = torch.from_numpy(session.run(None, {'lq': images.numpy()})[0])
    else:
        with torch.no_grad():
            got = torch.export.load(path).module()(images)
    if got.shape != expected.shape:
        raise RuntimeError(f'{path} gave {tuple(got.shape)} for an input of {size}, PyTorch {tuple(expected.shape)}')
    return (got - expected).abs().max().item()


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-export', description=__doc__.split('\n\n')[0][len('`dckd-export`: '):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', required=True, help='OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]')
    parser.add_argument('--out', required=True, help='file to write: .onnx, or .pt2 for a torch.export program')
    parser.add_argument('--force', action='store_true', help='replace an existing file')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    kind = {'.onnx': 'onnx', '.pt2': 'exported'}.get(os.path.splitext(args.out)[1])
    if kind is None:
        raise SystemExit(f'--out {args.out}: end it in .onnx (ONNX) or .pt2 (torch.export program)')
    if os.path.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; pass --force to replace it.')
    try:
        model, scale = model_at_its_scale(args.model)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    deployable = Deployable(model.net, model.window_size, scale).eval()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    export(deployable, args.out, kind)
    difference = largest_difference(deployable, args.out, kind)
    if difference is None:
        print(f'wrote {args.out} (not checked: pip install onnxruntime to compare it with PyTorch)')
        return
    if difference > TOLERANCE:
        raise SystemExit(f'{args.out} differs from PyTorch by {difference:.2e} (more than {TOLERANCE}) on a 37x29 input')
    print(f'wrote {args.out}; largest difference from PyTorch on a 37x29 input: {difference:.1e}')


if __name__ == '__main__':
    main()
