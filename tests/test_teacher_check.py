"""The teacher is checked against bicubic before the student trains, once, and not on resume."""
import os
import random
import subprocess

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs import build_network
from dckd.paired_data import paired_subimages
from dckd_models.teacher_check import TeacherWorseThanBaseline, check_teacher
from conftest import edsr
from test_pipeline import (TRAIN, basicsr_project, dckd_options, dropin, environment_of_its_own, hr_images,  # noqa: F401
                           workspace, write_options)

BICUBIC_PACKAGE = '''from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class BicubicTeacher(nn.Module):
    """A teacher that is bicubic upsampling itself: no weights."""

    def __init__(self, upscale):
        super().__init__()
        self.upscale = upscale

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)
'''


class Bicubic(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale, self.calls = scale, 0

    def forward(self, x):
        self.calls += 1
        return F.interpolate(x, scale_factor=self.scale, mode='bicubic', align_corners=False)


def pairs(scale=2):
    """(lq, gt) tensors of real photographs (Set5 crops where ../shared is there), MATLAB-bicubic LQ."""
    out = []
    for name, hr in hr_images().items():
        for _, gt, lq in paired_subimages(name, hr, scale):
            out.append(tuple(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float() / 255 for img in (lq, gt)))
    return out


def test_a_teacher_that_is_bicubic_passes_with_one_forward_pass_per_image():
    teacher, data = Bicubic(2), pairs()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    summary = check_teacher(teacher, data, 2, torch.device('cpu'), 'Set5')
    assert teacher.calls == len(data)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected  # the check draws nothing
    teacher_db, bicubic_db = (float(part.split(' dB')[0].rsplit(' ', 1)[1]) for part in summary.split(', ')[-2:])
    assert teacher_db == pytest.approx(bicubic_db, abs=1e-6)


def test_a_random_teacher_is_stopped_naming_the_causes_and_the_way_round():
    torch.manual_seed(0)
    teacher = build_network(edsr(16, 2, 2)).eval()
    with pytest.raises(TeacherWorseThanBaseline, match=r'dB worse than bicubic.*img_range.*param_key_t.*'
                                                        r'train.teacher_check: false'):
        check_teacher(teacher, pairs(), 2, torch.device('cpu'), 'Set5')


def test_at_scale_1_the_baseline_is_the_degraded_input():
    generator = torch.Generator().manual_seed(0)
    data = [((gt + 0.05 * torch.randn(gt.shape, generator=generator)).clamp(0, 1), gt) for _, gt in pairs()]
    with pytest.raises(TeacherWorseThanBaseline, match='worse than the degraded input'):
        check_teacher(lambda x: torch.zeros_like(x), data, 1, torch.device('cpu'), 'GoPro')
    summary = check_teacher(nn.Identity(), data, 1, torch.device('cpu'), 'GoPro')  # the input: no worse
    assert 'the degraded input' in summary


@pytest.mark.slow
def test_training_stops_before_any_iteration_with_a_random_teacher(workspace, tmp_path):  # noqa: F811
    opt = dckd_options(workspace, 'bad_teacher', total_iter=2, checkpoint_freq=1)
    opt['train']['teacher_check'] = True
    result = subprocess.run(TRAIN + ['-opt', str(write_options(tmp_path, opt))], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('dckd-train: Teacher check on tiny_val') and 'worse than bicubic' in last
    assert os.listdir(tmp_path / 'experiments/bad_teacher/models') == []  # the student never trained


@pytest.mark.slow
def test_a_forks_own_train_py_refuses_a_random_teacher_with_the_same_one_line(workspace, tmp_path):  # noqa: F811
    """Under a project's train.py after dckd-dropin (tests/test_pipeline.py: PROJECT_FILES), which
    catches nothing: exit code 1 and dckd's one line, not a traceback."""
    project, env = basicsr_project(tmp_path / 'project')
    python, _ = environment_of_its_own(tmp_path / 'env')
    assert dropin(python, 'install', project).returncode == 0
    opt = dckd_options(workspace, 'bad_teacher', total_iter=2, checkpoint_freq=1)
    opt['train']['teacher_check'] = True
    result = subprocess.run([python, 'myproj/train.py', '-opt', str(write_options(tmp_path, opt))], cwd=project,
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('dckd: Teacher check on tiny_val') and 'worse than bicubic' in last
    assert os.listdir(project / 'experiments/bad_teacher/models') == []  # the student never trained


@pytest.mark.slow
def test_a_good_teacher_is_checked_once_and_not_on_resume(workspace, tmp_path):  # noqa: F811
    site = tmp_path / 'site'
    (site / 'bicubic_teacher').mkdir(parents=True)
    (site / 'bicubic_teacher' / '__init__.py').write_text(BICUBIC_PACKAGE)
    torch.save({'params': {}}, tmp_path / 'bicubic.pth')
    opt = dckd_options(workspace, 'good_teacher', total_iter=2, checkpoint_freq=2)
    opt['import_modules'] = ['bicubic_teacher']
    opt['network_t'] = {'type': 'BicubicTeacher', 'upscale': 2}
    opt['path']['pretrain_network_t'] = str(tmp_path / 'bicubic.pth')
    opt['train']['teacher_check'] = True
    env = dict(os.environ, PYTHONPATH=str(site))
    first = subprocess.run(TRAIN + ['-opt', str(write_options(tmp_path, opt))], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'Teacher check on tiny_val' in first.stderr + first.stdout
    opt['train']['total_iter'] = 4
    resumed = subprocess.run(TRAIN + ['-opt', str(write_options(tmp_path, opt)), '--auto_resume'], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Teacher check' not in resumed.stderr + resumed.stdout
    checked = subprocess.run(TRAIN + ['--check', '-opt', str(write_options(tmp_path, opt))], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600, env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert 'teacher   Teacher check on tiny_val' in checked.stdout  # --check runs it too


@pytest.mark.slow
def test_check_stops_on_a_random_teacher(workspace, tmp_path):  # noqa: F811
    opt = dckd_options(workspace, 'checked', total_iter=2, checkpoint_freq=1)
    opt['train']['teacher_check'] = True
    result = subprocess.run(TRAIN + ['--check', '-opt', str(write_options(tmp_path, opt))], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().startswith(f'dckd-train: {tmp_path / "checked.yml"}: Teacher check on tiny_val')
    assert 'worse than bicubic' in result.stderr and not (tmp_path / 'experiments').exists()
