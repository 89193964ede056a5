"""Time (and, on CUDA, peak memory) of one training iteration per variant, all in one run.

Variants: scratch (L1), Logits KD, DCKD (fused path), DCKD with the reference path, DCKD + LCR.
Ratios are to Logits KD measured in the same run. Presets: `spec` is the SwinIR x4 pair of the
spec (batch 16, LR 48x48, N = 5, published VQGAN size; meant for a GPU); `cpu` is a shrunk
setting that finishes in minutes on a laptop CPU. Networks have random weights.

    python benchmarks/dckd_step.py --preset cpu
    python benchmarks/dckd_step.py --preset spec --device cuda --out benchmarks/results_h100.md
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dckd.registration import register_all  # noqa: E402

SWINIR = dict(type='SwinIR', upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1., mlp_ratio=2,
              upsampler='pixelshuffle', resi_connection='1conv')
PRESETS = {
    'spec': dict(student=dict(SWINIR, depths=[6] * 4, embed_dim=60, num_heads=[6] * 4),
                 teacher=dict(SWINIR, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6),
                 vqgan=dict(type='VQGANEncoder'), batch=16, lq_size=48, negatives=5),
    'cpu': dict(student=dict(SWINIR, img_size=16, depths=[2, 2], embed_dim=24, num_heads=[2, 2]),
                teacher=dict(SWINIR, img_size=16, depths=[2, 2, 2], embed_dim=48, num_heads=[2, 2, 2]),
                vqgan=dict(type='VQGANEncoder', ch=32, num_res_blocks=1, z_channels=64, embed_dim=64, n_embed=256),
                batch=4, lq_size=16, negatives=5),
}
TERMS = {
    'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
    'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
    'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001},
    'lcr_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
}
VARIANTS = {
    'scratch': (),
    'Logits KD': ('kd_opt', ),
    'DCKD': ('kd_opt', 'contrastive_opt', 'distribution_opt'),
    'DCKD, reference path': ('kd_opt', 'contrastive_opt', 'distribution_opt'),
    'DCKD + LCR': ('kd_opt', 'contrastive_opt', 'distribution_opt', 'lcr_opt'),
}


def build_model(preset, terms, device, folder):
    from basicsr.archs import build_network
    from dckd_models import DCKDModel

    paths = {}
    for key, net_opt in (('t', preset['teacher']), ('vqgan', preset['vqgan'])):
        paths[key] = os.path.join(folder, f'{key}.pth')
        if not os.path.exists(paths[key]):
            torch.save({'params': build_network(net_opt).state_dict()}, paths[key])
    opt = {
        'name': 'benchmark', 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1, 'manual_seed': 0,
        'num_gpu': 1 if device == 'cuda' else 0, 'scale': 4,
        'network_g': preset['student'], 'network_t': preset['teacher'], 'network_vqgan': preset['vqgan'],
        'datasets': {'train': {'gt_size': preset['lq_size'] * 4}},
        'path': {'pretrain_network_g': None, 'resume_state': None, 'pretrain_network_t': paths['t'],
                 'pretrain_network_vqgan': paths['vqgan']},
        'train': {'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'negatives': {'num': preset['negatives']}, **{t: dict(TERMS[t]) for t in terms}},
    }
    return DCKDModel(opt)


def measure(model, preset, device, iterations, warmup):
    size, batch = preset['lq_size'], preset['batch']
    data = {'lq': torch.rand(batch, 3, size, size), 'gt': torch.rand(batch, 3, size * 4, size * 4)}
    times = []
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + iterations):
        model.feed_data(data)
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.optimize_parameters(step + 1)
        if device == 'cuda':
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else None
    return statistics.median(times) * 1000, peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--iterations', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--out', help='also write the table to this Markdown file (never overwritten)')
    args = parser.parse_args(argv)
    if args.out and os.path.exists(args.out):
        raise SystemExit(f'{args.out} exists; choose another --out')
    register_all()
    from dckd_models.reference_step import reference_feature_losses

    torch.backends.cudnn.benchmark = True  # as BasicSR's train.py sets it
    preset, rows = PRESETS[args.preset], []
    with tempfile.TemporaryDirectory() as folder:
        for name, terms in VARIANTS.items():
            model = build_model(preset, terms, args.device, folder)
            if 'reference' in name:
                model.feature_losses = lambda *a, model=model: reference_feature_losses(model, *a)
            milliseconds, peak = measure(model, preset, args.device, args.iterations, args.warmup)
            rows.append((name, milliseconds, peak))
            print(f'{name}: {milliseconds:.1f} ms/iteration' + (f', peak {peak:.2f} GiB' if peak else ''), flush=True)
            del model
            if args.device == 'cuda':
                torch.cuda.empty_cache()
    logits_ms, logits_peak = rows[1][1], rows[1][2]
    lines = ['| variant | ms / iteration | x Logits KD | peak GiB | x Logits KD |', '|---|---|---|---|---|']
    for name, ms, peak in rows:
        memory = f'{peak:.2f} | {peak / logits_peak:.2f}' if peak else '- | -'
        lines.append(f'| {name} | {ms:.1f} | {ms / logits_ms:.2f} | {memory} |')
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    header = (f'preset {args.preset}, {device_name}, torch {torch.__version__}, float32, median of '
              f'{args.iterations} iterations after {args.warmup} warm-up')
    table = header + '\n\n' + '\n'.join(lines) + '\n'
    print('\n' + table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)


if __name__ == '__main__':
    main()
