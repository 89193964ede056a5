"""The paper-sized option files a user trains and evaluates with (options/*.yml, options/test/*.yml).

For every backbone pair of the paper's SR experiments (SwinIR, RCAN, and the usual EDSR pair) and
every scale (x2, x3, x4) there are three training files that differ only in their losses:

- dckd_<arch>_x<s>.yml:    L1 + Logits KD + DCR + DMM (the method);
- logits_<arch>_x<s>.yml:  L1 + Logits KD (the baseline it improves on);
- scratch_<arch>_x<s>.yml: L1 only, no teacher at all;

and one test file, options/test/test_<arch>_x<s>.yml, that evaluates the trained student.
"""
import copy
import os
import re

import pytest
import torch
import yaml

from basicsr.archs import build_network
from basicsr.models import build_model
from dckd_models import DCKDModel
from dckd.schema import OptionError
from conftest import PROJECT_ROOT, reference_layout

OPTIONS_DIR = os.path.join(PROJECT_ROOT, 'options')
TEST_OPTIONS_DIR = os.path.join(OPTIONS_DIR, 'test')
ARCHS = ('swinir', 'rcan', 'edsr')
SCALES = (2, 3, 4)
KINDS = ('dckd', 'logits', 'scratch')
BENCHMARKS = ('Set5', 'Set14', 'BSD100', 'Urban100')
PAIRS = [(arch, scale) for arch in ARCHS for scale in SCALES]
TRAINING_FILES = [f'{kind}_{arch}_x{scale}.yml' for kind in KINDS for arch, scale in PAIRS]
TEST_FILES = [f'test_{arch}_x{scale}.yml' for arch, scale in PAIRS]
TRAINING_NAME = re.compile(r'^(dckd|logits|scratch)_([a-z]+)_x(\d)\.yml$')

TEACHER_TERMS = ('kd_opt', 'contrastive_opt', 'distribution_opt', 'lcr_opt')
TERMS_ON = {
    'dckd': {'kd_opt', 'contrastive_opt', 'distribution_opt'},  # LCR stays opt-in (commented out)
    'logits': {'kd_opt'},
    'scratch': set(),
}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def training_opt(kind, arch, scale):
    return load(os.path.join(OPTIONS_DIR, f'{kind}_{arch}_x{scale}.yml'))


def evaluation_opt(arch, scale):
    return load(os.path.join(TEST_OPTIONS_DIR, f'test_{arch}_x{scale}.yml'))


def parameter_count(network_opt):
    return sum(p.numel() for p in build_network(copy.deepcopy(network_opt)).parameters())


# ----- every file is there and parses ----------------------------------------------------------


def test_every_training_and_test_file_exists():
    present = set(os.listdir(OPTIONS_DIR))
    assert set(TRAINING_FILES) <= present, sorted(set(TRAINING_FILES) - present)
    present_tests = set(os.listdir(TEST_OPTIONS_DIR))
    assert set(TEST_FILES) <= present_tests, sorted(set(TEST_FILES) - present_tests)


def all_option_files():
    for folder in (OPTIONS_DIR, TEST_OPTIONS_DIR):
        for name in sorted(os.listdir(folder)):
            if name.endswith('.yml'):
                yield os.path.join(folder, name)


@pytest.mark.parametrize('path', list(all_option_files()), ids=lambda p: os.path.relpath(p, OPTIONS_DIR))
def test_every_option_file_is_plain_yaml(path):
    opt = load(path)
    assert isinstance(opt, dict) and opt['name'] and opt['model_type']


# ----- training files: one model, one scale, comparable students ------------------------------


