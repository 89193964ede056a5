"""benchmarks/qat_gain.py, the 64-channel study of docs/quantization.md: its arithmetic (what PTQ
loses, what each fine-tune wins back, what its 8 bits cost against its FP32 twin) on hand-computed
scores, and its steps end to end (`--dry-run`: 8-channel networks, 8 iterations)."""
import csv

import pytest
import torch
import yaml

import qat_gain
from in_process import script
from test_gpu_scripts import textures

METHODS = ('qat_l1', 'qat_logits', 'qat_dckd')


def scores_of(psnr):
    """{model: {set: (psnr, ssim)}}, Set14 0.5 dB under Set5."""
    return {name: {'Set5': (value, 0.9), 'Set14': (value - 0.5, 0.8)} for name, value in psnr.items()}


def test_the_table_gives_what_ptq_loses_and_the_share_each_fine_tune_wins_back():
    psnr = {'bicubic': 28.0, 'teacher': 30.5, 'fp32_dckd': 30.0, 'ptq_x86': 29.8}
    for method, (int8, twin) in {'qat_l1': ((29.80, 29.84), (29.90, 29.90)),
                                 'qat_logits': ((29.86, 29.88), (29.95, 29.93)),
                                 'qat_dckd': ((29.90, 29.94), (29.98, 30.00))}.items():
        psnr.update({f'{method}_s{seed}': value for seed, value in zip((0, 1), int8)})
        psnr.update({f'{method}_s{seed}_float': value for seed, value in zip((0, 1), twin)})
    table = qat_gain.results_markdown(scores_of(psnr), [0, 1], 'a setting')
    row = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in table.splitlines() if line.startswith('| ')}
    assert 'PTQ loses Set5 0.200 dB, Set14 0.200 dB' in table
    # DCKD: INT8 mean 29.92 = PTQ + 0.12 (60 % of 0.2); twin mean 29.99, 0.07 above it; std of 29.90, 29.94
    assert row['QAT with DCKD, INT8'][:2] == ['29.920 ± 0.028', '29.420 ± 0.028']
    assert row['QAT with DCKD'] == ['+0.120 dB (60%)', '0.070 dB', '+0.120 dB (60%)', '0.070 dB |']
    assert row['QAT with L1 only'][:2] == ['+0.020 dB (10%)', '0.080 dB']
    assert row['QAT with Logits KD'][:2] == ['+0.070 dB (35%)', '0.070 dB']
    assert row['qat_dckd_float'] == ['29.980 / 29.480', '30.000 / 29.500 |']  # every seed


def test_a_ptq_that_loses_nothing_is_said_so_not_divided_by():
    psnr = {'bicubic': 28.0, 'teacher': 30.5, 'fp32_dckd': 30.0, 'ptq_x86': 30.0}
    psnr.update({f'{method}_s0{suffix}': 29.9 for method in METHODS for suffix in ('', '_float')})
    table = qat_gain.results_markdown(scores_of(psnr), [0], 'a setting')
    assert table.count('-0.100 dB (PTQ lost nothing)') == 6


@pytest.mark.slow
def test_dry_run_quantizes_fine_tunes_and_scores_every_model(tmp_path):
    """The script's main in this process; every training, the PTQ and the evaluation are processes
    of their own (benchmarks/forked.py). Test images of one size: an INT8 artifact compiles once."""
    data = ['--train-hr', textures(tmp_path / 'train', 2, 96, 0), '--test-hr',
            f'Set5={textures(tmp_path / "set5", 2, 48, 1)}', '--test-hr', f'Set14={textures(tmp_path / "set14", 2, 48, 2)}']
    out = tmp_path / 'out'
    done = script(qat_gain.main, ['--dry-run', '--out', out, *data])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    work = out / 'work'
    with open(out / 'evaluation.csv') as f:
        scores = {row['model']: float(row['Set5_psnr']) for row in csv.DictReader(f)}
    fine_tunes = [f'{method}_s0{suffix}' for method in METHODS for suffix in ('', '_float')]
    assert sorted(scores) == sorted(['bicubic', 'teacher', 'fp32_dckd', 'ptq_x86', *fine_tunes])

    def options(name):
        with open(work / 'options' / f'{name}.yml') as f:
            return yaml.safe_load(f)

    student = options('fp32_dckd')
    assert (student['network_g']['num_block'], student['network_t']['num_block']) == (1, 2)  # the dry preset's
    for method in METHODS:  # each fine-tune and its twin: the same run but for train.quantization
        int8, twin = options(f'{method}_s0'), options(f'{method}_s0_float')
        assert int8['path']['pretrain_network_g'] == str(work / 'experiments' / 'fp32_dckd' / 'models' /
                                                         'net_g_latest.pth')
        assert int8['train'].pop('quantization')['backend'] == 'x86' and 'quantization' not in twin['train']
        assert {**int8, 'name': None} == {**twin, 'name': None}
        assert int8['network_g'] == student['network_g']
        artifact = torch.load(work / 'experiments' / f'{method}_s0' / 'models' / 'net_g_int8.pth', weights_only=True)
        assert artifact['backend'] == 'x86'  # what dckd-evaluate scored as the INT8 fine-tune
    assert 'network_t' not in options('qat_l1_s0') and options('qat_dckd_s0')['network_vqgan']
    ptq = (out / 'ptq.md').read_text()
    assert ptq.startswith('| model |') and '| INT8, x86 |' in ptq and 'FP32, compiled' in ptq
    table = (out / 'results.md').read_text()
    assert f'| student, PTQ (x86) | {scores["ptq_x86"]:.3f} |' in table
    assert f'| qat_dckd | {scores["qat_dckd_s0"]:.3f} / ' in table
    assert 'wall time' in table and 'randomly initialised' in table

    refused = script(qat_gain.main, ['--dry-run', '--out', out, *data])
    assert refused.returncode == 2 and 'exists; choose another folder' in refused.stderr
