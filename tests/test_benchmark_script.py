"""The benchmark script: every row measured and tabulated (a functional check, not a timing), and
its batch search."""
import os

import pytest

import dckd_step  # benchmarks/ (on sys.path: conftest.py)


@pytest.mark.slow
def test_benchmark_writes_one_row_per_variant_with_ratios_to_logits_kd(tmp_path):
    out = tmp_path / 'table.md'
    dckd_step.main(['--preset', 'cpu', '--device', 'cpu', '--iterations', '1', '--warmup', '0',
                    '--precisions', 'float32', '--out', str(out)])
    lines = out.read_text().splitlines()
    rows = [line.split(' | ') for line in lines if line.startswith('| ') and 'variant' not in line]
    assert [row[0][2:] for row in rows] == ['scratch, float32', 'Logits KD, float32', 'FAKD, float32', 'FitNets, float32',
                                           'DUKD, float32', 'DCKD, float32', 'DCKD, reference path, float32',
                                           'DCKD + LCR, float32', 'DCKD*, float32']
    logits = rows[1]
    assert logits[2] == '1.00' and logits[4].rstrip(' |') == '1.00'
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)


def test_ablation_and_bfloat16_rows_follow_their_base_rows():
    names = [name for name, _ in dckd_step.rows_to_run(['float32', 'bfloat16'], ablations=True)]
    assert names.index('DCKD, frozen nets compiled, bfloat16') > names.index('DCKD, bfloat16')
    assert 'DCKD, reference path, bfloat16' not in names  # the reference is defined in float32
    assert len(names) == 2 * (len(dckd_step.BASE_ROWS) + len(dckd_step.ABLATIONS)) + 1


@pytest.mark.parametrize('limit, start', [(37, 16), (16, 16), (5, 16), (1, 4), (0, 16), (100, 1)])
def test_largest_fitting_batch_search(limit, start):
    probes = []

    def fits(batch):
        probes.append(batch)
        return batch <= limit

    assert dckd_step.largest_fitting(fits, start) == limit
    assert len(probes) <= 2 * max(limit, start).bit_length() + 2


def test_fitting_memory_is_refused_without_cuda():
    with pytest.raises(SystemExit):
        dckd_step.main(['--device', 'cpu', '--fit-memory', '24'])


@pytest.mark.skipif(not os.path.exists('/proc/self/clear_refs'), reason='peak resident memory is read from Linux /proc')
def test_cpu_peak_memory_counts_persistent_tensors_and_a_transient_one():
    import torch

    class Holder:
        optimizers = []

        def __init__(self):
            self.net = torch.nn.Linear(4096, 4096, bias=False)  # 4096 * 4096 float32 = 64 MiB

    memory = dckd_step.PeakMemory('cpu')
    holder = Holder()
    memory.start(holder)
    transient = torch.ones(16 * 2**20)  # 64 MiB, mmapped by the allocator and returned on free
    del transient
    # 64 MiB persistent + 64 MiB transient; the resident set also moves by a few MiB on its own
    assert abs(memory.peak_mib() - 128) < 6
    del holder  # the persistent tensor stays alive until measured


@pytest.mark.slow
def test_realworld_cost_measures_every_network_and_method(tmp_path):
    """realworld_cost.py: the three networks at Real-ESRGAN's published sizes (counted by hand for the
    student: tests/test_option_files.py), the VGG19 of the perceptual loss, and one GAN-stage
    iteration per method with its ratio to scratch (a functional check, not a timing)."""
    import realworld_cost
    out = tmp_path / 'realworld.md'
    realworld_cost.main(['--preset', 'cpu', '--batch', '1', '--iterations', '1', '--warmup', '0', '--out', str(out)])
    assert os.getcwd() != str(tmp_path) and os.path.isdir(os.getcwd())
    rows = [line.split(' | ') for line in out.read_text().splitlines() if line.startswith('| ') and '---' not in line]
    networks = {row[0][2:]: row[1] for row in rows[1:5]}
    assert networks == {'student (SRVGGNetCompact 64/16)': '0.62M', 'teacher (RRDBNet 64/23, RealESRGAN_x4plus)': '16.70M',
                        'discriminator (UNetDiscriminatorSN 64)': '4.38M',
                        'VGG19 of the perceptual loss (to conv5_4)': '20.02M'}
    methods = {row[0][2:]: row for row in rows[6:]}
    assert list(methods) == ['scratch', 'Logits KD', 'DCKD'] and methods['scratch'][2] == '1.00'
    assert all(float(row[1]) > float(row[3].rstrip(' |')) > 0 for row in methods.values())  # degradation is a part