@pytest.mark.parametrize('file_name', TRAINING_FILES)
def test_training_file_uses_dckd_model_and_one_scale_throughout(file_name):
    kind, arch, scale = TRAINING_NAME.match(file_name).groups()
    scale = int(scale)
    opt = training_opt(kind, arch, scale)
    assert opt['name'] == file_name[:-len('.yml')]  # experiments/<name>/ is where test files look
    assert opt['model_type'] == 'DCKDModel'  # scratch and logits are the same model with terms off
    assert opt['scale'] == scale
    assert opt['num_gpu'] == 'auto' and opt['manual_seed'] == 0
    assert opt['network_g']['upscale'] == scale
    if 'network_t' in opt:
        assert opt['network_t']['upscale'] == scale
    train_set = opt['datasets']['train']
    assert train_set['dataroot_lq'] == f'datasets/DIV2K/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'
    assert train_set['gt_size'] == 48 * scale  # LR patch 48
    for index, benchmark in enumerate(BENCHMARKS, 1):
        val_set = opt['datasets'][f'val_{index}']
        assert val_set['name'] == benchmark
        assert val_set['dataroot_gt'] == f'datasets/{benchmark}/GTmod12'
        assert val_set['dataroot_lq'] == f'datasets/{benchmark}/LRbicx{scale}'
    for metric in opt['val']['metrics'].values():
        assert metric['crop_border'] == scale and metric['test_y_channel'] is True


@pytest.mark.parametrize('arch,scale', PAIRS)
def test_the_three_runs_of_a_pair_differ_only_in_their_losses(arch, scale):
    """Same student, data, optimiser, schedule and evaluation; dckd and logits share the teacher."""
    dckd, logits, scratch = (training_opt(kind, arch, scale) for kind in KINDS)
    for key in ('network_g', 'datasets', 'val', 'scale', 'manual_seed'):
        assert dckd[key] == logits[key] == scratch[key], key
    shared_train = ('ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt')
    for key in shared_train:
        assert dckd['train'][key] == logits['train'][key] == scratch['train'][key], key
    assert dckd['network_t'] == logits['network_t']
    for key in ('pretrain_network_t', 'param_key_t', 'strict_load_t'):
        assert dckd['path'][key] == logits['path'][key]
    assert dckd['train']['kd_opt'] == logits['train']['kd_opt']


@pytest.mark.parametrize('file_name', TRAINING_FILES)
def test_training_recipe_is_the_papers(file_name):
    """Spec section 5: Adam (0.9, 0.99), lr 1e-4 / 10 every 100k, 250k iterations, EMA 0.999, batch 16."""
    opt = load(os.path.join(OPTIONS_DIR, file_name))
    train = opt['train']
    assert train['optim_g'] == {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [100000, 200000], 'gamma': 0.1}
    assert train['total_iter'] == 250000 and train['ema_decay'] == 0.999
    assert train['pixel_opt']['type'] == 'L1Loss' and train['pixel_opt']['loss_weight'] == 1.0
    data = opt['datasets']['train']
    assert data['batch_size_per_gpu'] == 16 and data['use_hflip'] and data['use_rot']
    assert data['dataroot_gt'] == 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb' and data['io_backend'] == {'type': 'lmdb'}


# ----- which terms are on -----------------------------------------------------------------------


