"""The options files users train and evaluate with: options/train/<family>/*.yml, options/test/<family>/*.yml.

They are written by options/generate.py from options/table.py; the first tests check that the
committed files are exactly what the table gives. The others check the files against the paper
(spec sections 5 and 6) and the published checkpoints, independently of the table:

- SR pairs (SwinIR, RCAN, EDSR, plus SwinIR-light and EDSR-baseline, which the paper does not use)
  at x2, x3, x4 and the restoration pairs (NAFNet and Restormer on GoPro, Restormer on Rain13K)
  each have dckd_* (L1 + Logits KD + DCR + DMM), logits_* (L1 + Logits KD) and scratch_* (L1);
- every pair and scale has one test file that evaluates the trained student.
"""
import copy
import os
import re

import pytest
import torch
import yaml

import sys

from basicsr.archs import build_network
from basicsr.models import build_model
from dckd_utils.schema import OptionError
from dckd_models import DCKDModel
from dckd_models.options import needs_teacher, parse_training_options
from dckd_models.schedules import ProgressivePatches
from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD
from conftest import PROJECT_ROOT, reference_layout
from test_models import make_opt
from test_realworld_degradation import DEGRADATION, KERNELS

OPTIONS_DIR = os.path.join(PROJECT_ROOT, 'options')
sys.path.insert(0, OPTIONS_DIR)
import generate  # noqa: E402  (options/generate.py)

ARCHS = ('swinir', 'rcan', 'edsr')  # the paper's SR pairs
NEW_SR = ('swinir_light', 'edsr_baseline')  # pairs users ask for beyond the paper
SCALES = (2, 3, 4)
KINDS = ('dckd', 'logits', 'scratch')
BENCHMARKS = ('Set5', 'Set14', 'BSD100', 'Urban100')
PAIRS = [(arch, scale) for arch in ARCHS for scale in SCALES]
ALL_SR = [(arch, scale) for arch in ARCHS + NEW_SR for scale in SCALES]
RESTORATION = ('nafnet_gopro', 'restormer_gopro', 'restormer_rain13k')
RUNS = [f'{kind}_{arch}_x{scale}' for kind in KINDS for arch, scale in ALL_SR] + [
    f'{kind}_{pair}' for kind in KINDS for pair in RESTORATION]
TRAINING_NAME = re.compile(r'^(dckd|logits|scratch)_')

TEACHER_TERMS = ('kd_opt', 'contrastive_opt', 'distribution_opt', 'lcr_opt')
TERMS_ON = {
    'dckd': {'kd_opt', 'contrastive_opt', 'distribution_opt'},  # LCR stays opt-in (commented out)
    'logits': {'kd_opt'},
    'scratch': set(),
}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def find(phase, name):
    """options/<phase>/<family>/<name>.yml, wherever its family folder is."""
    folder = os.path.join(OPTIONS_DIR, phase)
    found = [os.path.join(folder, family, f'{name}.yml') for family in sorted(os.listdir(folder))
             if os.path.isfile(os.path.join(folder, family, f'{name}.yml'))]
    assert len(found) == 1, (phase, name, found)
    return found[0]


def run_name(kind, pair, scale=None):
    return f'{kind}_{pair}' + (f'_x{scale}' if scale else '')


def training_opt(kind, arch, scale=None):
    return load(find('train', run_name(kind, arch, scale)))


def evaluation_opt(arch, scale=None):
    return load(find('test', run_name('test', arch, scale)))


def parameter_count(network_opt):
    return sum(p.numel() for p in build_network(copy.deepcopy(network_opt)).parameters())


# ----- the committed files are the table's ----------------------------------------------------------


def test_generating_again_changes_no_file():
    """The replacement for policing copies: every file is what options/table.py gives, to the byte."""
    files = generate.all_files(generate.load_table())
    for relative, text in files.items():
        path = os.path.join(OPTIONS_DIR, relative)
        assert os.path.isfile(path), f'{relative} missing: run python options/generate.py'
        with open(path) as f:
            assert f.read() == text, f'{relative} differs from options/table.py: run python options/generate.py'
    committed = {os.path.relpath(os.path.join(root, name), OPTIONS_DIR)
                 for phase in ('train', 'test', 'demo', 'quantized', 'vqgan')
                 for root, _, names in os.walk(os.path.join(OPTIONS_DIR, phase))
                 for name in names if name.endswith('.yml')}
    assert committed == set(files), f'files the table does not write: {sorted(committed - set(files))}'


