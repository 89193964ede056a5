"""Real-world distillation trains through dckd-train as Real-ESRGAN trains, on the CPU, and resumes exactly.

The run a user of Real-ESRGAN would write, shrunk: real photographs (scikit-image's) through BasicSR's
RealESRGANDataset (its kernels drawn in two data workers), the second-order degradation, the
training pair pool, a Real-ESRGAN Compact teacher read from its model file (PretrainedModel), a
compact student, DCKD (Logits KD, DCR with negatives from the same degradations, DMM), the
perceptual loss on VGG19 weights in torchvision's layout (random, written by the test: the real file
cannot be downloaded here) and the GAN with UNetDiscriminatorSN. N + N iterations resumed equal
2N straight: student, EMA, discriminator, history model, both optimizers, the pool and the losses;
also with two gloo processes, each with its own pool.
"""
import os
import re
import shutil

import cv2
import pytest
import torch
import yaml

import dckd_models  # noqa: F401  (registers; compatibility fix first)
from basicsr.archs import build_network
from conftest import TINY_VQGAN
from test_realworld_degradation import KERNELS, write_photographs
from test_pipeline import TRAIN
from test_resume import logged_losses, train

pytestmark = pytest.mark.slow
SCALE, GT_SIZE, BATCH = 4, 64, 2
VGG_FILE = 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'  # where BasicSR's perceptual loss reads it
TEACHER = {'type': 'SRVGGNetCompact_basicsr', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_conv': 4,
           'upscale': SCALE, 'act_type': 'prelu'}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Photographs with a meta_info list, a held-out pair for validation, the teacher's model file
    (realesr-general-x4v3's layout under 'params', smaller) and a VQGAN checkpoint."""
    from skimage import data as images
    root = tmp_path_factory.mktemp('realworld')
    write_photographs(root)
    (root / 'val_lq').mkdir()  # a held-out photograph without ground truth, as real inputs come
    held_out = cv2.resize(images.camera()[64:320, 64:320], (64, 64), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / 'val_lq' / 'camera.png'), cv2.cvtColor(held_out, cv2.COLOR_GRAY2BGR))
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(TEACHER)).state_dict()}, root / 'realesr-tiny-x4.pth')
    torch.save({'params': build_network(dict(TINY_VQGAN)).state_dict()}, root / 'vqgan.pth')
    return root


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """VGG19's weights in torchvision's layout (random: the real file cannot be downloaded here)."""
    from torchvision.models import vgg19
    path = tmp_path_factory.mktemp('vgg') / os.path.basename(VGG_FILE)
    torch.save(vgg19().state_dict(), path)
    return path


def realworld_options(root, name, total_iter, checkpoint_freq=1):
    """DCKD with the GAN (the second stage of Real-ESRGAN's recipe), shrunk."""
    return {
        'name': name, 'model_type': 'RealWorldKDModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
        'gt_size': GT_SIZE, 'queue_size': 4, 'l1_gt_usm': True, 'percep_gt_usm': True, 'gan_gt_usm': False,
        'datasets': {
            'train': {'name': 'photos', 'type': 'RealESRGANDataset_basicsr', 'dataroot_gt': str(root / 'gt'),
                      'meta_info': str(root / 'meta_info.txt'), 'io_backend': {'type': 'disk'}, **KERNELS,
                      'use_hflip': True, 'use_rot': False, 'num_worker_per_gpu': 2, 'batch_size_per_gpu': BATCH,
                      'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {'name': 'held_out', 'type': 'SingleImageDataset', 'dataroot_lq': str(root / 'val_lq'),
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': {**TEACHER, 'num_feat': 8, 'num_conv': 2},
        'network_t': {'type': 'PretrainedModel', 'path': str(root / 'realesr-tiny-x4.pth')},
        'network_vqgan': dict(TINY_VQGAN),
        'network_d': {'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 8, 'skip_connection': True},
        'path': {'pretrain_network_g': None, 'resume_state': None, 'pretrain_network_vqgan': str(root / 'vqgan.pth')},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1,
                                                                           'conv3_4': 1, 'conv4_4': 1, 'conv5_4': 1},
                               'vgg_type': 'vgg19', 'use_input_norm': True, 'perceptual_weight': 1.0,
                               'style_weight': 0, 'range_norm': False, 'criterion': 'l1'},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                        'loss_weight': 0.1},
            'net_d_iters': 1, 'net_d_init_iters': 0,
            'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
            'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001},
            'history': {'source': 'ema', 'attenuation': 0.1, 'steps': [1], 'milestones': []},
            'negatives': {'num': 3, 'pipeline': 'realworld'},
        },
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'niqe': {'type': 'calculate_niqe', 'crop_border': SCALE}}},  # as options/train/realworld
        'logger': {'print_freq': 1, 'save_checkpoint_freq': checkpoint_freq, 'use_tb_logger': False},
    }


