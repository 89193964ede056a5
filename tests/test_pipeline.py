"""BasicSR's own pipelines driving dckd: train.py, exact resume, test.py, and the drop-in step."""
import os
import shutil
import site
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torchvision
import yaml

import basicsr
from basicsr.archs import build_network
from dckd.lmdb_writer import write_image_lmdb
from dckd.paired_data import paired_subimages
from conftest import BENCHMARKS_DIR, PROJECT_ROOT, TINY_VQGAN, edsr

pytestmark = pytest.mark.slow
SCALE = 2


def hr_images():
    """Real Set5 photographs where ../shared is present, else a synthetic texture."""
    folder = os.path.join(BENCHMARKS_DIR, 'Set5')
    if os.path.isdir(folder):
        return {os.path.splitext(f)[0]: cv2.imread(os.path.join(folder, f))[100:164, 100:164]
                for f in sorted(os.listdir(folder))[:3]}
    y, x = np.mgrid[0:64, 0:64]
    return {'texture': np.stack([(127 + 120 * np.sin(x / (3 + c)) * np.cos(y / 5)) for c in range(3)], -1).astype(
        np.uint8)}


def paired_lmdbs(folder, split, patch, images=None):
    pairs = [p for name, hr in (images or hr_images()).items() for p in paired_subimages(name, hr, SCALE, patch, patch)]
    gt, lq = os.path.join(folder, f'{split}_gt.lmdb'), os.path.join(folder, f'{split}_lq.lmdb')
    write_image_lmdb(gt, [(k, g) for k, g, _ in pairs])
    write_image_lmdb(lq, [(k, low) for k, _, low in pairs])
    return gt, lq


def dataset(name, gt, lq, train):
    opt = {'name': name, 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
           'io_backend': {'type': 'lmdb'}}
    if train:
        opt.update(gt_size=32, use_hflip=False, use_rot=False, num_worker_per_gpu=0, batch_size_per_gpu=2,
                   dataset_enlarge_ratio=1, prefetch_mode=None)
    return opt


def make_workspace(root):
    """Training and validation LMDBs, a teacher and a VQGAN checkpoint under `root`."""
    data = root / 'data'
    train_gt, train_lq = paired_lmdbs(str(data), 'train', patch=32)
    val_gt, val_lq = paired_lmdbs(str(data), 'val', patch=None)
    torch.manual_seed(0)
    teacher = edsr(16, 2, SCALE)
    torch.save({'params': build_network(teacher).state_dict()}, root / 'teacher.pth')
    torch.save({'params': build_network(TINY_VQGAN).state_dict()}, root / 'vqgan.pth')
    return {'root': root, 'train': (train_gt, train_lq), 'val': (val_gt, val_lq), 'teacher': teacher}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp('pipeline'))


