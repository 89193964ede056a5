"""Time and peak memory of one training iteration per variant, all in one run.

Rows: scratch (L1), Logits KD, FAKD, DUKD, DCKD, DCKD + LCR and DCKD* in float32 and in bfloat16 mode
(`train.precision`), DCKD through the straightforward reference path (float32), and with
`--ablations` DCKD with each cost option changed from its default. Ratios are to Logits KD of
the same precision. Each row runs in a fresh process (forked, benchmarks/forked.py), so one row's
allocations cannot inflate another's peak. Peak memory is that of live tensors over the timed iterations (see PeakMemory).

`--fit-memory 24` (CUDA) also finds, per row, the largest batch that runs under a 24 GiB cap.
Presets: `spec` is the SwinIR x4 pair of the spec (batch 16, LR 48x48, N = 5, published VQGAN
size; meant for a GPU); `cpu` is a shrunk setting that finishes in minutes on a laptop CPU.
Networks have random weights.

    python benchmarks/dckd_step.py --preset cpu
    python benchmarks/dckd_step.py --preset spec --ablations --fit-memory 24 --out benchmarks/h100.md
"""
import argparse
import ctypes
import os
import re
import statistics
import sys
import tempfile
import time

import torch

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dckd_models  # noqa: E402,F401  (registers dckd's archs, losses and models in BasicSR's registries)
import forked  # noqa: E402

SWINIR = dict(type='SwinIR', upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1., mlp_ratio=2,
              upsampler='pixelshuffle', resi_connection='1conv')
PRESETS = {
    'spec': dict(student=dict(SWINIR, depths=[6] * 4, embed_dim=60, num_heads=[6] * 4),
                 teacher=dict(SWINIR, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6),
                 vqgan=dict(type='VQGANEncoder'), batch=16, lq_size=48, negatives=5,
                 taps=(['conv_first', 'layers.1', 'layers.3', 'conv_after_body'],
                       ['conv_first', 'layers.2', 'layers.5', 'conv_after_body']),
                 hint_taps=(['layers.1', 'layers.3'], ['layers.2', 'layers.5'])),  # as fitnet_swinir_x4.yml
    'cpu': dict(student=dict(SWINIR, img_size=16, depths=[2, 2], embed_dim=24, num_heads=[2, 2]),
                teacher=dict(SWINIR, img_size=16, depths=[2, 2, 2], embed_dim=48, num_heads=[2, 2, 2]),
                vqgan=dict(type='VQGANEncoder', ch=32, num_res_blocks=1, z_channels=64, embed_dim=64, n_embed=256),
                batch=4, lq_size=16, negatives=5, taps=(['conv_first', 'layers.1'], ['conv_first', 'layers.2']),
                hint_taps=(['layers.1'], ['layers.2'])),
}
TERMS = {
    'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
    'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
    'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001},
    'lcr_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
    'feature_opt': {'type': 'L1Loss', 'loss_weight': 10.0},  # with the preset's taps
    'hint_opt': {'type': 'MSELoss', 'loss_weight': 1.0},  # with the preset's hint_taps
    'upcycling_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 1, 'zoom_out': False, 'prob': 0.3},
}
DCKD_TERMS = ('kd_opt', 'contrastive_opt', 'distribution_opt')
BASE_ROWS = {'scratch': (), 'Logits KD': ('kd_opt', ), 'FAKD': ('kd_opt', 'feature_opt'),
             'FitNets': ('kd_opt', 'hint_opt'), 'DUKD': ('kd_opt', 'upcycling_opt'), 'DCKD': DCKD_TERMS, 'DCKD + LCR': DCKD_TERMS + ('lcr_opt', ),
             'DCKD*': DCKD_TERMS + ('lcr_opt', 'upcycling_opt')}
ABLATIONS = {  # row name suffix -> (train options, top-level options)
    'VQGAN activations kept': ({'vqgan_recompute': False}, {}),
    'frozen nets compiled': ({'compile_frozen': True}, {}),
    'fused attention': ({}, {'fused_attention': True}),
    'negatives in one pass': ({'frozen_chunk': 10**6}, {}),
}


def rows_to_run(precisions, ablations, base_rows=None):
    """[(name, spec)] in table order; spec is what one child process measures. `base_rows`: names of
    BASE_ROWS to run (default all)."""
    rows = []
    for precision in precisions:
        for name, terms in BASE_ROWS.items():
            if base_rows and name not in base_rows:
                continue
            rows.append((f'{name}, {precision}', dict(base=name, terms=terms, precision=precision)))
            if name == 'DCKD' and precision == 'float32':
                rows.append(('DCKD, reference path, float32', dict(base=name, terms=terms, precision=precision,
                                                                   reference=True)))
            if name == 'DCKD' and ablations:
                for suffix, (train, top) in ABLATIONS.items():
                    rows.append((f'DCKD, {suffix}, {precision}', dict(base=name, terms=terms, precision=precision,
                                                                     train=train, top=top)))
    return rows