@pytest.mark.parametrize('file_name', TRAINING_FILES)
def test_each_kind_switches_on_exactly_its_teacher_terms(file_name):
    kind, arch, scale = TRAINING_NAME.match(file_name).groups()
    opt = training_opt(kind, arch, int(scale))
    on = {key for key in TEACHER_TERMS if opt['train'].get(key)}
    assert on == TERMS_ON[kind]
    assert DCKDModel.needs_teacher(opt) == (kind != 'scratch')
    assert ('network_t' in opt) == (kind != 'scratch')  # scratch: no teacher is even described
    assert ('pretrain_network_t' in opt['path']) == (kind != 'scratch')
    assert ('network_vqgan' in opt) == (kind == 'dckd')
    if kind != 'scratch':
        assert opt['train']['kd_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0}


@pytest.mark.parametrize('arch,scale', PAIRS)
def test_dckd_terms_carry_the_paper_weights(arch, scale):
    train = training_opt('dckd', arch, scale)['train']
    assert train['contrastive_opt'] == {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1,
                                        'level_weights': [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0], 'eps': 1e-7}
    assert train['distribution_opt'] == {'type': 'DistributionMappingLoss', 'loss_weight': 0.001, 'mode': 'paper'}
    assert train['history'] == {'source': 'ema', 'attenuation': 0.1, 'steps': [1000, 2000, 3000],
                                'milestones': [100000, 200000]}
    assert train['negatives']['num'] == 5
    assert train['negatives']['probs'] == {'noise': 1.0, 'blur': 0.0, 'resize': 0.0}
    assert train['negatives']['noise'] == {'sigma_range': [1, 30], 'gray_prob': 0.5}


@pytest.mark.parametrize('arch,scale', PAIRS)
def test_dckd_feature_space_is_the_published_vqgan(arch, scale):
    opt = training_opt('dckd', arch, scale)
    assert opt['network_vqgan'] == {
        'type': 'VQGANEncoder', 'ch': 128, 'ch_mult': [1, 1, 2, 2, 4], 'num_res_blocks': 2,
        'attn_resolutions': [16], 'resolution': 256, 'z_channels': 256, 'embed_dim': 256, 'n_embed': 1024,
        'input_range': [-1, 1]}
    assert opt['path']['pretrain_network_vqgan'] == 'experiments/pretrained_models/VQGAN/vqgan_imagenet_f16_1024.ckpt'


def test_vqgan_options_build_the_layout_of_the_published_checkpoint():
    """The published last.ckpt loads strictly only into an encoder with exactly its keys and shapes."""
    layout = reference_layout('vqgan_f16_n1024_encoder.tsv')
    net = build_network(copy.deepcopy(training_opt('dckd', 'swinir', 4)['network_vqgan']))
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == layout


def lcr_line(text):
    """The commented-out `lcr_opt` line of a training file, uncommented and parsed."""
    lines = [line for line in text.splitlines() if line.strip().startswith('# lcr_opt:')]
    assert len(lines) == 1
    return yaml.safe_load(lines[0].strip()[2:].split('  #')[0])['lcr_opt']


@pytest.mark.parametrize('kind', ['dckd', 'logits'])
def test_label_consistency_is_offered_commented_out(kind):
    for arch, scale in PAIRS:
        with open(os.path.join(OPTIONS_DIR, f'{kind}_{arch}_x{scale}.yml')) as f:
            text = f.read()
        assert 'lcr_opt' not in yaml.safe_load(text)['train']
        assert lcr_line(text) == {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5}


# ----- network sizes: Table 1 of the paper -------------------------------------------------------

# Table 1 prints millions to one decimal, for x4.
TABLE_1 = {'swinir': (11.9, 1.2), 'rcan': (15.6, 5.2)}


@pytest.mark.parametrize('arch', sorted(TABLE_1))
def test_swinir_and_rcan_sizes_match_table_1(arch):
    """Counted on the built modules; a count matches when it rounds to the printed figure (the
    compact SwinIR has 1.235M, 2.9% above the printed 1.2M, which is that count rounded)."""
    opt = training_opt('dckd', arch, 4)
    teacher, student = parameter_count(opt['network_t']), parameter_count(opt['network_g'])
    assert (round(teacher / 1e6, 1), round(student / 1e6, 1)) == TABLE_1[arch], (teacher, student)
    assert abs(teacher / 1e6 - TABLE_1[arch][0]) / TABLE_1[arch][0] < 0.02
    assert abs(student / 1e6 - TABLE_1[arch][1]) / TABLE_1[arch][1] < 0.03


@pytest.mark.parametrize('arch,layout_file', [('swinir', 'swinir_m_x4.tsv'), ('rcan', 'rcan_basicsr_x4.tsv')])
def test_teacher_options_build_the_layout_of_the_published_checkpoint(arch, layout_file):
    """SwinIR: the official s48w8 file (its attn_mask buffers fix img_size 48); RCAN: the official
    file once converted to BasicSR's keys."""
    layout = reference_layout(layout_file)
    net = build_network(copy.deepcopy(training_opt('dckd', arch, 4)['network_t']))
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == layout


def conv(c_in, c_out, kernel=3):
    """Weights + biases of one convolution."""
    return c_in * c_out * kernel * kernel + c_out


def edsr_count_by_hand(num_feat, num_block, scale):
    """EDSR (Lim et al. 2017): head conv 3->F, num_block residual blocks of two F->F convs, one
    F->F conv after the body, the pixel-shuffle upsampler (x2/x3: one conv F->F*s^2; x4: two
    convs F->4F), and the last conv F->3. The mean shift has no parameters in BasicSR."""
    head = conv(3, num_feat)
    body = num_block * 2 * conv(num_feat, num_feat) + conv(num_feat, num_feat)
    upsampler = 2 * conv(num_feat, 4 * num_feat) if scale == 4 else conv(num_feat, scale * scale * num_feat)
    tail = conv(num_feat, 3)
    return head + body + upsampler + tail


def test_edsr_counts_by_hand():
    # EDSR-L x4: 7,168 + 32 * 2 * 590,080 + 590,080 + 2 * 2,360,320 + 6,915 = 43,089,923 (the 43M
    # of the EDSR paper); the 64-channel student x4: 1,792 + 65 * 36,928 + 2 * 147,712 + 1,731 = 2,699,267
    assert edsr_count_by_hand(256, 32, 4) == 7_168 + 32 * 2 * 590_080 + 590_080 + 2 * 2_360_320 + 6_915
    assert edsr_count_by_hand(256, 32, 4) == 43_089_923
    assert edsr_count_by_hand(64, 32, 4) == 1_792 + 65 * 36_928 + 2 * 147_712 + 1_731 == 2_699_267


@pytest.mark.parametrize('scale', SCALES)
def test_edsr_pair_has_the_sizes_its_layers_give(scale):
    opt = training_opt('dckd', 'edsr', scale)
    assert (opt['network_t']['num_feat'], opt['network_t']['num_block']) == (256, 32)
    assert (opt['network_g']['num_feat'], opt['network_g']['num_block']) == (64, 32)
    assert parameter_count(opt['network_t']) == edsr_count_by_hand(256, 32, scale)
    assert parameter_count(opt['network_g']) == edsr_count_by_hand(64, 32, scale)
    if scale == 4:
        assert round(parameter_count(opt['network_t']) / 1e6, 1) == 43.1


# ----- the model's own option checks ------------------------------------------------------------


def with_placeholder_checkpoints(opt, folder):
    """`opt` with every frozen network's checkpoint path pointed at an empty file in `folder`."""
    opt = copy.deepcopy(opt)
    made = set()
    for key, value in opt['path'].items():
        if key.startswith('pretrain_network_') and key != 'pretrain_network_g' and value is not None:
            placeholder = folder / os.path.basename(value)
            placeholder.touch()
            opt['path'][key] = str(placeholder)
            made.add(key)
    return opt, made


NEEDED_CHECKPOINTS = {
    'dckd': {'pretrain_network_t', 'pretrain_network_vqgan'},
    'logits': {'pretrain_network_t'},
    'scratch': set(),
}


@pytest.mark.parametrize('file_name', TRAINING_FILES)
def test_training_file_passes_the_model_checks_once_checkpoints_exist(file_name, tmp_path):
    kind, arch, scale = TRAINING_NAME.match(file_name).groups()
    opt, made = with_placeholder_checkpoints(training_opt(kind, arch, int(scale)), tmp_path)
    assert made == NEEDED_CHECKPOINTS[kind]
    DCKDModel.check_options(opt)  # the classmethod; DCKDModel(opt) would also need is_train etc.


@pytest.mark.parametrize('arch,scale', PAIRS)
def test_missing_checkpoints_are_named_before_anything_is_built(arch, scale, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing under experiments/pretrained_models here
    for kind in ('dckd', 'logits'):
        with pytest.raises(OptionError, match='path.pretrain_network_t'):
            DCKDModel.check_options(training_opt(kind, arch, scale))
    opt = training_opt('dckd', arch, scale)
    teacher = tmp_path / 'teacher.pth'
    teacher.touch()
    opt['path']['pretrain_network_t'] = str(teacher)
    with pytest.raises(OptionError, match='path.pretrain_network_vqgan'):
        DCKDModel.check_options(opt)
    DCKDModel.check_options(training_opt('scratch', arch, scale))  # needs no file at all


@pytest.mark.parametrize('kind', ['dckd', 'logits'])
def test_uncommenting_label_consistency_gives_valid_options(kind, tmp_path):
    for arch, scale in PAIRS:
        path = os.path.join(OPTIONS_DIR, f'{kind}_{arch}_x{scale}.yml')
        with open(path) as f:
            lcr = lcr_line(f.read())
        opt, _ = with_placeholder_checkpoints(load(path), tmp_path)
        opt['train']['lcr_opt'] = lcr
        DCKDModel.check_options(opt)


# ----- test files: evaluate the student a training file trains -----------------------------------


@pytest.mark.parametrize('arch,scale', PAIRS)
def test_test_file_evaluates_the_dckd_student_on_the_four_benchmarks(arch, scale):
    opt = evaluation_opt(arch, scale)
    assert opt['model_type'] == 'KDModel' and opt['scale'] == scale
    assert opt['network_g'] == training_opt('dckd', arch, scale)['network_g']
    assert opt['path']['pretrain_network_g'] == f'experiments/dckd_{arch}_x{scale}/models/net_g_latest.pth'
    assert opt['path']['param_key_g'] == 'params_ema' and opt['path']['strict_load_g'] is True
    assert sorted(opt['datasets']) == ['test_1', 'test_2', 'test_3', 'test_4']
    for index, benchmark in enumerate(BENCHMARKS, 1):
        test_set = opt['datasets'][f'test_{index}']
        assert test_set['name'] == benchmark and test_set['type'] == 'PairedImageDataset'
        assert test_set['dataroot_gt'] == f'datasets/{benchmark}/GTmod12'
        assert test_set['dataroot_lq'] == f'datasets/{benchmark}/LRbicx{scale}'
    assert opt['val']['metrics'] == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True}}