def test_the_generated_documentation_pages_are_current():
    for page, text in generate.generated_pages().items():
        with open(os.path.join(generate.DOCS, page)) as f:
            assert f.read() == text, f'docs/{page}: its table is stale; run python options/generate.py'
    with open(os.path.join(generate.DOCS, 'options.md')) as f:
        assert '| `train.history.attenuation` | float in [0, 1] | 0.1 |' in f.read()  # declared there, shown here


def test_every_run_has_its_training_file_and_every_pair_its_test_file():
    for run in RUNS:
        assert load(find('train', run))['name'] == run  # experiments/<name>/ is where test files look
    for arch, scale in ALL_SR:
        evaluation_opt(arch, scale)
    for pair in RESTORATION:
        evaluation_opt(pair)


def test_written_values_read_back_as_the_table_means_them():
    """Comments, flow style and floats (1.0e-4, not YAML 1.1's string '1e-4') survive the writing."""
    table = generate.load_table()
    pair = next(p for p in table.PAIRS if p['name'] == 'swinir')
    _, text = generate.training_file(table, 'dckd', pair, 4)
    opt = yaml.safe_load(text)
    assert opt['train']['optim_g']['lr'] == 1e-4 and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['train']['contrastive_opt']['eps'] == 1e-7
    assert opt['network_vqgan'] == generate.plain(table.VQGAN)


@pytest.mark.parametrize('run', RUNS)
def test_every_training_file_passes_the_option_schema(run):
    parsed = parse_training_options(load(find('train', run)), check_files=False)
    assert parsed.model_type == 'DCKDModel'  # scratch and logits are the same model with terms off


# the quantization-aware fine-tunes (options/quantized/): (FP32 files they start from and take terms from)
QUANTIZED = {'demo_x4': ('demo/demo_dckd_x4.yml', {'l1': 'demo/demo_scratch_x4.yml', 'logits': 'demo/demo_logits_x4.yml',
                                                   'dckd': 'demo/demo_dckd_x4.yml'}),
             'edsr_baseline_x4': ('train/edsr/dckd_edsr_baseline_x4.yml',
                                  {kind: f'train/edsr/{fp32}_edsr_baseline_x4.yml'
                                   for kind, fp32 in (('l1', 'scratch'), ('logits', 'logits'), ('dckd', 'dckd'))})}
TERMS = ('pixel_opt', 'kd_opt', 'lcr_opt', 'contrastive_opt', 'distribution_opt', 'negatives')


@pytest.mark.parametrize('student,method', [(s, m) for s in QUANTIZED for m in ('l1', 'logits', 'dckd')])
def test_a_quantized_file_fine_tunes_the_distilled_student_with_its_methods_terms(student, method):
    opt = load(os.path.join(OPTIONS_DIR, 'quantized', f'qat_{method}_{student}.yml'))
    start, terms_file = QUANTIZED[student]
    fp32, terms = load(os.path.join(OPTIONS_DIR, start)), load(os.path.join(OPTIONS_DIR, terms_file[method]))
    parse_training_options(opt, check_files=False)
    assert opt['path']['pretrain_network_g'] == f'experiments/{fp32["name"]}/models/net_g_latest.pth'
    assert opt['path']['param_key_g'] == 'params_ema' and opt['network_g'] == fp32['network_g']
    assert opt['train']['optim_g']['lr'] == pytest.approx(fp32['train']['optim_g']['lr'] / 10)
    assert opt['train']['total_iter'] < fp32['train']['total_iter'] / 4 + 1
    assert {t: opt['train'].get(t) for t in TERMS} == {t: terms['train'].get(t) for t in TERMS}
    assert ('network_t' in opt) == ('network_t' in terms) and opt['datasets'] == fp32['datasets']
    quantization = opt['train']['quantization']
    assert quantization['backend'] == 'x86' and quantization['start_iter'] == 0
    assert 0 < quantization['freeze_iter'] < opt['train']['total_iter']


# ----- training files: one model, one scale, comparable students ------------------------------