def write_checkpoints(preset, folder):
    """Random teacher and VQGAN checkpoints, written once by the parent so no row pays for them."""
    from basicsr.archs import build_network

    for key in ('teacher', 'vqgan'):
        torch.save({'params': build_network(preset[key]).state_dict()}, os.path.join(folder, f'{key}.pth'))


def build_model(preset, spec, device, folder):
    from dckd_models import DCKDModel
    from dckd_models.reference_step import reference_feature_losses
    from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD

    paths = {key: os.path.join(folder, f'{key}.pth') for key in ('teacher', 'vqgan')}
    terms = {t: dict(TERMS[t]) for t in spec['terms']}
    if 'feature_opt' in terms:
        terms['feature_opt'].update(student_taps=preset['taps'][0], teacher_taps=preset['taps'][1])
    if 'hint_opt' in terms:
        terms['hint_opt'].update(student_taps=preset['hint_taps'][0], teacher_taps=preset['hint_taps'][1])
    opt = {
        'name': 'benchmark', 'model_type': 'DCKDModel', 'logger': {'save_checkpoint_freq': 10**6}, 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1, 'manual_seed': 0,
        'num_gpu': 1 if device == 'cuda' else 0, 'scale': 4,
        'network_g': preset['student'], 'network_t': preset['teacher'], 'network_vqgan': preset['vqgan'],
        'datasets': {'train': {'name': 'random', 'type': 'PairedImageDataset', 'dataroot_gt': '-', 'dataroot_lq': '-',
                               'io_backend': {'type': 'disk'}, 'gt_size': preset['lq_size'] * 4, 'use_hflip': True,
                               'use_rot': True, 'batch_size_per_gpu': preset['batch'], 'num_worker_per_gpu': 0}},
        'path': {'pretrain_network_g': None, 'resume_state': None, 'pretrain_network_t': paths['teacher'],
                 'pretrain_network_vqgan': paths['vqgan']},
        'train': {'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5}, 'total_iter': 10**6,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'precision': spec['precision'],
                  'negatives': {'num': preset['negatives']}, **terms,
                  **spec.get('train', {})},
        **spec.get('top', {}),
    }
    model = DCKDModel(opt)
    if spec.get('reference'):
        term = model.term(DynamicContrastiveKD)
        term.feature_losses = lambda *a: reference_feature_losses(term, *a)
    return model


class PeakMemory:
    """Peak bytes of live tensors over the timed iterations.

    CUDA: the allocator's own counter. CPU: the tensors that persist between iterations (weights,
    gradients, optimizer and EMA state: summed exactly) plus the kernel's peak resident set
    (VmHWM, reset through /proc/self/clear_refs) above the resident set at the start, taken after
    the warm-up iterations so code pages and thread pools are already in. On CPU the peak is
    measured in a process of its own in which glibc returns every block of 64 KiB or more to the
    kernel on free (return_freed_memory), so the resident set follows the live tensors (that
    process's times are not used).
    """

    def __init__(self, device):
        self.device = device

    def start(self, model):
        if self.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            return
        self.persistent = persistent_bytes(model)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        self.base = self._status('VmRSS')

    def peak_mib(self):
        if self.device == 'cuda':
            return torch.cuda.max_memory_allocated() / 2**20
        return (self.persistent + self._status('VmHWM') - self.base) / 2**20

    @staticmethod
    def _status(field):
        with open('/proc/self/status') as f:
            return int(re.search(rf'{field}:\s+(\d+) kB', f.read()).group(1)) * 1024


def return_freed_memory():
    """What MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=0 in its environment do to a process
    (glibc), for this running one: blocks of 64 KiB or more are mapped on their own and unmapped on
    free, the heap's free top is trimmed on every free, and what is free now is given back."""
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    if not (libc.mallopt(m_mmap_threshold, 65536) and libc.mallopt(m_trim_threshold, 0)):
        raise RuntimeError('mallopt refused the thresholds: peak memory on CPU needs glibc')
    libc.malloc_trim(0)


def persistent_bytes(model):
    """Bytes of every network's parameters, buffers and gradients, and the optimizers' state."""
    tensors = {}
    for net in vars(model).values():
        if isinstance(net, torch.nn.Module):
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            for tensor in [*net.parameters(), *net.buffers(), *grads]:
                tensors[tensor.data_ptr()] = tensor.nbytes
    for optimizer in model.optimizers:
        for state in optimizer.state.values():
            tensors.update({t.data_ptr(): t.nbytes for t in state.values() if isinstance(t, torch.Tensor)})
    return sum(tensors.values())