# every SwinIR scale (window padding); one scale of the convolutional pairs keeps the suite quick,
# their other test files differ only in `scale` (checked above)
LOADED_PAIRS = [('swinir', 2), ('swinir', 3), ('swinir', 4), ('rcan', 3), ('edsr', 3)]


@pytest.mark.parametrize('arch,scale', LOADED_PAIRS)
def test_test_file_loads_the_ema_weights_and_restores_any_input_size(arch, scale, tmp_path):
    """A checkpoint as BasicSR saves it for an EMA run ({'params', 'params_ema'}): the test file
    must pick the EMA student, and the model must super-resolve a 13x10 input (not a multiple of
    SwinIR's window) to exactly scale times its size."""
    opt = evaluation_opt(arch, scale)
    torch.manual_seed(0)
    trained, ema = build_network(copy.deepcopy(opt['network_g'])), build_network(copy.deepcopy(opt['network_g']))
    checkpoint = tmp_path / 'net_g_latest.pth'
    torch.save({'params': trained.state_dict(), 'params_ema': ema.state_dict()}, checkpoint)
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=0)
    opt['path']['pretrain_network_g'] = str(checkpoint)
    model = build_model(opt)
    loaded = model.net_g.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in ema.state_dict().items())
    assert not all(torch.equal(loaded[k], v) for k, v in trained.state_dict().items())
    model.feed_data({'lq': torch.rand(1, 3, 13, 10)})
    model.test()
    assert model.output.shape == (1, 3, 13 * scale, 10 * scale)
