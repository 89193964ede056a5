"""`dckd-train --check` on a shipped options file, and networks from another installed project."""
import os
import subprocess
import sys

import cv2
import pytest
import torch
import yaml

from dckd.lmdb_writer import write_image_lmdb
from dckd.paired_data import paired_subimages
from conftest import PROJECT_ROOT, benchmark_images, reference_layout
from in_process import dckd_train
from test_pipeline import SCALE, dckd_options, workspace, write_options  # noqa: F401  (workspace: a fixture)

pytestmark = pytest.mark.slow
TRAIN = [sys.executable, os.path.join(PROJECT_ROOT, 'train.py')]


def published_layout_file(path, listing, container):
    """A checkpoint with exactly the published keys and shapes (random values), in `container`."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) for k, shape in reference_layout(listing).items()}
    torch.save({container: state}, path)
    return str(path)


def set5_x4(folder):
    """Set5 at x4 (whole images, mod-cropped) as an LMDB pair and as a folder pair."""
    pairs = [p for path in benchmark_images('Set5')
             for p in paired_subimages(os.path.splitext(os.path.basename(path))[0], cv2.imread(path), 4)]
    lmdb = (str(folder / 'gt.lmdb'), str(folder / 'lq.lmdb'))
    write_image_lmdb(lmdb[0], [(k, gt) for k, gt, _ in pairs])
    write_image_lmdb(lmdb[1], [(k, lq) for k, _, lq in pairs])
    disk = (folder / 'GT', folder / 'LQ')
    for side in disk:
        side.mkdir()
    for key, gt, lq in pairs:
        cv2.imwrite(str(disk[0] / f'{key}.png'), gt)
        cv2.imwrite(str(disk[1] / f'{key}.png'), lq)
    return lmdb, tuple(map(str, disk))


def test_check_validates_the_shipped_swinir_run_and_prints_what_would_run(tmp_path):
    """options/train/swinir/dckd_swinir_x4.yml as shipped, with the checkpoints in their published
    layouts and Set5 standing in for the data: OK, and the sizes the spec publishes (teacher 11.90M,
    the compact student 1.2M, the VQGAN encoder 29.6M)."""
    with open(os.path.join(PROJECT_ROOT, 'options', 'train', 'swinir', 'dckd_swinir_x4.yml')) as f:
        opt = yaml.safe_load(f)
    opt['path']['pretrain_network_t'] = published_layout_file(tmp_path / 'swinir_m.pth', 'swinir_m_x4.tsv', 'params')
    opt['path']['pretrain_network_vqgan'] = published_layout_file(tmp_path / 'last.ckpt', 'vqgan_f16_n1024_encoder.tsv',
                                                                  'state_dict')
    opt['train']['teacher_check'] = False  # random weights; tests/test_teacher_check.py covers --check's check
    (gt_lmdb, lq_lmdb), (gt_dir, lq_dir) = set5_x4(tmp_path)
    opt['datasets']['train'].update(dataroot_gt=gt_lmdb, dataroot_lq=lq_lmdb)
    for phase in ('val_1', 'val_2', 'val_3', 'val_4'):
        opt['datasets'][phase].update(dataroot_gt=gt_dir, dataroot_lq=lq_dir)
    options_file = tmp_path / 'dckd_swinir_x4.yml'
    options_file.write_text(yaml.safe_dump(opt))
    result = dckd_train(['--check', '-opt', options_file], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f'{options_file}: OK'
    assert 'model     DCKDModel, 250000 iterations, scale 4' in lines
    assert ('terms     l_pix = 1.0 x L1Loss; l_kd = 1.0 x L1Loss; l_dcl = 0.1 x DynamicContrastiveLoss; '
            'l_ce = 0.001 x DistributionMappingLoss') in lines
    printed = result.stdout
    assert 'student   network_g: SwinIR, 1.2' in printed and 'from random initialisation' in printed
    assert 'teacher   network_t: SwinIR, 11.90M parameters, from ' + str(tmp_path / 'swinir_m.pth') in printed
    assert 'VQGAN     network_vqgan: VQGANEncoder, 29.6' in printed
    assert 'data      train DIV2K: 5 images (lmdb)' in lines and 'data      val_1 Set5: 5 images (disk)' in lines
    assert not (tmp_path / 'experiments').exists()  # a check trains nothing and creates nothing


LAB_PACKAGE = '''"""A lab's own BasicSR-registered network, installed beside dckd."""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class LabNet(nn.Module):
    def __init__(self, scale, channels=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.upsample = nn.Upsample(scale_factor=scale, mode='bilinear', align_corners=False)

    def forward(self, x):
        return self.upsample(x) + self.body(x)
'''


@pytest.fixture
def lab_package(tmp_path):
    """A package `lab_archs`, importable only through PYTHONPATH (as if pip-installed)."""
    site = tmp_path / 'site'
    (site / 'lab_archs').mkdir(parents=True)
    (site / 'lab_archs' / '__init__.py').write_text(LAB_PACKAGE)
    return dict(os.environ, PYTHONPATH=str(site))


def test_another_projects_network_trains_as_the_dckd_student(workspace, tmp_path, lab_package):  # noqa: F811
    opt = dckd_options(workspace, 'lab_student', total_iter=2, checkpoint_freq=2)
    opt['network_g'] = {'type': 'LabNet', 'scale': SCALE, 'channels': 8}
    opt['import_modules'] = ['lab_archs']
    result = subprocess.run(TRAIN + ['-opt', str(write_options(tmp_path, opt))], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env=lab_package)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(tmp_path / 'experiments/lab_student/models/net_g_2.pth', weights_only=True)
    assert set(saved['params']) == {'body.0.weight', 'body.0.bias', 'body.2.weight', 'body.2.bias'}
    assert (tmp_path / 'experiments/lab_student/models/net_history_2.pth').exists()  # DCKD's history model


def test_the_import_flag_does_what_import_modules_does(workspace, tmp_path, lab_package):  # noqa: F811
    opt = dckd_options(workspace, 'lab_flag', total_iter=2, checkpoint_freq=2)
    opt['network_g'] = {'type': 'LabNet', 'scale': SCALE}
    options_file = str(write_options(tmp_path, opt))
    without = subprocess.run(TRAIN + ['--check', '-opt', options_file], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600, env=lab_package)
    assert without.returncode != 0
    assert "network_g.type: no network in BasicSR's ARCH_REGISTRY named 'LabNet'" in without.stderr
    assert 'dckd-train --import package.archs' in without.stderr
    with_flag = subprocess.run(TRAIN + ['--check', '--import', 'lab_archs', '-opt', options_file], cwd=tmp_path,
                               capture_output=True, text=True, timeout=600, env=lab_package)
    assert with_flag.returncode == 0, with_flag.stderr[-3000:]
    assert 'student   network_g: LabNet' in with_flag.stdout


def test_negatives_that_are_never_degraded_are_named_at_check_and_in_the_log(workspace, tmp_path):  # noqa: F811
    """`train.negatives.probs` all 0 is legal but leaves every negative H(D_j(x)) equal to H(x): a
    warning at --check and in the training log; none where a degradation can happen or N is 1."""
    def run(probs, num, *check):
        opt = dckd_options(workspace, f'negatives_{num}_{len(probs)}', total_iter=1, checkpoint_freq=1, val=False)
        opt['train']['negatives'] = {'num': num, 'probs': probs}
        done = dckd_train([*check, '-opt', write_options(tmp_path, opt)], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    never = {'noise': 0.0, 'blur': 0.0}  # resize's default is 0 too
    checked = run(never, 3, '--check').stdout.splitlines()
    warnings = [line.strip() for line in checked if 'WARNING' in line]
    assert warnings == ['WARNING: train.negatives.probs are all 0 (noise, blur and resize): no negative is degraded, '
                        "so each of the 2 degraded negatives H(D_j(x)) is the history model's output on the clean "
                        'input, H(x), and DCR pushes the student away from that one image only. Set '
                        'train.negatives.probs.noise: 1.0 (the released default), or another probability above 0.']
    assert checked[checked.index('          ' + warnings[0]) - 1].startswith('terms     ')
    run(never, 3)
    log = next((tmp_path / 'experiments/negatives_3_2').glob('train_*.log')).read_text()
    assert f'WARNING: {warnings[0][len("WARNING: "):]}' in log
    for probs, num in (({'noise': 0.0, 'resize': 0.1}, 3), (never, 1), ({}, 3)):
        assert 'WARNING' not in run(probs, num, '--check').stdout, (probs, num)
