"""Bad input, as a new user writes it: one row per mistake and the message `dckd-train` must give.

Each row changes a valid DCKD run (real LMDBs, teacher and VQGAN checkpoints) in one way and runs
`dckd-train` on it. Every row must end with one message that names the option or file and says
what to do: no traceback, nothing created (no experiments/ folder, so nothing of the user's is
archived or overwritten), every file the user made left as it was.
"""
import copy
import hashlib
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.archs import build_network
from basicsr.data import DATASET_REGISTRY
from dckd.train import main as dckd_train
from conftest import PROJECT_ROOT, edsr
from test_pipeline import SCALE, dckd_options, make_workspace, paired_lmdbs, write_options


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """The user's files: data, a teacher, a VQGAN, and a few broken or foreign files beside them."""
    files = make_workspace(tmp_path_factory.mktemp('user'))
    root = files['root']
    files['other_gt'], _ = paired_lmdbs(str(root / 'data' / 'other'), 'train', patch=16)  # pairs with nothing else
    torch.manual_seed(1)
    weights = torch.load(root / 'teacher.pth', weights_only=True)['params']
    broken = dict(weights, **{'conv_first.weight': weights['conv_first.weight'].clone()})
    broken['conv_first.weight'][0, 0, 0, 0] = float('nan')
    torch.save({'params': broken}, root / 'teacher_nan.pth')
    torch.save({'params': build_network(edsr(24, 2, SCALE)).state_dict()}, root / 'another_teacher.pth')
    full = (root / 'teacher.pth').read_bytes()
    (root / 'teacher_truncated.pth').write_bytes(full[:len(full) // 2])
    torch.save({'params': {'encoder.conv_in.weight': torch.zeros(1)}}, root / 'not_a_vqgan.pth')
    files['photos'] = root / 'photos'  # HR photographs and their list, for real-world runs
    files['photos'].mkdir()
    for name in ('a', 'b'):
        cv2.imwrite(str(files['photos'] / f'{name}.png'), np.full((48, 48, 3), 128, np.uint8))
    (files['photos'] / 'meta_info.txt').write_text('a.png\nb.png\n')
    files['tiny'] = root / 'tiny'  # a held-out image smaller than one VQGAN token
    files['tiny'].mkdir()
    cv2.imwrite(str(files['tiny'] / 'speck.png'), np.full((3, 5, 3), 128, np.uint8))
    torch.save({'params': build_network(VQGAN_NET).state_dict()}, root / 'vqgan_of_other_sizes.pth')
    return files


def valid_options(workspace):
    return dckd_options(workspace, 'user_run', total_iter=2, checkpoint_freq=2)


def at(opt, dotted):
    """The mapping holding `dotted`'s last key."""
    *parents, _ = dotted.split('.')
    for key in parents:
        opt = opt[key]
    return opt


def set_key(dotted, value):
    def change(opt, ws):
        at(opt, dotted)[dotted.rsplit('.', 1)[-1]] = value
    return change


def rename_key(dotted, new_name):
    def change(opt, ws):
        holder, old = at(opt, dotted), dotted.rsplit('.', 1)[-1]
        holder[new_name] = holder.pop(old)
    return change


def delete_key(dotted):
    def change(opt, ws):
        del at(opt, dotted)[dotted.rsplit('.', 1)[-1]]
    return change


def user_file(dotted, name):
    def change(opt, ws):
        at(opt, dotted)[dotted.rsplit('.', 1)[-1]] = str(ws['root'] / name)
    return change


def realworld(*changes):
    """The valid run made a real-world one (RealWorldKDModel: RealESRGANDataset over the user's
    photographs, the degradation, a discriminator), then `changes`."""
    def change(opt, ws):
        opt.update(model_type='RealWorldKDModel', gt_size=32, queue_size=4)
        opt['datasets']['train'] = {'name': 'photos', 'type': 'RealESRGANDataset_basicsr',
                                    'dataroot_gt': str(ws['photos']), 'meta_info': str(ws['photos'] / 'meta_info.txt'),
                                    'io_backend': {'type': 'disk'}, **REALWORLD_KERNELS, 'use_hflip': True,
                                    'use_rot': False, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}
        opt['train']['negatives'] = {'num': 3, 'pipeline': 'realworld'}
        del opt['train']['teacher_check']  # the default: skipped for a real-world teacher
        opt['network_d'] = {'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 8}
        opt['train'].update(gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1},
                            optim_d={'type': 'Adam', 'lr': 1e-4})
        for one in changes:
            one(opt, ws)
    change.realworld = True
    return change


VQGAN_NET = {'type': 'VQGAN', 'ch': 32, 'ch_mult': [1, 2, 2], 'num_res_blocks': 1, 'z_channels': 8, 'embed_dim': 8,
             'n_embed': 32}  # downsampling factor 4


def vqgan(*changes):
    """The valid run made one that trains a VQGAN (VQGANModel) on the user's HR sub-images, then
    `changes`."""
    def change(opt, ws):
        for key in ('network_t', 'network_vqgan'):
            del opt[key]
        hr = {'type': 'HRImageDataset', 'io_backend': {'type': 'lmdb'}}
        opt.update(model_type='VQGANModel', scale=1, network_g=dict(VQGAN_NET), path={}, datasets={
            'train': {**hr, 'name': 'hr', 'dataroot_gt': ws['train'][0], 'gt_size': 16, 'use_hflip': True,
                      'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2},
            'val': {**hr, 'name': 'hr_val', 'dataroot_gt': ws['val'][0]}})
        opt['train'] = {key: opt['train'][key] for key in ('optim_g', 'scheduler', 'total_iter', 'warmup_iter',
                                                          'pixel_opt')}
        opt['val']['metrics']['psnr']['crop_border'] = 0
        for one in changes:
            one(opt, ws)
    return change


def paired_training_set(opt, ws):
    opt['datasets']['train'] = valid_options(ws)['datasets']['train']


def tiny_held_out_image(opt, ws):
    opt['datasets']['val'].update(dataroot_gt=str(ws['tiny']), io_backend={'type': 'disk'})


# BasicSR 1.3.4.9 (HAT's pin) has no RealESRGANDataset: real-world runs need 1.4.2
HAS_REALWORLD_DATA = 'RealESRGANDataset_basicsr' in DATASET_REGISTRY


REALWORLD_KERNELS = {
    'blur_kernel_size': 21, 'kernel_list': ['iso', 'aniso'], 'kernel_prob': [0.5, 0.5], 'sinc_prob': 0.1,
    'blur_sigma': [0.2, 3], 'betag_range': [0.5, 4], 'betap_range': [1, 2], 'blur_kernel_size2': 21,
    'kernel_list2': ['iso', 'aniso'], 'kernel_prob2': [0.5, 0.5], 'sinc_prob2': 0.1, 'blur_sigma2': [0.2, 1.5],
    'betag_range2': [0.5, 4], 'betap_range2': [1, 2], 'final_sinc_prob': 0.8,
}


def other_lq(opt, ws):
    opt['datasets']['train']['dataroot_gt'] = ws['other_gt']


def tiny_images_big_patch(opt, ws):
    opt['datasets']['train']['gt_size'] = 48  # the sub-images are 32x32 (LQ 16x16)


# (id, change to the valid run, expected message (regex), extra dckd-train arguments)
CASES = [
    # misspelt keys, at every level dckd owns
    ('train key', rename_key('train.contrastive_opt', 'contrastive_op'),
     r'train.contrastive_op: unknown option; did you mean contrastive_opt\?', []),
    ('history key', set_key('train.history.atenuation', 0.5),
     r'train.history.atenuation: unknown option; did you mean attenuation\?', []),
    ('negatives key', set_key('train.negatives.nmu', 3), r'train.negatives.nmu: unknown option; did you mean num\?', []),
    ('negatives.probs key', set_key('train.negatives.probs', {'noize': 1.0}),
     r'train.negatives.probs.noize: unknown option; did you mean noise\?', []),
    ('loss option', set_key('train.contrastive_opt.level_wieghts', [1, 1, 1, 1, 1]),
     r'train.contrastive_opt.level_wieghts: unknown option of DynamicContrastiveLoss; did you mean level_weights\?',
     []),
    ('network_vqgan key', set_key('network_vqgan.ch_mul', [1, 2]),
     r'network_vqgan.ch_mul: unknown option of VQGANEncoder; did you mean ch_mult\?', []),
    ('cost key', set_key('train.frozen_chunks', 4), r'train.frozen_chunks: unknown option; did you mean frozen_chunk\?',
     []),
    ('path key', rename_key('path.pretrain_network_t', 'pretrain_netwrok_t'),
     r'path.pretrain_netwrok_t: unknown option; did you mean pretrain_network_t\?', []),
    ('top-level key', rename_key('network_vqgan', 'network_vqgn'),
     r'network_vqgn: unknown option; did you mean network_vqgan\?', []),
    ('key BasicSR 1.4.2 does not know either', set_key('train.use_grad_clip', True),
     r'train.use_grad_clip: unknown option', []),
    ('network argument', set_key('network_g.num_blocks', 4),
     r'network_g.num_blocks: unknown option of EDSR; did you mean num_block\?', []),
    ('registered names', set_key('train.kd_opt.type', 'L1loss'),
     r"train.kd_opt.type: no loss in BasicSR's LOSS_REGISTRY named 'L1loss'; did you mean L1Loss\?", []),
    ('arch name', set_key('network_g.type', 'EDSRR'),
     r"network_g.type: no network in BasicSR's ARCH_REGISTRY named 'EDSRR'; did you mean EDSR\?.*import_modules", []),
    # wrong types and values
    ('number in quotes', set_key('train.negatives.num', '5'),
     r"train.negatives.num must be an integer, got '5' \(text\); write the number without quotes", []),
    ('value out of range', set_key('train.history.attenuation', 1.5),
     r'train.history.attenuation must be in \[0, 1\], got 1.5', []),
    ('float written as 1e-4', set_key('train.optim_g.lr', '1e-4'),
     r"train.optim_g.lr must be a number, got '1e-4' \(text\); write the number without quotes \(YAML reads 1e-4 as "
     r'text: write 1.0e-4\)', []),
    ('loss weight as text', set_key('train.kd_opt.loss_weight', 'one'),
     r"train.kd_opt.loss_weight must be a number, got 'one' \(text\); write a number$", []),
    ('level_weights of the wrong length', set_key('train.contrastive_opt.level_weights', [1, 1, 1, 1]),
     r'train.contrastive_opt.level_weights has 4 weights, but network_vqgan gives 5 feature levels', []),
    ('VQGAN levels against the default level_weights', set_key('network_vqgan.ch_mult', [1, 1, 2, 2]),
     r"train.contrastive_opt.level_weights is not set, so the paper's 5 weights apply, but network_vqgan gives 4 "
     r'feature levels \(one per ch_mult entry\): give 4 weights', []),
    ('unknown choice', set_key('train.history.source', 'emaa'),
     r'train.history.source must be one of ema, student, got .emaa.; did you mean ema\?', []),
    ('schedule lengths', set_key('train.history', {'steps': [1, 2], 'milestones': [5, 9]}),
     r'train.history needs one more value in steps than in milestones', []),
    ('progressive stage larger than the loader', set_key('train.progressive',
                                                         {'milestones': [1], 'gt_sizes': [32, 48], 'batch_sizes': [2, 1]}),
     r'train.progressive asks for gt_size 48 but datasets.train.gt_size is 32: set datasets.train.gt_size to the '
     r'largest stage, 48', []),
    ('scale mismatch', set_key('network_t.upscale', 4), r'network_t.upscale = 4 does not match scale = 2', []),
    ('model name', set_key('model_type', 'DCKDModell'), r"model_type: no model named 'DCKDModell'; did you mean DCKDModel\?",
     []),
    ('teacher term without teacher', delete_key('network_t'), r'network_t is missing: kd_opt, lcr_opt, .* need a teacher',
     []),
    # checkpoints
    ('missing teacher checkpoint', user_file('path.pretrain_network_t', 'no_such_teacher.pth'),
     r'path.pretrain_network_t: the teacher checkpoint not found: .*no_such_teacher.pth. Put the file there or '
     r'correct the path', []),
    ('missing published teacher', set_key('path.pretrain_network_t', 'experiments/pretrained_models/SwinIR/'
                                          '001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth'),
     r'path.pretrain_network_t: the teacher checkpoint not found: .*SwinIR-M_x4.pth. Get it with: dckd-fetch '
     r'swinir_m_x4$', []),
    ('truncated teacher checkpoint', user_file('path.pretrain_network_t', 'teacher_truncated.pth'),
     r'path.pretrain_network_t: cannot load checkpoint .*teacher_truncated.pth.*damaged.*download it again', []),
    ('checkpoint of another network', user_file('path.pretrain_network_t', 'another_teacher.pth'),
     r'path.pretrain_network_t: .*another_teacher.pth does not fit network_t \(EDSR\): other shapes', []),
    ('param_key absent from the file', set_key('path.param_key_t', 'params_ema'),
     r"path.param_key_t: no 'params_ema' in .*teacher.pth; its top-level keys are \['params'\]", []),
    ('NaN in the teacher', user_file('path.pretrain_network_t', 'teacher_nan.pth'),
     r'path.pretrain_network_t: .*teacher_nan.pth holds NaN or inf values in 1 tensor\(s\), e.g. \[.conv_first.weight.\]',
     []),
    ('missing VQGAN checkpoint', user_file('path.pretrain_network_vqgan', 'no_such_vqgan.ckpt'),
     r'path.pretrain_network_vqgan: the VQGAN encoder checkpoint not found', []),
    ('perceptual loss without its VGG weights', set_key('train.perceptual_opt', {'type': 'PerceptualLoss',
                                                                                'layer_weights': {'conv5_4': 1.0}}),
     r"train.perceptual_opt: PerceptualLoss needs VGG19's ImageNet weights, read from "
     r'experiments/pretrained_models/vgg19-dcbb9e9d.pth .*Get them with: dckd-fetch vgg19$', []),
    ('not a VQGAN checkpoint', user_file('path.pretrain_network_vqgan', 'not_a_vqgan.pth'),
     r'path.pretrain_network_vqgan: VQGAN checkpoint .*not_a_vqgan.pth lacks \d+ encoder key', []),
    # data
    ('missing data root', set_key('datasets.train.dataroot_lq', 'datasets/DIV2K/no_such_LR.lmdb'),
     r'datasets.train.dataroot_lq: no LMDB at datasets/DIV2K/no_such_LR.lmdb.*dckd-prepare', []),
    ('GT and LQ that do not pair', other_lq, r'datasets.train: GT and LQ keys differ.*do not pair', []),
    ('LQ patch larger than the images', tiny_images_big_patch,
     r'datasets.train.gt_size = 48: the LQ patch \(24px\) is larger than the smallest LQ image', []),
    # BasicSR's own dataset and loss options
    ('flip key misspelt', rename_key('datasets.train.use_hflip', 'use_flip'),
     r'datasets.train.use_flip: unknown option; did you mean use_hflip\?', []),
    ('patch key misspelt', rename_key('datasets.train.gt_size', 'gt_sise'),
     r'datasets.train.gt_sise: unknown option; did you mean gt_size\?', []),
    ('no images a batch', set_key('datasets.train.batch_size_per_gpu', 0),
     r'datasets.train.batch_size_per_gpu must be >= 1, got 0', []),
    ('negative workers', set_key('datasets.train.num_worker_per_gpu', -2),
     r'datasets.train.num_worker_per_gpu must be >= 0, got -2', []),
    ('enlarge ratio as text', set_key('datasets.train.dataset_enlarge_ratio', '10'),
     r"datasets.train.dataset_enlarge_ratio must be an integer, got '10' \(text\)", []),
    ('loss reduction', set_key('train.kd_opt.reduction', 'avg'),
     r"train.kd_opt.reduction must be one of none, mean, sum, got 'avg'$", []),
    ('io backend misspelt', set_key('datasets.train.io_backend.type', 'lmbd'),
     r"datasets.train.io_backend.type must be one of disk, lmdb, memcached, got 'lmbd'; did you mean lmdb\?", []),
    ('flip as text', set_key('datasets.train.use_rot', 'yes'), r"datasets.train.use_rot must be true or false", []),
    ('validation set key misspelt', set_key('datasets.val.dataroot_gtt', 'x'),
     r'datasets.val.dataroot_gtt: unknown option; did you mean dataroot_gt\?', []),
    # several processes, other projects
    ('manual_seed missing under DDP', delete_key('manual_seed'),
     r'manual_seed is not set: with several processes \(--launcher pytorch\)', ['--launcher', 'pytorch']),
    ('module that is not installed', set_key('import_modules', ['lab_that_is_not_installed.archs']),
     r"import_modules: cannot import 'lab_that_is_not_installed.archs'.*pip install", []),
    ('bad value through --force_yml', lambda opt, ws: None, r'train.history.attenuation must be in \[0, 1\], got 2',
     ['--force_yml', 'train:history:attenuation=2']),
    ('--import of a module that is not installed', lambda opt, ws: None,
     r"--import: cannot import 'nowhere_archs'", ['--import', 'nowhere_archs']),
    # quantization-aware training
    ('quantization key misspelt', set_key('train.quantization', {'start_iters': 0}),
     r'train.quantization.start_iters: unknown option; did you mean start_iter\?', []),
    ('quantization with taps of the student', lambda opt, ws: opt['train'].update(
        quantization={}, feature_opt={'type': 'L1Loss', 'loss_weight': 1.0, 'student_taps': ['conv_first'],
                                      'teacher_taps': ['conv_first']}),
     r'train.feature_opt taps modules of the student, which its fake-quantized twin under train.quantization does '
     r'not have', []),
    ('quantization in bfloat16 mode', lambda opt, ws: opt['train'].update(quantization={}, precision='bfloat16'),
     r'train.quantization with train.precision bfloat16: fake quantization runs in float32; set precision: float32',
     []),
    ('x86 quantization per tensor', set_key('train.quantization', {'per_channel': False}),
     r'train.quantization.per_channel: false, but backend x86 quantizes weights per output channel only', []),
    ('ranges frozen before quantization starts', set_key('train.quantization', {'start_iter': 2, 'freeze_iter': 1}),
     r'train.quantization.freeze_iter \(1\) comes before start_iter \(2\)', []),
    # real-world runs: RealESRGANDataset's kernels, the degradation, the discriminator
    ('kernel option missing', realworld(delete_key('datasets.train.final_sinc_prob')),
     r'datasets.train.final_sinc_prob is missing: probability of the final sinc filter \(Real-ESRGAN: 0.8\)$', []),
    ('kernel probabilities and types differ', realworld(set_key('datasets.train.kernel_prob2', [1.0])),
     r'datasets.train needs one kernel_prob2 per kernel_list2 entry; got 1 probabilities for 2 kernel types', []),
    ('kernel type misspelt', realworld(set_key('datasets.train.kernel_list', ['iso', 'aniso_'])),
     r"datasets.train.kernel_list\[1\] must be one of .*, got 'aniso_'; did you mean aniso\?", []),
    ('image list missing', realworld(set_key('datasets.train.meta_info', 'meta_info_DF2K.txt')),
     r'datasets.train.meta_info: image list not found: meta_info_DF2K.txt. Write one path per line', []),
    ('real-world data with the bicubic model', realworld(set_key('model_type', 'DCKDModel')),
     r'datasets.train.type RealESRGANDataset_basicsr gives HR images and blur kernels; the LQ images are made by '
     r'model_type RealWorldKDModel, not DCKDModel', []),
    ('real-world model with paired data', lambda opt, ws: opt.update(model_type='RealWorldKDModel', gt_size=32),
     r'datasets.train.type is PairedImageDataset: RealWorldKDModel degrades HR images .* use type: '
     r'RealESRGANDataset_basicsr', []),
    ('resize probabilities that do not add up', realworld(set_key('resize_prob', [0.2, 0.7, 0.2])),
     r'resize_prob holds the probabilities of resizing up, down and keeping the size: they must add up to 1', []),
    ('pool not a multiple of the batch', realworld(set_key('queue_size', 5)),
     r'queue_size = 5 must be a multiple of datasets.train.batch_size_per_gpu = 2', []),
    ('LQ patch too small for the real-world negatives', realworld(set_key('gt_size', 16)),
     r'train.negatives.pipeline = realworld blurs LQ patches with 21x21 kernels: .* raise gt_size to 22', []),
    ('discriminator without its optimizer', realworld(delete_key('train.optim_d')),
     r'train.optim_d missing: the GAN stage needs network_d, train.gan_opt and train.optim_d together', []),
    ('discriminator argument misspelt', realworld(set_key('network_d.num_feats', 8)),
     r'network_d.num_feats: unknown option of UNetDiscriminatorSN_basicsr; did you mean num_feat\?', []),
    ('NIQE on images too small for it', set_key('val.metrics', {'niqe': {'type': 'calculate_niqe', 'crop_border': 2}}),
     r'val.metrics.niqe: NIQE needs at least two 96x96 blocks of a restored image; the smallest image of '
     r'datasets.val \(.*: 32x32, restored and cropped 60x60\) has 0', []),
    ('missing discriminator checkpoint', realworld(set_key('path.pretrain_network_d', 'net_d_stage1.pth')),
     r'path.pretrain_network_d: the discriminator checkpoint not found: net_d_stage1.pth', []),
    # training a VQGAN (VQGANModel), and a DCKD run in its feature space
    ('VQGAN run whose network_g is no VQGAN', vqgan(set_key('network_g', edsr(8, 1, 1))),
     r'network_g.type is EDSR: VQGANModel trains a VQGAN \(type: VQGAN', []),
    ('distillation term in a VQGAN run', vqgan(set_key('train.kd_opt', {'type': 'L1Loss'})),
     r'train.kd_opt: VQGANModel trains a VQGAN and distils nothing; remove it', []),
    ('VQGAN run on paired data', vqgan(paired_training_set),
     r'datasets.train.type is PairedImageDataset: VQGANModel reconstructs HR images; use type: HRImageDataset', []),
    ('VQGAN patch no multiple of its downsampling', vqgan(set_key('datasets.train.gt_size', 18)),
     r"datasets.train.gt_size = 18 is not a multiple of the VQGAN's downsampling factor 4 .*choose a multiple of 4",
     []),
    ('image smaller than one VQGAN token', vqgan(tiny_held_out_image),
     r"datasets.val: 1 image\(s\) smaller than the VQGAN's downsampling factor 4 \(one token\), e.g. speck \(5x3\)",
     []),
    ('discriminator start without a discriminator', vqgan(set_key('train.disc_start', 5)),
     r'train.disc_start = 5 needs a discriminator: add network_d \(type: PatchDiscriminator\)', []),
    ('VQGAN run under several processes', vqgan(), r'--launcher pytorch: VQGANModel trains in one process for now',
     ['--launcher', 'pytorch']),
    ('VQGAN file of other sizes', user_file('path.pretrain_network_vqgan', 'vqgan_of_other_sizes.pth'),
     r'path.pretrain_network_vqgan: VQGAN checkpoint .*vqgan_of_other_sizes.pth is a VQGAN of levels 3, attention at '
     r'levels \[\], n_embed 32; network_vqgan asks for levels 5, attention at levels \[4\], n_embed 16', []),
]


def fingerprint(folder):
    """Every file under `folder` with its content hash: what the user made."""
    return {os.path.relpath(os.path.join(root, name), folder):
            hashlib.sha1(open(os.path.join(root, name), 'rb').read()).hexdigest()
            for root, _, names in os.walk(folder) for name in names}


def run_dckd_train(options_file, extra, cwd, monkeypatch):
    """dckd-train as a user runs it (in this process): the message it exits with, or None. torch's
    download cache is an empty one (a machine that has VGG19's weights there must not pass a row)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv('TORCH_HOME', str(cwd / 'torch_home'))
    try:
        dckd_train(['-opt', str(options_file), *extra])
    except SystemExit as stop:
        return str(stop.code)
    return None


def test_the_table_has_at_least_25_rows_with_distinct_messages():
    assert len(CASES) >= 25
    assert len({case[2] for case in CASES}) == len(CASES)


@pytest.mark.parametrize('change, message, extra', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_stops_with_one_message_before_any_work(workspace, tmp_path, monkeypatch, change, message, extra):
    if getattr(change, 'realworld', False) and not HAS_REALWORLD_DATA:
        pytest.skip('this BasicSR has no RealESRGANDataset (test_realworld_runs_on_an_older_basicsr_name_the_version)')
    opt = copy.deepcopy(valid_options(workspace))
    change(opt, workspace)
    options_file = write_options(tmp_path, opt)
    before = fingerprint(workspace['root'])
    said = run_dckd_train(options_file, extra, tmp_path, monkeypatch)
    assert said is not None, 'dckd-train accepted it'
    assert said.startswith(f'dckd-train: {options_file}: ')
    assert re.search(message, said), said
    assert 'Traceback' not in said
    assert not (tmp_path / 'experiments').exists()  # stopped before BasicSR made or archived anything
    assert fingerprint(workspace['root']) == before


def test_the_valid_run_passes_the_same_checks(workspace, tmp_path, monkeypatch, capsys):
    options_file = write_options(tmp_path, valid_options(workspace))
    assert run_dckd_train(options_file, ['--check'], tmp_path, monkeypatch) is None
    printed = capsys.readouterr().out
    assert printed.startswith(f'{options_file}: OK')
    assert 'teacher   network_t: EDSR' in printed and 'data      train tiny:' in printed
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.skipif(not HAS_REALWORLD_DATA, reason='this BasicSR has no RealESRGANDataset')
def test_the_valid_realworld_run_passes_the_same_checks(workspace, tmp_path, monkeypatch, capsys):
    """The base of the real-world rows: every row above stops for its own mistake alone."""
    opt = valid_options(workspace)
    realworld()(opt, workspace)
    options_file = write_options(tmp_path, opt)
    assert run_dckd_train(options_file, ['--check'], tmp_path, monkeypatch) is None
    printed = capsys.readouterr().out
    assert 'GAN       network_d: UNetDiscriminatorSN_basicsr' in printed
    assert 'data      train photos: 2 images (disk, meta_info)' in printed
    assert 'discriminator and its Adam state, training pair pool' in printed
    assert 'teacher   check skipped: a real-world teacher (RealWorldKDModel)' in printed


@pytest.mark.skipif(HAS_REALWORLD_DATA, reason='this BasicSR has RealESRGANDataset')
def test_realworld_runs_on_an_older_basicsr_name_the_version(workspace, tmp_path, monkeypatch):
    opt = valid_options(workspace)
    realworld()(opt, workspace)
    said = run_dckd_train(write_options(tmp_path, opt), [], tmp_path, monkeypatch)
    assert said.endswith("(BasicSR registers it from version 1.4.2)")
    assert "datasets.train.type: no dataset named 'RealESRGANDataset_basicsr'" in said


def test_options_files_that_are_missing_moved_or_not_yaml(tmp_path, monkeypatch):
    said = run_dckd_train(tmp_path / 'nowhere.yml', [], tmp_path, monkeypatch)
    assert said == f'dckd-train: {tmp_path / "nowhere.yml"}: options file not found: {tmp_path / "nowhere.yml"}'
    old = os.path.join(PROJECT_ROOT, 'options', 'dckd_swinir_x4.yml')  # the layout of dckd 0.1
    said = run_dckd_train(old, [], tmp_path, monkeypatch)
    assert said.endswith('the options files moved: use '
                         + os.path.join(PROJECT_ROOT, 'options', 'train', 'swinir', 'dckd_swinir_x4.yml'))
    broken = tmp_path / 'broken.yml'
    broken.write_text('name: x\ntrain: {ema_decay: 0.9\n')
    assert 'is not valid YAML' in run_dckd_train(broken, [], tmp_path, monkeypatch)


@pytest.mark.slow
def test_the_command_line_shows_the_message_without_a_traceback(workspace, tmp_path):
    """The same as a user sees it: stderr holds the message alone, the exit status is not 0."""
    opt = valid_options(workspace)
    opt['train']['history']['atenuation'] = 0.5
    options_file = write_options(tmp_path, opt)
    result = subprocess.run([sys.executable, os.path.join(PROJECT_ROOT, 'train.py'), '-opt', str(options_file)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip() == (f'dckd-train: {options_file}: train.history.atenuation: unknown option; '
                                     'did you mean attenuation?')
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.slow
def test_a_loss_that_becomes_nan_stops_training_and_keeps_the_last_good_checkpoint(workspace, tmp_path):
    """A learning rate far too large makes the student's outputs overflow after a few steps. Training
    must stop at the first non-finite loss, name the iteration and the term, and leave every
    checkpoint written before it intact (a checkpoint is written after every iteration here)."""
    opt = dckd_options(workspace, 'diverges', total_iter=30, checkpoint_freq=1, val=False)
    opt['train']['optim_g']['lr'] = 1e8
    options_file = write_options(tmp_path, opt)
    result = subprocess.run([sys.executable, os.path.join(PROJECT_ROOT, 'train.py'), '-opt', str(options_file)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    match = re.match(r'dckd-train: training stopped at iteration (\d+): (l_\w+) = (nan|inf)', last_line)
    assert match, result.stderr[-2000:]
    stopped_at = int(match.group(1))
    assert 1 < stopped_at < 30
    experiment = tmp_path / 'experiments' / 'diverges'
    assert f'The last good checkpoint (iteration {stopped_at - 1}) is kept' in last_line
    states = sorted(int(f.split('.')[0]) for f in os.listdir(experiment / 'training_states'))
    assert states[-1] == stopped_at - 1  # nothing written for the step that diverged
    last = torch.load(experiment / 'models' / f'net_g_{stopped_at - 1}.pth', weights_only=True)
    assert all(torch.isfinite(v).all() for v in last['params'].values())
    log = next(f for f in os.listdir(experiment) if f.endswith('.log'))
    assert f'training stopped at iteration {stopped_at}' in (experiment / log).read_text()
    assert yaml.safe_load(options_file.read_text()) == opt  # the user's options file as it was


def basicsr_srmodel_options(workspace):
    """A teacher's own training, as the demo runs it: BasicSR's SRModel, no teacher, no terms."""
    opt = valid_options(workspace)
    opt.update(model_type='SRModel', network_g=workspace['teacher'])
    for key in ('network_t', 'network_vqgan'):
        del opt[key]
    opt['path'] = {'pretrain_network_g': None, 'resume_state': None}
    opt['train'] = {key: opt['train'][key] for key in ('ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter',
                                                       'pixel_opt')}
    return opt


def test_basicsr_srmodel_runs_get_the_same_checks(workspace, tmp_path, monkeypatch, capsys):
    opt = basicsr_srmodel_options(workspace)
    options_file = write_options(tmp_path, opt)
    assert run_dckd_train(options_file, ['--check'], tmp_path, monkeypatch) is None
    printed = capsys.readouterr().out
    assert 'model     SRModel' in printed and 'data      train tiny:' in printed
    opt['datasets']['train']['use_flip'] = opt['datasets']['train'].pop('use_hflip')
    said = run_dckd_train(write_options(tmp_path, opt), ['--check'], tmp_path, monkeypatch)
    assert said.endswith('datasets.train.use_flip: unknown option; did you mean use_hflip?')
    assert not (tmp_path / 'experiments').exists()


def test_a_dataset_of_another_project_is_let_through_with_one_line(workspace, tmp_path, monkeypatch, capsys):
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.utils.registry import DATASET_REGISTRY

    fork_dataset = type('ForkPairedDataset', (PairedImageDataset, ), {})  # registered for this test only
    monkeypatch.setitem(DATASET_REGISTRY._obj_map, 'ForkPairedDataset', fork_dataset)
    opt = valid_options(workspace)
    opt['datasets']['train'].update(type='ForkPairedDataset', fork_option=3)  # its own option: not ours to judge
    assert run_dckd_train(write_options(tmp_path, opt), ['--check'], tmp_path, monkeypatch) is None
    assert ('data      train: ForkPairedDataset is not a dataset dckd knows: its own options are not checked'
            in capsys.readouterr().out)


def test_a_perceptual_loss_passes_with_vgg19s_weights_in_torchs_cache(workspace, tmp_path, monkeypatch, capsys):
    opt = valid_options(workspace)
    opt['train']['perceptual_opt'] = {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1.0}}
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'  # where torchvision keeps it
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'weights')
    assert run_dckd_train(write_options(tmp_path, opt), ['--check'], tmp_path, monkeypatch) is None
    assert f'vgg       PerceptualLoss weights: {cached}' in capsys.readouterr().out
