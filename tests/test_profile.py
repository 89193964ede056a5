"""dckd-profile and dckd-evaluate --profile: multiply-adds and peak memory against hand counts,
and the tables (a functional check; latency is measured by the command, never asserted)."""
import csv

import pytest
import torch
import yaml
from torch import nn

from dckd import profile
from dckd.evaluate import cli as evaluate_cli
from dckd.evaluate.cost import multiply_adds, peak_memory_mib
from conftest import DEVICES, edsr


def test_multiply_adds_of_two_convolutions_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    # 10x10 positions: 8 outputs x 3 inputs x 3x3 taps, then 3 outputs x 8 inputs
    assert multiply_adds(net, torch.rand(1, 3, 10, 10)) == 100 * (8 * 3 * 9) + 100 * (3 * 8)


def test_peak_memory_is_the_tensors_alive_at_once():
    """conv -> relu -> conv on 256x256: the 64-channel map and its ReLU are alive together (2 x 16 MiB)."""
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 3, 3, padding=1)).eval()
    assert peak_memory_mib(net, torch.rand(1, 3, 256, 256)) == 2 * 64 * 256 * 256 * 4 / 2**20


@pytest.fixture
def tiny_options(tmp_path):
    """An options file whose student is EDSR 4 channels, 1 block, x2 (no checkpoint: random weights)."""
    path = tmp_path / 'tiny.yml'
    path.write_text(yaml.safe_dump({'network_g': edsr(4, 1, 2), 'network_t': edsr(8, 1, 2), 'path': {}}))
    return str(path)


def edsr_multiply_adds(channels, blocks, height, width):
    """EDSR x2 by hand: first conv, two convs per block, the conv after the body and the x2
    upsampling conv at LR size; the last conv at HR size (3x3 kernels throughout)."""
    lr = height * width * 9
    return lr * (3 * channels + 2 * blocks * channels ** 2 + channels ** 2 + 4 * channels ** 2) + 4 * lr * channels * 3


@pytest.mark.parametrize('device', DEVICES)
def test_the_profile_table_has_each_model_and_its_hand_counted_multiply_adds(tiny_options, tmp_path, device):
    out = tmp_path / 'profile'
    profile.main(['--scale', '2', '--output-size', '32x24', '--model', f'student={tiny_options}',
                  '--model', f'teacher={tiny_options}@network_t', '--device', device, '--runs', '1', '--warmup', '0',
                  '--out', str(out)])
    rows = list(csv.DictReader(open(f'{out}.csv')))
    assert [row['model'] for row in rows] == ['student', 'teacher']
    assert float(rows[0]['MACs (G)']) * 1e9 == pytest.approx(edsr_multiply_adds(4, 1, 12, 16))
    assert float(rows[1]['MACs (G)']) * 1e9 == pytest.approx(edsr_multiply_adds(8, 1, 12, 16))
    assert all(float(row[f'{device} float32 (ms)']) > 0 and float(row[f'{device} bfloat16 (ms)']) > 0 for row in rows)
    assert all(float(row[f'{device} peak (MiB)']) > 0 for row in rows)
    markdown = open(f'{out}.md').read()
    assert '| student |' in markdown and 'Input 16x12 (output 32x24)' in markdown
    with pytest.raises(SystemExit, match='exists'):
        profile.main(['--model', f'student={tiny_options}', '--out', str(out)])


def test_evaluate_profile_adds_the_multiply_adds_of_a_720p_output(tiny_options, tmp_path, monkeypatch):
    from dckd.evaluate.models import model_from_spec
    model = model_from_spec(f'student={tiny_options}', 2, weights=False)
    assert evaluate_cli.multiply_adds_at_720p(model, 2) == edsr_multiply_adds(4, 1, 360, 640)
    assert evaluate_cli.multiply_adds_at_720p(model_from_spec('bicubic', 2), 2) is None


def test_evaluate_with_profile_writes_the_column(tiny_options, tmp_path):
    import cv2
    import numpy as np
    from basicsr.archs import build_network
    for folder, size in (('gt', 24), ('lq', 12)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'a.png'), np.random.default_rng(0).integers(0, 255, (size, size, 3),
                                                                                           dtype=np.uint8))
    checkpoint = tmp_path / 'student.pth'
    torch.save({'params': build_network(edsr(4, 1, 2)).state_dict()}, checkpoint)
    out = tmp_path / 'table'
    evaluate_cli.main(['--scale', '2', '--profile', '--benchmark', f'tiny={tmp_path / "gt"},{tmp_path / "lq"}',
                       '--model', 'bicubic', '--model', f'student={tiny_options}:{checkpoint}', '--out', str(out)])
    rows = list(csv.DictReader(open(f'{out}.csv')))
    assert [row['macs'] for row in rows] == ['', str(edsr_multiply_adds(4, 1, 360, 640))]
    assert '| model | params | MACs (G) | tiny PSNR / SSIM |' in open(f'{out}.md').read()