def dckd_options(workspace, name, total_iter, checkpoint_freq, val=True, train_set=None):
    opt = {
        'name': name, 'model_type': 'DCKDModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': dataset('tiny', *(train_set or workspace['train']), train=True)},
        'network_g': edsr(8, 1, SCALE), 'network_t': workspace['teacher'], 'network_vqgan': dict(TINY_VQGAN),
        'path': {'pretrain_network_g': None, 'resume_state': None,
                 'pretrain_network_t': str(workspace['root'] / 'teacher.pth'),
                 'pretrain_network_vqgan': str(workspace['root'] / 'vqgan.pth')},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'lcr_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
            'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
            'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001},
            'history': {'source': 'ema', 'attenuation': 0.1, 'steps': [1], 'milestones': []},
            'negatives': {'num': 3, 'probs': {'noise': 1.0, 'blur': 0.5}},
            'teacher_check': False,  # a random teacher; tests/test_teacher_check.py checks the check
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': checkpoint_freq, 'use_tb_logger': False},
    }
    if val:
        opt['datasets']['val'] = dataset('tiny_val', *workspace['val'], train=False)
        opt['val'] = {'val_freq': checkpoint_freq, 'save_img': False,
                      'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True}}}
    return opt


def run(command, cwd, opt_path, *extra, env=None):
    result = subprocess.run(command + ['-opt', str(opt_path), *extra], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env=env)
    return result


def write_options(folder, opt):
    path = folder / f'{opt["name"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


TRAIN = [sys.executable, os.path.join(PROJECT_ROOT, 'train.py')]


def test_train_py_runs_dckd_with_validation_and_checkpoints(workspace, tmp_path):
    opt_path = write_options(tmp_path, dckd_options(workspace, 'full_run', total_iter=4, checkpoint_freq=2))
    result = run(TRAIN, tmp_path, opt_path)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'full_run'
    models = sorted(os.listdir(experiment / 'models'))
    assert models == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth', 'net_history_2.pth', 'net_history_4.pth',
                      'net_history_latest.pth']  # never the teacher or the VQGAN
    assert sorted(os.listdir(experiment / 'training_states')) == ['2.state', '4.state']
    log = next(f for f in os.listdir(experiment) if f.endswith('.log'))
    text = (experiment / log).read_text()
    assert 'Validation tiny_val' in text and '# psnr' in text
    for key in ('l_pix', 'l_kd', 'l_lcr', 'l_dcl', 'l_ce'):
        assert f'{key}: ' in text


def test_test_py_evaluates_a_trained_student(workspace, tmp_path):
    train_opt = dckd_options(workspace, 'to_test', total_iter=2, checkpoint_freq=2, val=False)
    assert run(TRAIN, tmp_path, write_options(tmp_path, train_opt)).returncode == 0
    test_opt = {
        'name': 'test_tiny', 'model_type': 'KDModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': dataset('tiny_val', *workspace['val'], train=False)},
        'network_g': edsr(8, 1, SCALE),
        'path': {'pretrain_network_g': str(tmp_path / 'experiments/to_test/models/net_g_latest.pth'),
                 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True}}},
    }
    result = run([sys.executable, os.path.join(PROJECT_ROOT, 'test.py')], tmp_path, write_options(tmp_path, test_opt))
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / 'results' / 'test_tiny'
    assert len(os.listdir(results / 'visualization' / 'tiny_val')) == len(hr_images())
    log = next(f for f in os.listdir(results) if f.endswith('.log'))
    assert '# psnr' in (results / log).read_text()


@pytest.fixture
def basicsr_checkout(tmp_path):
    """A BasicSR-like checkout: the installed basicsr package copied into <fork>/basicsr; (fork, the
    environment variables that make it importable, the Python of an environment of its own)."""
    fork = tmp_path / 'fork'
    shutil.copytree(os.path.dirname(basicsr.__file__), fork / 'basicsr',
                    ignore=shutil.ignore_patterns('__pycache__'))
    env = dict(os.environ, PYTHONPATH=str(fork))
    return fork, env, environment_of_its_own(tmp_path / 'env')[0]


def dropin(python, *args):
    """`python -m dckd.dropin ARGS`: `python` is an environment_of_its_own's (install writes into it)."""
    return subprocess.run([python, '-m', 'dckd.dropin', *map(str, args)], capture_output=True, text=True)


