"""The two GPU runs, prepared: benchmarks/gpu_check.sh and benchmarks/distill_gain.py run their
steps end to end on the CPU (`--dry-run`: tiny networks, a few iterations), and refuse in one
clear message, before any work, where the GPU run would fail: no CUDA, no carried wheels, no
carried teacher."""
import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import distill_gain
from dckd_arch.vqgan_arch import VQGAN, encoder_state_dict
from in_process import script
from conftest import PROJECT_ROOT

GPU_CHECK = os.path.join(PROJECT_ROOT, 'benchmarks', 'gpu_check.sh')
DISTILL_GAIN = os.path.join(PROJECT_ROOT, 'benchmarks', 'distill_gain.py')
METHODS = ['scratch', 'Logits KD', 'DCKD', 'DCKD, DCR only', 'DCKD, DMM only']


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, **kwargs)


def refused_cleanly(done, *phrases):
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'Traceback' not in done.stderr
    assert all(phrase in done.stderr for phrase in phrases), done.stderr


# ----- refusals ---------------------------------------------------------------------------------------

@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='checks the refusal on a machine without CUDA')
def test_gpu_check_refuses_without_cuda_or_wheels(tmp_path):
    done = run(['bash', GPU_CHECK], env=dict(os.environ, OUT=str(tmp_path)))
    has_wheels = any(f.startswith('basicsr-') for f in os.listdir(os.path.join(PROJECT_ROOT, '.whl'))) if \
        os.path.isdir(os.path.join(PROJECT_ROOT, '.whl')) else False
    refused_cleanly(done, 'torch sees no CUDA device' if has_wheels else 'fetch-wheels.sh')
    assert os.listdir(tmp_path) == []  # nothing ran
    done = run([sys.executable, os.path.join(PROJECT_ROOT, 'benchmarks', 'gpu_check.py'), '--out', str(tmp_path / 'x')])
    refused_cleanly(done, 'no CUDA device', '--dry-run')


@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='checks the refusal on a machine without CUDA')
def test_distill_gain_on_a_gpu_refuses_without_cuda_and_without_the_carried_teacher(tmp_path):
    done = run([sys.executable, DISTILL_GAIN, '--preset', 'gpu', '--out', str(tmp_path / 'out')])
    refused_cleanly(done, '--preset gpu needs CUDA', '--preset gpu needs --teacher')
    done = run([sys.executable, DISTILL_GAIN, '--teacher', str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'o')])
    refused_cleanly(done, 'missing.pth: no such file')
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'o').exists()


# ----- dry runs ---------------------------------------------------------------------------------------