def with_vgg(folder, vgg):
    """`folder` with the VGG19 file where BasicSR reads it, as in a Real-ESRGAN checkout."""
    (folder / 'experiments' / 'pretrained_models').mkdir(parents=True, exist_ok=True)
    link = folder / VGG_FILE
    if not link.exists():
        link.symlink_to(vgg)
    return folder


def run(vgg, tmp_path, opt, *extra):
    return train(with_vgg(tmp_path, vgg), opt, *extra)


def test_a_dckd_gan_run_trains_on_degraded_photographs(workspace, vgg_file, tmp_path):
    result = run(vgg_file, tmp_path, realworld_options(workspace, 'realworld', total_iter=3, checkpoint_freq=3))
    experiment = tmp_path / 'experiments' / 'realworld'
    losses = logged_losses(experiment)
    assert sorted(losses) == [1, 2, 3]
    for term in ('l_pix', 'l_percep', 'l_g_gan', 'l_kd', 'l_dcl', 'l_ce', 'l_d_real', 'l_d_fake', 'out_d_real',
                 'out_d_fake'):
        assert all(f'{term}: ' in line for line in losses.values()), (term, losses[1])
    assert sorted(os.listdir(experiment / 'models')) == sorted(
        f'{net}_{label}.pth' for net in ('net_g', 'net_d', 'net_history') for label in (3, 'latest'))
    state = torch.load(experiment / 'training_states' / '3.state', weights_only=True)
    assert len(state['optimizers']) == 2 and len(state['schedulers']) == 2  # student's and discriminator's
    pool = state['pair_pools'][0]
    assert pool['filled'] == 4 and pool['lq'].shape == (4, 3, GT_SIZE // SCALE, GT_SIZE // SCALE)
    assert pool['gt'].shape == (4, 3, GT_SIZE, GT_SIZE)
    # the degraded inputs are not the GT downscaled: noise, blur and JPEG moved them
    bicubic = torch.nn.functional.interpolate(pool['gt'], scale_factor=1 / SCALE, mode='area')
    assert (pool['lq'] - bicubic).abs().mean() > 0.01
    text = result.stderr + (experiment / next(f for f in os.listdir(experiment) if f.endswith('.log'))).read_text()
    assert re.search(r'Validation held_out\s+# niqe: \d+\.\d+', text), text[-2000:]
    assert 'Teacher check skipped: a real-world teacher (RealWorldKDModel)' in text


@pytest.fixture(scope='module')
def straight_and_split(workspace, vgg_file, tmp_path_factory):
    """A folder with 4 iterations straight ('straight') and the first 2 of the same run ('split'),
    trained once for the tests that resume 'split' in copies of it."""
    folder = tmp_path_factory.mktemp('straight_and_split')
    run(vgg_file, folder, realworld_options(workspace, 'straight', total_iter=4))
    run(vgg_file, folder, realworld_options(workspace, 'split', total_iter=2))
    return folder


def copy_of(folder, tmp_path):
    shutil.copytree(folder, tmp_path, symlinks=True, dirs_exist_ok=True)


def test_realworld_runs_resume_exactly(workspace, vgg_file, straight_and_split, tmp_path):
    """2 + 2 iterations with the pool already swapping, from checkpoint 2, equal 4 straight."""
    copy_of(straight_and_split, tmp_path)
    run(vgg_file, tmp_path, realworld_options(workspace, 'split', total_iter=4), '--auto_resume')

    def load(name, file):
        return torch.load(tmp_path / 'experiments' / name / file, weights_only=True)

    for file, keys in (('models/net_g_4.pth', ('params', 'params_ema')), ('models/net_d_4.pth', ('params', )),
                       ('models/net_history_4.pth', ('params', ))):
        a, b = load('straight', file), load('split', file)
        for key in keys:
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), (file, key)
    a, b = load('straight', 'training_states/4.state'), load('split', 'training_states/4.state')
    for optimizer_a, optimizer_b in zip(a['optimizers'], b['optimizers']):
        for state_a, state_b in zip(optimizer_a['state'].values(), optimizer_b['state'].values()):
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert a['schedulers'] == b['schedulers']
    assert all(torch.equal(a['pair_pools'][0][k], b['pair_pools'][0][k]) for k in ('lq', 'gt'))
    straight, split = logged_losses(tmp_path / 'experiments' / 'straight'), logged_losses(
        tmp_path / 'experiments' / 'split')
    assert straight[3] == split[3] and straight[4] == split[4]
    assert straight[3] != straight[4]