@pytest.mark.parametrize('kind,arch,scale', [(k, a, s) for k in KINDS for a, s in ALL_SR])
def test_sr_training_file_uses_one_scale_throughout(kind, arch, scale):
    opt = training_opt(kind, arch, scale)
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


@pytest.mark.parametrize('arch,scale', ALL_SR)
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


@pytest.mark.parametrize('kind,arch,scale', [(k, a, s) for k in KINDS for a, s in ALL_SR])
def test_training_recipe_is_the_papers(kind, arch, scale):
    """Spec section 5: Adam (0.9, 0.99), lr 1e-4 / 10 every 100k, 250k iterations, EMA 0.999, batch 16."""
    opt = training_opt(kind, arch, scale)
    train = opt['train']
    assert train['optim_g'] == {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [100000, 200000], 'gamma': 0.1}
    assert train['total_iter'] == 250000 and train['ema_decay'] == 0.999
    assert train['pixel_opt']['type'] == 'L1Loss' and train['pixel_opt']['loss_weight'] == 1.0
    data = opt['datasets']['train']
    assert data['batch_size_per_gpu'] == 16 and data['use_hflip'] and data['use_rot']
    assert data['dataroot_gt'] == 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb' and data['io_backend'] == {'type': 'lmdb'}


# ----- which terms are on -----------------------------------------------------------------------


