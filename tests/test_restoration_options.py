"""Deblurring and deraining: the option files, and DCKD at scale 1 with NAFNet/Restormer."""
import os

import pytest
import torch
import yaml

from basicsr.archs import build_network
from dckd_models import DCKDModel
from dckd_models.schedules import ProgressivePatches
from conftest import PROJECT_ROOT
from test_models import make_opt

PAIRS = ('nafnet_gopro', 'restormer_gopro', 'restormer_rain13k')
OPTIONS = os.path.join(PROJECT_ROOT, 'options')


def load(name):
    with open(os.path.join(OPTIONS, name)) as f:
        return yaml.safe_load(f)


def parameters(network_opt):
    return sum(p.numel() for p in build_network(network_opt).parameters())


@pytest.mark.parametrize('pair, teacher, student', [('nafnet_gopro', 17.1e6, 2.7e6), ('restormer_gopro', 26.1e6, 3.8e6),
                                                    ('restormer_rain13k', 26.1e6, 3.8e6)])
def test_sizes_match_table_1(pair, teacher, student):
    opt = load(f'dckd_{pair}.yml')
    assert parameters(opt['network_t']) == pytest.approx(teacher, rel=0.02)
    assert parameters(opt['network_g']) == pytest.approx(student, rel=0.02)


@pytest.mark.parametrize('pair', PAIRS)
def test_the_three_runs_share_student_data_and_recipe(pair):
    runs = {kind: load(f'{kind}_{pair}.yml') for kind in ('dckd', 'logits', 'scratch')}
    for key in ('network_g', 'datasets', 'scale'):
        assert runs['dckd'][key] == runs['logits'][key] == runs['scratch'][key]
    recipe = {k: v for k, v in runs['dckd']['train'].items() if k in ('optim_g', 'scheduler', 'total_iter', 'progressive')}
    for kind in ('logits', 'scratch'):
        assert {k: runs[kind]['train'].get(k) for k in recipe} == recipe
    assert runs['dckd']['scale'] == 1 and 'network_t' not in runs['scratch']


def test_each_teacher_keeps_its_original_recipe():
    nafnet = load('dckd_nafnet_gopro.yml')['train']
    assert nafnet['optim_g'] == {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]}
    assert nafnet['scheduler']['eta_min'] == 1e-7 and nafnet['total_iter'] == 200000
    for pair in ('restormer_gopro', 'restormer_rain13k'):
        train = load(f'dckd_{pair}.yml')['train']
        assert train['optim_g'] == {'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]}
        assert train['total_iter'] == 300000 and sum(train['scheduler']['periods']) == 300000
        assert train['scheduler']['eta_mins'][-1] == 1e-6
        schedule = ProgressivePatches(**train['progressive'])
        assert [schedule.stage(i) for i in (1, 92001, 300000)] == [(128, 8), (160, 5), (384, 1)]
        data = load(f'dckd_{pair}.yml')['datasets']['train']
        assert (data['gt_size'], data['batch_size_per_gpu']) == (384, 8)  # the largest stage


def test_metrics_are_rgb_for_gopro_and_y_for_deraining():
    for pair, y_channel in (('nafnet_gopro', False), ('restormer_gopro', False), ('restormer_rain13k', True)):
        for opt in (load(f'dckd_{pair}.yml'), load(f'test/test_{pair}.yml')):
            assert all(m['test_y_channel'] is y_channel and m['crop_border'] == 0 for m in opt['val']['metrics'].values())


@pytest.mark.parametrize('pair', PAIRS)
def test_training_files_pass_the_model_checks_once_checkpoints_exist(pair, tmp_path):
    for kind in ('dckd', 'logits', 'scratch'):
        opt = load(f'{kind}_{pair}.yml')
        for key in ('pretrain_network_t', 'pretrain_network_vqgan'):
            if opt['path'].get(key):
                (tmp_path / key).write_bytes(b'')
                opt['path'][key] = str(tmp_path / key)
        opt['is_train'] = True
        DCKDModel.check_options(opt)


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
    negatives = model.history_negatives()
    assert negatives.shape == (3 * 2, 3, 32, 32)
