"""Training through `dckd-train` on CUDA: a few DCKD iterations in float32, in bfloat16 mode with
fused attention and compiled frozen networks, a resume equal to an uninterrupted run, and
`torchrun --nproc_per_node=1 ... --launcher pytorch` (NCCL). Part of benchmarks/gpu_check.sh.

The runs use the SwinIR x4 DCKD options (options/train/swinir/dckd_swinir_x4.yml: every DCKD term,
the cost options) with the shrunk networks of benchmarks/dckd_step.py's cpu preset (compiling the
frozen networks takes seconds, not minutes), random teacher and VQGAN weights, the demo's
photographs (LMDB, 2 data workers) and validation on its held-out images, whose sizes are not
whole windows. `--dry-run` runs the same steps on the CPU (gloo instead of NCCL), with networks of
fewer distinct layers (DRY_RUN_NETWORKS): on a CPU, compiling costs a C++ compiler run per distinct
kernel, minutes for the cpu preset's.

    python benchmarks/gpu_check.py --out $OUT/train          # on a GPU
    python benchmarks/gpu_check.py --dry-run --out /tmp/check
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import time

import torch
import yaml

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forked  # noqa: E402
from dckd_step import PRESETS  # noqa: E402

BASE_OPTIONS = os.path.join(PROJECT_ROOT, 'options', 'train', 'swinir', 'dckd_swinir_x4.yml')
ITERATIONS = 4
# the dry run's: one Swin block, a two-level VQGAN (its level weights given to match) and a teacher of
# the student's layout, whose compiled graph is then the history model's (compiled once, for both)
DRY_RUN_STUDENT = dict(PRESETS['cpu']['student'], depths=[1], num_heads=[2])
DRY_RUN_NETWORKS = dict(student=DRY_RUN_STUDENT, teacher=dict(DRY_RUN_STUDENT),
                        vqgan=dict(PRESETS['cpu']['vqgan'], ch_mult=[1, 2]), level_weights=[0.5, 1.0])


def prepare(work, networks):
    """The demo's LMDBs, and a random teacher checkpoint of the shrunk networks."""
    from basicsr.archs import build_network
    from dckd.demo.data import prepare_demo_data
    import dckd_models  # noqa: F401  (registers dckd's archs in BasicSR's registry)

    prepare_demo_data(os.path.join(work, 'data'), logging.getLogger('gpu_check'))
    torch.manual_seed(0)
    teacher = os.path.join(work, 'teacher.pth')
    torch.save({'params': build_network(dict(networks['teacher'])).state_dict()}, teacher)
    return teacher


def options(work, name, teacher, networks, total_iter, **train):
    """dckd_swinir_x4.yml with the shrunk `networks`, the demo data and `train` overrides."""
    with open(BASE_OPTIONS) as f:
        opt = yaml.safe_load(f)
    data = os.path.join(work, 'data')
    top = {key: train.pop(key) for key in ('fused_attention', ) if key in train}
    opt.update(name=name, network_g=dict(networks['student']), network_t=dict(networks['teacher']),
               network_vqgan=dict(networks['vqgan']), **top)
    if 'level_weights' in networks:
        opt['train']['contrastive_opt']['level_weights'] = networks['level_weights']
    opt['datasets'] = {
        'train': dict(opt['datasets']['train'], name='photographs', dataroot_gt=f'{data}/train_gt.lmdb',
                      dataroot_lq=f'{data}/train_lq_x4.lmdb', gt_size=64, batch_size_per_gpu=4, num_worker_per_gpu=2),
        'val': {'name': 'held_out', 'type': 'PairedImageDataset', 'dataroot_gt': f'{data}/val_gt.lmdb',
                'dataroot_lq': f'{data}/val_lq_x4.lmdb', 'io_backend': {'type': 'lmdb'}},
    }
    opt['path'] = {'pretrain_network_t': teacher, 'param_key_t': 'params', 'pretrain_network_vqgan': None}
    opt['train'].update(total_iter=total_iter, teacher_check=False,
                        history=dict(opt['train']['history'], steps=[2], milestones=[]), **train)
    opt['val'] = dict(opt['val'], val_freq=ITERATIONS)
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}
    path = os.path.join(work, f'{name}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return path


def train(work, option_file, *extra, launcher=None):
    """One dckd-train run in `work`, in a fresh process (torchrun's, with `launcher`); (seconds, output)."""
    argv = ['-opt', option_file, *extra]
    log = os.path.join(work, f'{os.path.basename(option_file)[:-4]}{"_" + launcher if launcher else ""}'
                             f'{"_auto_resume" if extra else ""}.log')
    start = time.time()
    if launcher:
        command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1', '--master_port=29533',
                   os.path.join(PROJECT_ROOT, 'train.py'), *argv, '--launcher', launcher]
        with open(log, 'w') as f:
            exit_code = subprocess.run(command, cwd=work, stdout=f, stderr=subprocess.STDOUT, env=dict(
                os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PROJECT_ROOT, os.environ.get('PYTHONPATH')])))
                                       ).returncode
    else:
        command = ['dckd-train', *argv]
        process = forked.start(forked.command, 'dckd.train', argv, work, log)
        process.join()
        exit_code = process.exitcode
    with open(log) as f:
        output = f.read()
    if exit_code:
        raise RuntimeError(f'{" ".join(command)} failed (exit code {exit_code}):\n{output[-3000:]}')
    return time.time() - start, output