@pytest.mark.parametrize('run', RUNS)
def test_each_kind_switches_on_exactly_its_teacher_terms(run):
    kind = TRAINING_NAME.match(run).group(1)
    opt = load(find('train', run))
    on = {key for key in TEACHER_TERMS if opt['train'].get(key)}
    assert on == TERMS_ON[kind]
    assert needs_teacher(parse_training_options(opt, check_files=False).train) == (kind != 'scratch')
    assert ('network_t' in opt) == (kind != 'scratch')  # scratch: no teacher is even described
    assert ('pretrain_network_t' in opt['path']) == (kind != 'scratch')
    assert ('network_vqgan' in opt) == (kind == 'dckd')
    if kind != 'scratch':
        assert opt['train']['kd_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0}


@pytest.mark.parametrize('run', [r for r in RUNS if r.startswith('dckd_')])
def test_dckd_terms_carry_the_paper_weights(run):
    train = load(find('train', run))['train']
    assert train['contrastive_opt'] == {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1,
                                        'level_weights': [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0], 'eps': 1e-7}
    assert train['distribution_opt'] == {'type': 'DistributionMappingLoss', 'loss_weight': 0.001, 'mode': 'paper'}
    assert train['history'] == {'source': 'ema', 'attenuation': 0.1, 'steps': [1000, 2000, 3000],
                                'milestones': [100000, 200000]}
    assert train['negatives']['num'] == 5
    assert train['negatives']['probs'] == {'noise': 1.0, 'blur': 0.0, 'resize': 0.0}
    assert train['negatives']['noise'] == {'sigma_range': [1, 30], 'gray_prob': 0.5}


@pytest.mark.parametrize('run', [r for r in RUNS if r.startswith('dckd_')])
def test_dckd_feature_space_is_the_published_vqgan(run):
    opt = load(find('train', run))
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
    for run in RUNS:
        if not run.startswith(kind):
            continue
        with open(find('train', run)) as f:
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
@pytest.mark.parametrize('pair,student_blocks', [('edsr', 32), ('edsr_baseline', 16)])
def test_edsr_pairs_have_the_sizes_their_layers_give(pair, student_blocks, scale):
    opt = training_opt('dckd', pair, scale)
    assert (opt['network_t']['num_feat'], opt['network_t']['num_block']) == (256, 32)
    assert (opt['network_g']['num_feat'], opt['network_g']['num_block']) == (64, student_blocks)
    assert parameter_count(opt['network_t']) == edsr_count_by_hand(256, 32, scale)
    assert parameter_count(opt['network_g']) == edsr_count_by_hand(64, student_blocks, scale)
    if scale == 4:
        assert round(parameter_count(opt['network_t']) / 1e6, 1) == 43.1


def test_edsr_baseline_is_the_published_1_5m_model():
    """The EDSR paper's baseline (64 ch, 16 blocks, no residual scaling) has 1.5M parameters at x4."""
    opt = training_opt('dckd', 'edsr_baseline', 4)['network_g']
    assert round(parameter_count(opt) / 1e6, 1) == 1.5 and opt['res_scale'] == 1


# SwinIR paper, Table 3 (lightweight SR): SwinIR-light has 878K, 886K and 897K parameters at x2, x3, x4,
# counted without the relative position bias tables: 24 blocks x (2 * 8 - 1)^2 positions x 6 heads
SWINIR_LIGHT_PUBLISHED = {2: 878e3, 3: 886e3, 4: 897e3}
BIAS_TABLES = 24 * 15**2 * 6


@pytest.mark.parametrize('scale', SCALES)
def test_swinir_light_student_has_the_published_size_and_the_swinir_m_teacher(scale):
    opt = training_opt('dckd', 'swinir_light', scale)
    net = build_network(copy.deepcopy(opt['network_g']))
    tables = sum(p.numel() for name, p in net.named_parameters() if 'relative_position_bias_table' in name)
    assert tables == BIAS_TABLES
    assert parameter_count(opt['network_g']) - tables == pytest.approx(SWINIR_LIGHT_PUBLISHED[scale], abs=1e3)
    assert opt['network_g']['upsampler'] == 'pixelshuffledirect' and opt['network_g']['img_size'] == 64
    assert opt['network_t'] == training_opt('dckd', 'swinir', scale)['network_t']


@pytest.mark.parametrize('pair, teacher, student', [('nafnet_gopro', 17.1e6, 2.7e6), ('restormer_gopro', 26.1e6, 3.8e6),
                                                    ('restormer_rain13k', 26.1e6, 3.8e6)])
def test_restoration_sizes_match_table_1(pair, teacher, student):
    opt = training_opt('dckd', pair)
    assert parameter_count(opt['network_t']) == pytest.approx(teacher, rel=0.02)
    assert parameter_count(opt['network_g']) == pytest.approx(student, rel=0.02)


# ----- the checks a run goes through --------------------------------------------------------------


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


@pytest.mark.parametrize('run', RUNS)
def test_training_file_passes_the_file_checks_once_checkpoints_exist(run, tmp_path):
    opt, made = with_placeholder_checkpoints(load(find('train', run)), tmp_path)
    assert made == NEEDED_CHECKPOINTS[TRAINING_NAME.match(run).group(1)]
    parse_training_options(opt)


@pytest.mark.parametrize('arch,scale', ALL_SR)
def test_missing_checkpoints_are_named_before_anything_is_built(arch, scale, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing under experiments/pretrained_models here
    for kind in ('dckd', 'logits'):
        with pytest.raises(OptionError, match='path.pretrain_network_t'):
            parse_training_options(training_opt(kind, arch, scale))
    opt = training_opt('dckd', arch, scale)
    teacher = tmp_path / 'teacher.pth'
    teacher.touch()
    opt['path']['pretrain_network_t'] = str(teacher)
    with pytest.raises(OptionError, match='path.pretrain_network_vqgan'):
        parse_training_options(opt)
    parse_training_options(training_opt('scratch', arch, scale))  # needs no file at all


@pytest.mark.parametrize('kind', ['dckd', 'logits'])
def test_uncommenting_label_consistency_gives_valid_options(kind, tmp_path):
    for run in RUNS:
        if run.startswith(kind):
            path = find('train', run)
            with open(path) as f:
                lcr = lcr_line(f.read())
            opt, _ = with_placeholder_checkpoints(load(path), tmp_path)
            opt['train']['lcr_opt'] = lcr
            assert parse_training_options(opt).train.lcr_opt.prob == 0.5


# ----- test files: evaluate the student a training file trains -----------------------------------


@pytest.mark.parametrize('arch,scale', ALL_SR)
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
LOADED_PAIRS = [('swinir', 2), ('swinir', 3), ('swinir', 4), ('swinir_light', 3), ('rcan', 3), ('edsr', 3),
                ('edsr_baseline', 2)]


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


# ----- deblurring and deraining --------------------------------------------------------------------


def test_each_teacher_keeps_its_original_recipe():
    nafnet = training_opt('dckd', 'nafnet_gopro')['train']
    assert nafnet['optim_g'] == {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]}
    assert nafnet['scheduler']['eta_min'] == 1e-7 and nafnet['total_iter'] == 200000
    for pair in ('restormer_gopro', 'restormer_rain13k'):
        opt = training_opt('dckd', pair)
        train = opt['train']
        assert train['optim_g'] == {'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]}
        assert train['total_iter'] == 300000 and sum(train['scheduler']['periods']) == 300000
        assert train['scheduler']['eta_mins'][-1] == 1e-6
        schedule = ProgressivePatches(parse_training_options(opt, check_files=False).train.progressive)
        assert [schedule.stage(i) for i in (1, 92001, 300000)] == [(128, 8), (160, 5), (384, 1)]
        data = opt['datasets']['train']
        assert (data['gt_size'], data['batch_size_per_gpu']) == (384, 8)  # the largest stage


@pytest.mark.parametrize('pair', RESTORATION)
def test_the_three_restoration_runs_share_student_data_and_recipe(pair):
    runs = {kind: training_opt(kind, pair) for kind in KINDS}
    for key in ('network_g', 'datasets', 'scale'):
        assert runs['dckd'][key] == runs['logits'][key] == runs['scratch'][key]
    recipe = {k: v for k, v in runs['dckd']['train'].items() if k in ('optim_g', 'scheduler', 'total_iter', 'progressive')}
    for kind in ('logits', 'scratch'):
        assert {k: runs[kind]['train'].get(k) for k in recipe} == recipe
    assert runs['dckd']['scale'] == 1 and 'network_t' not in runs['scratch']


def test_metrics_are_rgb_for_gopro_and_y_for_deraining():
    for pair, y_channel in (('nafnet_gopro', False), ('restormer_gopro', False), ('restormer_rain13k', True)):
        for opt in (training_opt('dckd', pair), evaluation_opt(pair)):
            assert all(m['test_y_channel'] is y_channel and m['crop_border'] == 0 for m in opt['val']['metrics'].values())


TINY_NAFNET = dict(type='NAFNet', img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
TINY_RESTORMER = dict(type='Restormer', inp_channels=3, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1],
                      num_refinement_blocks=1, heads=[1, 1, 1, 1], ffn_expansion_factor=2, bias=False,
                      LayerNorm_type='WithBias')


@pytest.mark.parametrize('teacher, student', [(dict(TINY_NAFNET, width=16), TINY_NAFNET),
                                              (dict(TINY_RESTORMER, dim=16), TINY_RESTORMER)],
                         ids=['nafnet', 'restormer'])
def test_one_dckd_step_at_scale_1_changes_only_the_student(teacher, student, tmp_path):
    opt = make_opt(tmp_path, student=student, teacher=teacher)
    opt['scale'] = 1
    opt['train']['progressive'] = {'milestones': [], 'gt_sizes': [32], 'batch_sizes': [2]}
    model = DCKDModel(opt)
    frozen = {name: {k: v.clone() for k, v in getattr(model, name).state_dict().items()}
              for name in ('net_t', 'net_history', 'net_vqgan')}
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 36, 36, generator=generator)  # not a multiple of 16: the VQGAN and the nets cope
    model.feed_data({'lq': (gt + 0.05 * torch.randn(2, 3, 36, 36, generator=generator)).clamp(0, 1), 'gt': gt})
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix', 'l_kd', 'l_lcr', 'l_dcl', 'l_ce'}
    assert model.output.shape == (2, 3, 32, 32)
    for name, state in frozen.items():
        assert all(torch.equal(v, state[k]) for k, v in getattr(model, name).state_dict().items()), name
    assert not all(torch.equal(v, before[k]) for k, v in model.net_g.state_dict().items())
    negatives = model.term(DynamicContrastiveKD).history_negatives(model.lq)
    assert negatives.shape == (3 * 2, 3, 32, 32)


# ----- the methods DCKD is compared with, and DCKD* ---------------------------------------------------


@pytest.mark.parametrize('arch', ARCHS + NEW_SR)
def test_fakd_taps_are_modules_of_both_networks_at_the_same_resolution(arch):
    """Built from the x4 file, each student tap and its teacher tap exist and give affinity
    matrices of one size on an LR patch (the loss compares them entry by entry)."""
    from dckd_models.taps import FeatureTaps, check_module_names
    from dckd_models.terms.feature_affinity import spatial_affinity
    opt = training_opt('fakd', arch, 4)
    feature = opt['train']['feature_opt']
    assert (feature['type'], feature['loss_weight']) == ('L1Loss', 10.0) and 'kd_opt' in opt['train']
    sizes = []
    for key, taps in (('network_g', feature['student_taps']), ('network_t', feature['teacher_taps'])):
        torch.manual_seed(0)
        net = build_network(copy.deepcopy(opt[key])).eval()
        check_module_names(net, taps, key)
        recorder = FeatureTaps(net, taps)
        with torch.no_grad(), recorder.recording() as recorded:
            net(torch.rand(1, 3, 16, 16))
        sizes.append([spatial_affinity(recorded[tap][0]).shape for tap in taps])
    assert sizes[0] == sizes[1] and all(size == (1, 256, 256) for size in sizes[0])


# channels of the student's and the teacher's inner stages: the embeddings and widths of the pairs
HINT_CHANNELS = {'swinir': (60, 180), 'swinir_light': (60, 180), 'rcan': (64, 64), 'edsr': (64, 256),
                 'edsr_baseline': (64, 256)}


@pytest.mark.parametrize('arch', ARCHS + NEW_SR)
def test_fitnet_hints_read_the_inner_fakd_taps_through_regressors_of_the_pair_widths(arch, tmp_path):
    from dckd_models.terms.feature_hint import FeatureHint
    opt = training_opt('fitnet', arch, 4)
    hint, fakd = opt['train']['hint_opt'], training_opt('fakd', arch, 4)['train']['feature_opt']
    assert (hint['type'], hint['loss_weight']) == ('MSELoss', 1.0) and 'kd_opt' in opt['train']
    assert (hint['student_taps'], hint['teacher_taps']) == (fakd['student_taps'][1:3], fakd['teacher_taps'][1:3])
    model_opt = make_opt(tmp_path, student=opt['network_g'], teacher=opt['network_t'], terms=(), hint_opt=hint)
    model_opt.update(scale=4)
    model_opt['datasets']['train']['gt_size'] = 32  # the channels are probed on an 8x8 LR patch
    model = DCKDModel(model_opt)
    regressors = model.term(FeatureHint).adapters().values()
    assert [(r.in_features, r.out_features) for r in regressors] == [HINT_CHANNELS[arch]] * 2


@pytest.mark.parametrize('arch', ARCHS + NEW_SR)
def test_dukd_is_logits_kd_plus_one_zoom_in_tile_as_released(arch):
    train = training_opt('dukd', arch, 4)['train']
    assert train['upcycling_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 1, 'zoom_out': False,
                                      'prob': 0.3}
    assert set(train) & set(TEACHER_TERMS + ('upcycling_opt', 'feature_opt')) == {'kd_opt', 'upcycling_opt'}


@pytest.mark.parametrize('arch', ['swinir', 'rcan'])
def test_dckd_star_is_the_dckd_file_plus_upcycling_and_label_consistency(arch, tmp_path):
    star, dckd = training_opt('dckdstar', arch, 4), training_opt('dckd', arch, 4)
    added = {k: v for k, v in star['train'].items() if k not in dckd['train']}
    assert added == {'lcr_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
                     'upcycling_opt': training_opt('dukd', arch, 4)['train']['upcycling_opt']}
    assert {k: v for k, v in star['train'].items() if k in dckd['train']} == dckd['train']
    opt, _ = with_placeholder_checkpoints(star, tmp_path)
    parsed = parse_training_options(opt)
    assert parsed.train.upcycling_opt.zoom_in == 1 and parsed.train.lcr_opt.prob == 0.5


# ----- real-world SR: Real-ESRGAN's recipe in two stages -------------------------------------------

REALWORLD_STAGES = ('realesrnet', 'realesrgan')
# Real-ESRGAN's options/train_realesrgan_x4plus.yml, copied by hand (tests/test_realworld_degradation.py)
REAL_ESRGAN_DEGRADATION = {**DEGRADATION, 'gt_size': 256, 'queue_size': 180}
REAL_ESRGAN_KERNELS = {**KERNELS, 'use_hflip': True, 'use_rot': False, 'batch_size_per_gpu': 12}


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('stage', REALWORLD_STAGES)
def test_realworld_files_are_real_esrgans_recipe(stage, kind):
    opt = training_opt(kind, stage, 4)
    parsed = parse_training_options(opt, check_files=False)
    assert parsed.model_type == 'RealWorldKDModel'
    assert {key: opt[key] for key in REAL_ESRGAN_DEGRADATION} == REAL_ESRGAN_DEGRADATION
    data = opt['datasets']['train']
    assert data['type'] == 'RealESRGANDataset_basicsr'
    assert {key: data[key] for key in REAL_ESRGAN_KERNELS} == REAL_ESRGAN_KERNELS
    assert (opt['l1_gt_usm'], opt['percep_gt_usm'], opt['gan_gt_usm']) == (True, True, False)
    train = opt['train']
    assert train['ema_decay'] == 0.999 and train['pixel_opt']['loss_weight'] == 1.0
    assert 'teacher_check' not in train  # RealWorldKDModel does not compare a real-world teacher with bicubic
    on = {key for key in TEACHER_TERMS if train.get(key)}
    assert on == TERMS_ON[kind]
    if stage == 'realesrnet':  # RealESRNet: L1 only, lr 2e-4, 1M iterations, no discriminator
        assert train['optim_g']['lr'] == 2e-4 and train['total_iter'] == 1000000
        assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [1000000], 'gamma': 0.5}
        assert 'network_d' not in opt and 'gan_opt' not in train and 'perceptual_opt' not in train
        assert opt['path']['pretrain_network_g'] is None
    else:  # from stage 1's EMA student of the same method: L1 + perceptual + GAN 0.1, lr 1e-4, 400k iterations
        assert train['optim_g']['lr'] == train['optim_d']['lr'] == 1e-4 and train['total_iter'] == 400000
        assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [400000], 'gamma': 0.5}
        assert train['perceptual_opt']['layer_weights'] == {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1,
                                                            'conv4_4': 1, 'conv5_4': 1}
        assert train['perceptual_opt']['perceptual_weight'] == 1.0 and train['perceptual_opt']['style_weight'] == 0
        assert (train['gan_opt']['gan_type'], train['gan_opt']['loss_weight']) == ('vanilla', 0.1)
        assert opt['network_d'] == {'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 64,
                                    'skip_connection': True}
        assert opt['path']['pretrain_network_g'] == f'experiments/{kind}_realesrnet_x4/models/net_g_latest.pth'
        assert opt['path']['param_key_g'] == 'params_ema'
    if kind == 'dckd':
        assert train['negatives'] == {'num': 5, 'pipeline': 'realworld'}
    if kind != 'scratch':
        assert opt['network_t'] == {'type': 'PretrainedModel',
                                    'path': 'experiments/pretrained_models/RealESRGAN_x4plus.pth'}