def time_iterations(model, preset, device, batch, iterations, warmup, memory=None):
    size = preset['lq_size']
    data = {'lq': torch.rand(batch, 3, size, size), 'gt': torch.rand(batch, 3, size * 4, size * 4)}
    times = []
    for step in range(warmup + iterations):
        if step == warmup and memory is not None:
            memory.start(model)
        model.feed_data(data)
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.optimize_parameters(step + 1)
        if device == 'cuda':
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


STAGES = ('student forward', 'teacher forward', 'history model on the negatives', 'VQGAN passes and DCR/DMM losses',
          'backward', 'optimizer step', 'EMA update')


def profile_stages(model, preset, device, batch, iterations):
    """Markdown table: milliseconds per iteration of each stage of the step (STAGES), on the device
    and on the CPU, from torch.profiler over `iterations` iterations after two warm-up ones."""
    from unittest import mock

    from torch.profiler import ProfilerActivity, profile, record_function
    from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD

    def staged(name, function):
        def run(*args, **kwargs):
            with record_function(name):
                return function(*args, **kwargs)
        return run

    run_network = model.run_network
    model.run_network = lambda net, *args: staged('student forward' if net is model.net_g else 'teacher forward',
                                                  run_network)(net, *args)
    term = model.term(DynamicContrastiveKD)
    if term is not None:
        term.history_negatives = staged(STAGES[2], term.history_negatives)
        term.feature_losses = staged(STAGES[3], term.feature_losses)
    model.optimizer_g.step = staged('optimizer step', model.optimizer_g.step)
    model.model_ema = staged('EMA update', model.model_ema)
    time_iterations(model, preset, device, batch, iterations=1, warmup=1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    with mock.patch.object(torch.Tensor, 'backward', staged('backward', torch.Tensor.backward)), \
            profile(activities=activities) as profiler:
        time_iterations(model, preset, device, batch, iterations=iterations, warmup=0)
    events = {event.key: event for event in profiler.key_averages() if event.key in STAGES}
    lines = ['| stage | device ms / iteration | CPU ms / iteration |', '|---|---|---|']
    for stage in STAGES:
        if stage in events:
            event = events[stage]
            device_ms = f'{event.device_time_total / 1000 / iterations:.1f}' if device == 'cuda' else '-'
            lines.append(f'| {stage} | {device_ms} | {event.cpu_time_total / 1000 / iterations:.1f} |')
    return '\n'.join(lines) + '\n'


def largest_fitting(fits, start):
    """The largest n >= 1 with fits(n), for fits true up to some n and false above: doubling
    from `start`, then bisection; 0 when even 1 does not fit."""
    low, high, n = 0, None, max(1, start)  # fits(low) holds (0 trivially), fits(high) fails
    while high is None:
        if fits(n):
            low, n = n, n * 2
        else:
            high = n
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def fits_in(preset, spec, folder, gib):
    """fits(batch): two iterations run without running out of a `gib` GiB cap (CUDA)."""

    def fits(batch):
        import gc
        model = None
        try:
            model = build_model(preset, spec, 'cuda', folder)
            time_iterations(model, preset, 'cuda', batch, iterations=1, warmup=1)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del model
            gc.collect()
            torch.cuda.empty_cache()

    torch.cuda.set_per_process_memory_fraction(gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    return fits


def measure_row(args, spec, folder):
    """One row, in this (fresh) process: {'ms', 'peak_mib', 'fit_batch'}."""
    torch.backends.cudnn.benchmark = True  # as BasicSR's train.py sets it
    preset = dict(PRESETS[args.preset], batch=args.batch or PRESETS[args.preset]['batch'])
    model = build_model(preset, spec, args.device, folder)
    if spec.get('profile'):
        return {'profile': profile_stages(model, preset, args.device, preset['batch'], args.iterations)}
    memory = PeakMemory(args.device)
    ms = time_iterations(model, preset, args.device, preset['batch'], args.iterations, args.warmup, memory)
    result = {'ms': ms, 'peak_mib': memory.peak_mib(), 'fit_batch': None}
    del model
    if args.fit_memory and spec['base'] in (args.fit_rows or BASE_ROWS):
        result['fit_batch'] = largest_fitting(fits_in(preset, spec, folder, args.fit_memory), preset['batch'])
    return result


def measure_in_children(args, spec, folder):
    """One row, in a fresh process. On CPU the peak comes from a second one that gives freed memory
    back (return_freed_memory), which slows allocation down too much to time with."""
    result = forked.call(measure_row, args, spec, folder)
    if args.device == 'cpu':
        result['peak_mib'] = forked.call(measure_peak_returning_freed_memory, args, spec, folder)
    return result


def measure_peak_returning_freed_memory(args, spec, folder):
    return_freed_memory()
    return measure_row(args, spec, folder)['peak_mib']


def markdown(rows, results, args):
    fit = ' | batch in ' + f'{args.fit_memory:g} GiB' if args.fit_memory else ''
    lines = [f'| variant | ms / iteration | x Logits KD | peak MiB | x Logits KD{fit} |',
             '|---|---|---|---|---' + ('|---' if args.fit_memory else '') + '|']
    for (name, spec), result in zip(rows, results):
        unit = results[[n for n, _ in rows].index(f'Logits KD, {spec["precision"]}')]
        cells = [name, f'{result["ms"]:.1f}', f'{result["ms"] / unit["ms"]:.2f}', f'{result["peak_mib"]:.0f}',
                 f'{result["peak_mib"] / unit["peak_mib"]:.2f}']
        if args.fit_memory:
            cells.append('-' if result['fit_batch'] is None else str(result['fit_batch']))
        lines.append('| ' + ' | '.join(cells) + ' |')
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    batch = args.batch or PRESETS[args.preset]['batch']
    header = (f'preset {args.preset} (batch {batch}), {device}, torch {torch.__version__}, median of {args.iterations} '
              f'iterations after {args.warmup} warm-up (fastest of {args.repeats} interleaved runs), '
              f'{time.strftime("%Y-%m-%d")}')
    return header + '\n\n' + '\n'.join(lines) + '\n'


def profiled_stages(args, rows, results, folder):
    """With --profile-above: a stage table for each DCKD row above the ratio (Markdown, or '')."""
    if args.profile_above is None:
        return ''
    text = ''
    for (name, spec), result in zip(rows, results):
        unit = results[[n for n, _ in rows].index(f'Logits KD, {spec["precision"]}')]
        ratios = result['ms'] / unit['ms'], result['peak_mib'] / unit['peak_mib']
        if 'DCKD' in spec['base'] and max(ratios) > args.profile_above:
            stages = forked.call(measure_row, args, dict(spec, profile=True), folder)['profile']
            text += (f'\n### {name}: {ratios[0]:.2f}x Logits KD in time, {ratios[1]:.2f}x in memory; stages '
                     f'(torch.profiler)\n\n{stages}')
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cuda', 'cpu'])
    parser.add_argument('--batch', type=int, help="the preset's batch size unless given")
    parser.add_argument('--iterations', type=int, default=10, help='timed iterations a row (and profiled ones)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--precisions', nargs='+', default=['float32', 'bfloat16'], choices=['float32', 'bfloat16'])
    parser.add_argument('--ablations', action='store_true', help='add DCKD rows with each cost option changed')
    parser.add_argument('--repeats', type=int, default=1,
                        help='measure every row this many times, interleaved, and keep its fastest median')
    parser.add_argument('--fit-memory', type=float, metavar='GIB', help='largest batch under this cap (CUDA only)')
    parser.add_argument('--rows', nargs='+', choices=list(BASE_ROWS), help='only these rows (and their variants)')
    parser.add_argument('--fit-rows', nargs='+', choices=list(BASE_ROWS), help='--fit-memory for these rows only')
    parser.add_argument('--profile-above', type=float, metavar='RATIO',
                        help='a torch.profiler table by stage for every DCKD row above RATIO x Logits KD in time or '
                             'memory')
    parser.add_argument('--out', help='also write the table to this Markdown file (never overwritten)')
    args = parser.parse_args(argv)
    if args.out and os.path.exists(args.out):
        parser.error(f'--out {args.out} exists; choose another file')
    if args.rows and 'Logits KD' not in args.rows:
        parser.error('--rows must include Logits KD: the ratios are to it')
    if args.fit_memory and args.device != 'cuda':
        parser.error('--fit-memory needs --device cuda')
    if args.device == 'cpu' and not os.path.exists('/proc/self/clear_refs'):
        parser.error('peak memory on CPU is read from /proc (Linux); run on Linux or on a GPU')
    return args


def main(argv=None):
    args = parse_args(argv)
    rows, results = rows_to_run(args.precisions, args.ablations, args.rows), {}
    with tempfile.TemporaryDirectory() as folder:
        write_checkpoints(PRESETS[args.preset], folder)
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits one pass, not one row
            for name, spec in rows:
                result = measure_in_children(args, spec, folder)
                if name not in results or result['ms'] < results[name]['ms']:
                    results[name] = result
                print(f'{name}: {result["ms"]:.1f} ms/iteration, peak {result["peak_mib"]:.0f} MiB', flush=True)
        results = [results[name] for name, _ in rows]
        table = markdown(rows, results, args) + profiled_stages(args, rows, results, folder)
    print('\n' + table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)


if __name__ == '__main__':
    main()