def textures(folder, count, size, seed):
    """`count` smooth random colour images of `size` x `size` pixels as PNGs in `folder`."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    for index in range(count):
        noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(folder, f'{index}.png'), cv2.GaussianBlur(noise, (7, 7), 2))
    return str(folder)


@pytest.mark.slow
def test_distill_gain_dry_run_trains_every_method_and_seed_and_tabulates_them(tmp_path):
    """Tiny networks, 4 iterations, two seeds, two runs at a time; then the same with the teacher
    of the first run carried, as a GPU run is given it. The script's main runs in this process:
    every training, the evaluation and the figure are processes of their own (benchmarks/forked.py)."""
    data = ['--train-hr', textures(tmp_path / 'train', 2, 96, 0), '--test-hr',
            f'Set5={textures(tmp_path / "set5", 2, 48, 1)}', '--test-hr', f'Set14={textures(tmp_path / "set14", 3, 60, 2)}']
    out = tmp_path / 'out'
    done = script(distill_gain.main, ['--dry-run', '--out', out, *data])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with open(out / 'evaluation.csv') as f:
        scores = {row['model']: row for row in csv.DictReader(f)}
    runs = [f'gain_{m.lower().replace(", ", "_").replace(" ", "_")}_s{seed}' for seed in (0, 1) for m in METHODS]
    assert sorted(scores) == sorted(['bicubic', 'gain_teacher'] + runs)
    assert all(np.isfinite(float(scores[name][f'{s}_psnr'])) for name in scores for s in ('Set5', 'Set14'))
    table = (out / 'results.md').read_text()
    for method in METHODS:  # a mean +- std row, and the seeds' row, each with its numbers
        rows = [line for line in table.splitlines() if line.startswith(f'| {method} |')]
        assert len(rows) == 2 and ' ± ' in rows[0], rows
        seeds = [float(scores[f'gain_{method.lower().replace(", ", "_").replace(" ", "_")}_s{s}']['Set5_psnr'])
                 for s in (0, 1)]
        assert rows[0].split(' | ')[1] == f'{np.mean(seeds):.2f} ± {np.std(seeds, ddof=1):.2f}'
    assert 'randomly initialised' in table and 'wall time' in table
    assert cv2.imread(str(out / 'curves.png')) is not None
    assert json.loads((out / 'results.json').read_text())['seeds'] == [0, 1]

    # the teacher carried, and the DCKD rows again in the space of a VQGAN file of the demo's sizes
    vqgan_sizes = {k: v for k, v in distill_gain.load_table()[1].DEMO_VQGAN.value.items() if k != 'type'}
    torch.save({'params': encoder_state_dict(VQGAN(**vqgan_sizes).state_dict())}, tmp_path / 'vqgan_encoder.pth')
    torch.save({'params': encoder_state_dict(VQGAN(**dict(vqgan_sizes, n_embed=64)).state_dict())},
               tmp_path / 'other_sizes.pth')
    refused = script(distill_gain.main, ['--dry-run', '--vqgan', tmp_path / 'other_sizes.pth', '--out',
                                         tmp_path / 'refused', *data])
    assert refused.returncode != 0 and '--vqgan: VQGAN checkpoint' in refused.stderr
    assert 'n_embed 64; network_vqgan asks for n_embed 256' in refused.stderr and not (tmp_path / 'refused').exists()
    carried = tmp_path / 'carried'
    done = script(distill_gain.main, ['--dry-run', '--seeds', '0', '--teacher', out / 'teacher.pth', '--vqgan',
                                      tmp_path / 'vqgan_encoder.pth', '--work', out / 'work', '--out', carried, *data])
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'trained gain_teacher' not in done.stdout and not (carried / 'teacher.pth').exists()
    table = (carried / 'results.md').read_text()
    assert '| teacher |' in table and f'rows marked (trained VQGAN): in that of {tmp_path / "vqgan_encoder.pth"}' in table
    for method in METHODS:
        trained = f'| {method} (trained VQGAN) |'
        assert (trained in table) == method.startswith('DCKD'), method
    log = (out / 'work' / 'experiments' / 'gain_dckd_dmm_only_trained_vqgan_s0').glob('train_*.log')
    assert f'Loaded VQGAN encoder from {tmp_path / "vqgan_encoder.pth"}' in next(log).read_text()


@pytest.mark.slow
def test_gpu_check_dry_run_passes_every_step(tmp_path):
    done = run(['bash', GPU_CHECK, '--dry-run'], env=dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable))
    assert done.returncode == 0, done.stdout[-4000:]
    summary = (tmp_path / 'summary.md').read_text()
    for step in ('pytest_gpu', 'train', 'step_benchmark'):
        assert f'| {step} | passed |' in summary
    checks = json.loads((tmp_path / 'train' / 'results.json').read_text())
    assert [c['check'] for c in checks] == ['dckd-train, float32',
                                            'dckd-train, bfloat16 + fused attention + compile_frozen',
                                            'resume equals an uninterrupted run', 'torchrun, one process']
    assert all(c['passed'] for c in checks), checks
    assert 'student and EMA identical' in checks[2]['note']
    assert '### DCKD, float32' in summary and '| history model on the negatives |' in summary