@pytest.mark.parametrize('stage', REALWORLD_STAGES)
def test_the_three_realworld_runs_of_a_stage_differ_only_in_their_losses(stage):
    dckd, logits, scratch = (training_opt(kind, stage, 4) for kind in KINDS)
    for key in ('network_g', 'datasets', 'val', 'scale', 'manual_seed', *REAL_ESRGAN_DEGRADATION):
        assert dckd[key] == logits[key] == scratch[key], key
    for key in ('ema_decay', 'optim_g', 'scheduler', 'total_iter', 'pixel_opt', 'perceptual_opt', 'gan_opt', 'optim_d'):
        assert dckd['train'].get(key) == logits['train'].get(key) == scratch['train'].get(key), key


def test_the_realworld_student_is_a_0_6m_srvggnetcompact_by_hand():
    """SRVGGNetCompact, 64 channels, 16 body convolutions, PReLU, x4: first conv + PReLU, 16 x (conv +
    PReLU), last conv to 3 x 4 x 4 channels."""
    student = training_opt('scratch', 'realesrgan', 4)['network_g']
    by_hand = (3 * 64 * 9 + 64) + 64 + 16 * ((64 * 64 * 9 + 64) + 64) + (64 * 48 * 9 + 48)
    assert parameter_count(student) == by_hand == 621424
    assert training_opt('scratch', 'realesrnet', 4)['network_g'] == student