def test_dropin_makes_basicsr_train_py_of_a_checkout_train_dckd(workspace, basicsr_checkout):
    fork, env, python = basicsr_checkout
    assert dropin(python, 'install', fork).returncode == 0
    opt_path = write_options(fork, dckd_options(workspace, 'in_fork', total_iter=2, checkpoint_freq=2))
    result = run([python, 'basicsr/train.py'], fork, opt_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (fork / 'experiments/in_fork/models/net_history_latest.pth').exists()

    assert dropin(python, 'remove', fork).returncode == 0
    assert not any('dckd_ext' in f for d in ('archs', 'losses', 'models') for f in os.listdir(fork / 'basicsr' / d))
    assert (fork / 'basicsr/models/sr_model.py').exists()


def test_dropin_reports_a_fork_that_registers_one_of_our_names(workspace, basicsr_checkout):
    fork, env, python = basicsr_checkout
    (fork / 'basicsr/models/their_kd_model.py').write_text(
        'from basicsr.utils.registry import MODEL_REGISTRY\n\n\n'
        '@MODEL_REGISTRY.register()\nclass DCKDModel:\n    pass\n')
    dropin(python, 'install', fork)
    opt_path = write_options(fork, dckd_options(workspace, 'clash', total_iter=2, checkpoint_freq=2))
    result = run([python, 'basicsr/train.py'], fork, opt_path, env=env)
    assert result.returncode != 0
    assert "cannot register 'DCKDModel'" in result.stderr and 'their_kd_model' in result.stderr


def test_dropin_never_touches_files_it_did_not_write(basicsr_checkout, tmp_path):
    fork, _, python = basicsr_checkout
    theirs = fork / 'basicsr/models/dckd_ext_model.py'
    theirs.write_text('# the fork owns this file\n')
    result = dropin(python, 'install', fork)
    assert result.returncode != 0 and 'not written by dckd-dropin' in result.stderr
    assert theirs.read_text() == '# the fork owns this file\n'
    assert not (fork / 'basicsr/archs/dckd_ext_arch.py').exists()
    assert not list((tmp_path / 'env').rglob('dckd_dropin.pth'))  # nor the start-up hook: nothing at all
    theirs.unlink()
    hook = next((tmp_path / 'env').rglob('site-packages')) / 'dckd_dropin.pth'
    hook.write_text('import this_environments_own_hook\n')
    result = dropin(python, 'install', fork)
    assert result.returncode != 0 and f'{hook} exists and was not written by dckd-dropin' in result.stderr
    assert hook.read_text() == 'import this_environments_own_hook\n' and not theirs.exists()


def test_the_start_up_hook_stays_while_another_fork_of_the_environment_needs_it(tmp_path):
    python, own_site = environment_of_its_own(tmp_path / 'env')
    hook = os.path.join(own_site, 'dckd_dropin.pth')
    first, _ = basicsr_project(tmp_path / 'first')
    second, _ = basicsr_project(tmp_path / 'second')
    for project in (first, second, first):  # a second install of one fork changes nothing
        assert dropin(python, 'install', project).returncode == 0
    removed = dropin(python, 'remove', first)
    assert removed.returncode == 0 and f'kept {hook}: the start-up hook serves {second}' in removed.stdout
    removed = dropin(python, 'remove', second)
    assert removed.returncode == 0 and f'removed {hook}' in removed.stdout and not os.path.exists(hook)


# a BasicSR-based project as HAT is laid out: its own package, basicsr from the environment. The package
# imports its folders, so basicsr, and basicsr.data.degradations (as HAT's Real-ESRGAN dataset does),
# which imports torchvision.transforms.functional_tensor, before any file of its archs/ is read.
PROJECT_FILES = {
    '.gitignore': 'experiments/\ntb_logger/\nresults/\n__pycache__/\n',
    'myproj/__init__.py': ''.join(f'from .{folder} import *  # noqa: F401,F403\n' for folder in ('data', 'archs', 'models')),
    'myproj/data/__init__.py': (
        'import importlib\nfrom os import path as osp\n\nfrom basicsr.utils import scandir\n\n'
        'data_folder = osp.dirname(osp.abspath(__file__))\n'
        "dataset_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(data_folder) if v.endswith('_dataset.py')]\n"
        "_dataset_modules = [importlib.import_module(f'myproj.data.{name}') for name in dataset_filenames]\n"),
    'myproj/data/noisy_paired_image_dataset.py': (
        'from basicsr.data.degradations import random_add_gaussian_noise\n'
        'from basicsr.data.paired_image_dataset import PairedImageDataset\n'
        'from basicsr.utils import img2tensor, tensor2img\n'
        'from basicsr.utils.registry import DATASET_REGISTRY\n\n\n'
        '@DATASET_REGISTRY.register()\nclass NoisyPairedImageDataset(PairedImageDataset):\n'
        '    """Paired images, Gaussian noise added to the LQ one."""\n\n'
        '    def __getitem__(self, index):\n        item = super().__getitem__(index)\n'
        "        noisy = random_add_gaussian_noise(tensor2img(item['lq']) / 255., sigma_range=(1, 10))\n"
        "        item['lq'] = img2tensor(noisy, bgr2rgb=True, float32=True)\n        return item\n"),
    'myproj/archs/__init__.py': (
        'import importlib\nfrom os import path as osp\n\nfrom basicsr.utils import scandir\n\n'
        'arch_folder = osp.dirname(osp.abspath(__file__))\n'
        "arch_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(arch_folder) if v.endswith('_arch.py')]\n"
        "_arch_modules = [importlib.import_module(f'myproj.archs.{name}') for name in arch_filenames]\n"),
    'myproj/archs/bicubic_residual_arch.py': (
        'from torch import nn\nfrom torch.nn import functional as F\n\n'
        'from basicsr.utils.registry import ARCH_REGISTRY\n\n\n'
        '@ARCH_REGISTRY.register()\nclass BicubicResidual(nn.Module):\n'
        '    """Bicubic upsampling plus a learned residual."""\n\n'
        '    def __init__(self, upscale):\n        super().__init__()\n        self.upscale = upscale\n'
        '        self.conv = nn.Conv2d(3, 3, 3, padding=1)\n\n'
        '    def forward(self, x):\n'
        "        up = F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)\n"
        '        return up + self.conv(up)\n'),
    'myproj/models/__init__.py': (
        'import importlib\nfrom os import path as osp\n\nfrom basicsr.utils import scandir\n\n'
        'model_folder = osp.dirname(osp.abspath(__file__))\n'
        "model_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(model_folder) if v.endswith('_model.py')]\n"
        "_model_modules = [importlib.import_module(f'myproj.models.{name}') for name in model_filenames]\n"),
    'myproj/models/padded_sr_model.py': (
        'from torch.nn import functional as F\n\nfrom basicsr.models.sr_model import SRModel\n'
        'from basicsr.utils.registry import MODEL_REGISTRY\n\n\n'
        '@MODEL_REGISTRY.register()\nclass PaddedSRModel(SRModel):\n'
        '    """Its own validation padding, as HATModel has."""\n\n'
        '    def test(self):\n        height, width = self.lq.shape[-2:]\n        lq = self.lq\n'
        "        self.lq = F.pad(lq, (0, -width % 4, 0, -height % 4), mode='reflect')\n"
        '        super().test()\n        self.lq = lq\n'
        "        scale = self.opt['scale']\n"
        '        self.output = self.output[..., :height * scale, :width * scale]\n'),
    'myproj/train.py': (
        'from os import path as osp\n\nimport myproj.archs  # noqa: F401\nimport myproj.models  # noqa: F401\n'
        'from basicsr.train import train_pipeline\n\n'
        "if __name__ == '__main__':\n    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))\n"),
}


def basicsr_project(root):
    """PROJECT_FILES under `root`; (root, the environment variables that make its package importable)."""
    for relative, text in PROJECT_FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root, dict(os.environ, PYTHONPATH=str(root))


def environment_of_its_own(folder):
    """(its Python, its site-packages) of a new virtual environment at `folder` that sees this one's
    packages (torch, basicsr, dckd...) but has a site-packages of its own, where dckd-dropin writes its
    start-up hook: as in a user's environment, and without touching the one the tests run in."""
    subprocess.run([os.path.join(sys.base_prefix, 'bin', 'python3'), '-m', 'venv', '--without-pip', str(folder)],
                   check=True)
    python = str(folder / 'bin' / 'python')
    own_site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                              capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(own_site, '00_packages_of_the_test_environment.pth'), 'w') as f:
        f.writelines(f'import site; site.addsitedir({directory!r})\n' for directory in site.getsitepackages())
    return python, own_site