def weights(work, name, iteration):
    """The student's and the EMA's weights saved at `iteration`, as CPU tensors."""
    state = torch.load(os.path.join(work, 'experiments', name, 'models', f'net_g_{iteration}.pth'), map_location='cpu',
                       weights_only=True)
    return {f'{key}.{k}': v for key in ('params', 'params_ema') for k, v in state[key].items()}


def max_difference(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def run_checks(work, device_name, cuda, networks):
    """[(check, passed, seconds, note)]."""
    teacher = prepare(work, networks)
    results = []

    def check(name, function):
        start = time.time()
        try:
            passed, note = function()
        except Exception as error:  # noqa: BLE001  (one failed check must not stop the others)
            passed, note = False, f'{type(error).__name__}: {str(error)[-1500:]}'
        results.append((name, passed, time.time() - start, note))
        print(f'[{"PASS" if passed else "FAIL"}] {name} ({time.time() - start:.0f} s): {note[:300]}', flush=True)

    def float32():
        _, log = train(work, options(work, 'float32', teacher, networks, ITERATIONS))
        return 'Validation held_out' in log, f'{ITERATIONS} iterations and a validation on {device_name}'

    def bfloat16():
        _, log = train(work, options(work, 'bfloat16', teacher, networks, ITERATIONS, precision='bfloat16',
                                     fused_attention=True, compile_frozen=True))
        return 'Validation held_out' in log, f'{ITERATIONS} iterations, precision bfloat16, fused attention, compiled'

    def resume():
        train(work, options(work, 'resumed', teacher, networks, ITERATIONS // 2))
        train(work, options(work, 'resumed', teacher, networks, ITERATIONS), '--auto_resume')
        difference = max_difference(weights(work, 'float32', ITERATIONS), weights(work, 'resumed', ITERATIONS))
        return difference == 0, (f'{ITERATIONS // 2} + {ITERATIONS // 2} iterations against {ITERATIONS} straight: '
                                 f'student and EMA {"identical" if difference == 0 else f"differ by {difference:.3g}"}')

    def torchrun():
        _, log = train(work, options(work, 'torchrun', teacher, networks, 2), launcher='pytorch')
        backend = 'NCCL' if cuda else 'gloo'
        return 'End of training' in log, f'torchrun --nproc_per_node=1 ... --launcher pytorch ({backend})'

    check('dckd-train, float32', float32)
    check('dckd-train, bfloat16 + fused attention + compile_frozen', bfloat16)
    check('resume equals an uninterrupted run', resume)
    check('torchrun, one process', torchrun)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='folder for the work and results.json (must not exist)')
    parser.add_argument('--dry-run', action='store_true', help='the same steps on the CPU')
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f'--out {args.out} exists; choose another folder')
    if not args.dry_run and not torch.cuda.is_available():
        parser.error('no CUDA device: this check is for a GPU machine (--dry-run runs its steps on the CPU)')
    os.makedirs(args.out)
    cuda = not args.dry_run
    if not cuda:
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # the children train on the CPU
    device_name = torch.cuda.get_device_name() if cuda else 'the CPU'
    networks = PRESETS['cpu'] if cuda else DRY_RUN_NETWORKS
    results = run_checks(os.path.abspath(args.out), device_name, cuda, networks)
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump([dict(zip(('check', 'passed', 'seconds', 'note'), r)) for r in results], f, indent=1)
    sys.exit(0 if all(passed for _, passed, _, _ in results) else 1)


if __name__ == '__main__':
    main()