def test_a_resume_without_the_pool_differs(workspace, vgg_file, straight_and_split, tmp_path):
    """The pool matters to the check above: a resumed run whose state lost the pool degrades the
    same, but draws other pairs, and its losses differ from the straight run's."""
    copy_of(straight_and_split, tmp_path)
    state_path = tmp_path / 'experiments' / 'split' / 'training_states' / '2.state'
    state = torch.load(state_path, weights_only=True)
    del state['pair_pools']
    torch.save(state, state_path)
    run(vgg_file, tmp_path, realworld_options(workspace, 'split', total_iter=4), '--auto_resume')
    straight, split = logged_losses(tmp_path / 'experiments' / 'straight'), logged_losses(
        tmp_path / 'experiments' / 'split')
    assert straight[3] != split[3]


def test_options_file_is_what_a_user_writes(workspace, vgg_file, tmp_path):
    """The options above pass dckd-train --check (the checks a user runs first)."""
    import subprocess
    path = tmp_path / 'realworld.yml'
    path.write_text(yaml.safe_dump(realworld_options(workspace, 'check', total_iter=1)))
    with_vgg(tmp_path, vgg_file)
    result = subprocess.run(TRAIN + ['-opt', str(path), '--check'], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_gloo_ranks_train_the_gan_and_resume_exactly(workspace, vgg_file, tmp_path):
    """Under DDP (two gloo processes) the discriminator is replicated, each rank degrades its own
    data into its own pool, and 2 + 2 iterations equal 4."""
    for total, extra in ((2, ()), (4, ('--auto_resume', ))):
        train(with_vgg(tmp_path, vgg_file), realworld_options(workspace, 'split', total_iter=total), *extra, ranks=2)
    train(with_vgg(tmp_path, vgg_file), realworld_options(workspace, 'ddp_straight', total_iter=4), ranks=2)

    def load(name, file):
        return torch.load(tmp_path / 'experiments' / name / file, weights_only=True)

    for file, key in (('models/net_g_4.pth', 'params_ema'), ('models/net_d_4.pth', 'params')):
        a, b = load('ddp_straight', file)[key], load('split', file)[key]
        assert all(torch.equal(a[k], b[k]) for k in a), file
    pools = load('split', 'training_states/4.state')['pair_pools']
    assert len(pools) == 2 and not torch.equal(pools[0]['lq'], pools[1]['lq'])


def test_a_resume_with_other_degradation_options_names_them(workspace, vgg_file, tmp_path):
    """The degradation, the kernels, the crop and the pool decide the data stream of a real-world
    run: a resume that changes one of them is told so."""
    run(vgg_file, tmp_path, realworld_options(workspace, 'changed', total_iter=2))
    opt = realworld_options(workspace, 'changed', total_iter=3)
    opt['noise_range2'] = [1, 20]
    opt['datasets']['train']['final_sinc_prob'] = 0.5
    printed = run(vgg_file, tmp_path, opt, '--auto_resume')
    text = printed.stderr + printed.stdout
    assert 'Resume: top-level noise_range2 was [1, 25] and is [1, 20] now' in text
    assert 'Resume: final_sinc_prob was 0.8 and is 0.5 now' in text