def git(project, *args):
    return subprocess.run(['git', *args], cwd=project, capture_output=True, text=True, check=True).stdout


def test_dropin_makes_the_train_py_of_a_basicsr_based_project_train_dckd(workspace, tmp_path):
    """A project with its own package scanning archs/, models/ and data/ (no losses/), its own arch,
    model and dataset, its own train.py calling BasicSR's train_pipeline, and a package that imports
    basicsr first, as HAT's does. basicsr imports torchvision.transforms.functional_tensor, which this
    torchvision lacks: the project's train.py cannot start until `dckd-dropin install`, whose start-up
    hook in the environment installs dckd's import fix first; it then trains a DCKD student from a
    teacher of its own arch, with the teacher check on. `remove` takes the hook away (the train.py
    fails as before) and leaves `git status` clean."""
    assert not os.path.exists(os.path.join(os.path.dirname(torchvision.transforms.__file__), 'functional_tensor.py'))
    project, env = basicsr_project(tmp_path / 'project')
    git(project, 'init', '-q')
    git(project, 'add', '.')
    git(project, '-c', 'user.name=u', '-c', 'user.email=u@u', 'commit', '-qm', 'project')
    python, own_site = environment_of_its_own(tmp_path / 'env')
    no_fix = "No module named 'torchvision.transforms.functional_tensor'"
    before = subprocess.run([python, 'myproj/train.py'], cwd=project, capture_output=True, text=True, env=env)
    assert before.returncode != 0 and no_fix in before.stderr, before.stderr[-3000:]

    installed = dropin(python, 'install', project)
    assert installed.returncode == 0, installed.stderr
    assert sorted(f for f in os.listdir(project / 'myproj/archs') if 'dckd' in f) == ['dckd_ext_arch.py']
    assert sorted(f for f in os.listdir(project / 'myproj/models') if 'dckd' in f) == ['dckd_ext_model.py']
    assert sorted(f for f in os.listdir(project / 'myproj/data') if 'dckd' in f) == ['dckd_ext_dataset.py']
    hook = os.path.join(own_site, 'dckd_dropin.pth')
    assert f'wrote {hook}: a start-up hook' in installed.stdout

    zero = {'conv.weight': torch.zeros(3, 3, 3, 3), 'conv.bias': torch.zeros(3)}  # exactly bicubic
    torch.save({'params': zero}, tmp_path / 'bicubic_teacher.pth')
    opt = dckd_options(workspace, 'from_project_teacher', total_iter=2, checkpoint_freq=2)
    opt['network_t'] = {'type': 'BicubicResidual', 'upscale': SCALE}
    opt['path']['pretrain_network_t'] = str(tmp_path / 'bicubic_teacher.pth')
    opt['train']['teacher_check'] = True
    opt['datasets']['train']['type'] = 'NoisyPairedImageDataset'  # the project's own
    opt_path = write_options(tmp_path, opt)
    result = run([python, 'myproj/train.py'], project, opt_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((project / 'experiments/from_project_teacher').glob('train_*.log')).read_text()
    assert 'Teacher check on tiny_val' in log  # dckd's pipeline runs inside the project's train.py
    assert (project / 'experiments/from_project_teacher/models/net_history_2.pth').exists()

    removed = dropin(python, 'remove', project)
    assert removed.returncode == 0 and f'removed {hook}' in removed.stdout, removed.stderr
    assert git(project, 'status', '--porcelain') == '' and not os.path.exists(hook)
    after = subprocess.run([python, 'myproj/train.py'], cwd=project, capture_output=True, text=True, env=env)
    assert after.returncode != 0 and no_fix in after.stderr, after.stderr[-3000:]


def test_dropin_names_what_a_folder_that_is_no_fork_lacks(tmp_path):
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg/__init__.py').write_text('')
    done = dropin(environment_of_its_own(tmp_path / 'env')[0], 'install', tmp_path)
    assert done.returncode != 0 and 'neither a BasicSR checkout' in done.stderr and '(pkg)' in done.stderr
