"""KDModel / DCKDModel behaviour on tiny networks, without the training pipeline."""
import pytest
import torch

import basicsr.models.sr_model
import dckd_models.kd_model
from basicsr.archs import build_network
from dckd_models import DCKDModel, KDModel
from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD
from dckd_utils.schema import OptionError
from conftest import TINY_VQGAN, edsr

SCALE = 2
# a complete training set's options (the model reads gt_size; no image is loaded in these tests)
TRAIN_SET = {'name': 'unit', 'type': 'PairedImageDataset', 'dataroot_gt': 'unused_gt', 'dataroot_lq': 'unused_lq',
             'io_backend': {'type': 'disk'}, 'gt_size': 32, 'use_hflip': True, 'use_rot': True,
             'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}


def save_params(net_opt, path, seed=0):
    torch.manual_seed(seed)
    torch.save({'params': build_network(net_opt).state_dict()}, path)
    return str(path)


def make_opt(tmp_path, student=None, teacher=None, terms=('kd', 'dcl', 'ce', 'lcr'), vqgan=TINY_VQGAN,
             **train_overrides):
    student = student or edsr(8, 1, SCALE)
    teacher = teacher or edsr(16, 2, SCALE)
    train = {
        'ema_decay': 0.5,
        'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
        'total_iter': 10,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        'history': {'source': 'ema', 'attenuation': 0.1, 'steps': [1000], 'milestones': []},
        'negatives': {'num': 3},
    }
    terms_opt = {
        'kd': ('kd_opt', {'type': 'L1Loss', 'loss_weight': 1.0}),
        'dcl': ('contrastive_opt', {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1}),
        'ce': ('distribution_opt', {'type': 'DistributionMappingLoss', 'loss_weight': 0.001}),
        'lcr': ('lcr_opt', {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5}),
    }
    train.update(dict(terms_opt[t] for t in terms))
    train.update(train_overrides)
    opt = {
        'name': 'unit', 'model_type': 'DCKDModel', 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1,
        'num_gpu': 0, 'scale': SCALE, 'manual_seed': 0,
        'network_g': student, 'network_t': teacher, 'network_vqgan': dict(vqgan),
        'datasets': {'train': dict(TRAIN_SET)},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'pretrain_network_t': save_params(teacher, tmp_path / 'teacher.pth'),
                 'pretrain_network_vqgan': save_params(vqgan, tmp_path / 'vqgan.pth'),
                 'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
        'train': train,
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1000},
    }
    return opt


def batch(seed=0, size=16):
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(2, 3, size, size, generator=generator),
            'gt': torch.rand(2, 3, size * SCALE, size * SCALE, generator=generator)}


def snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def same(net, state):
    return all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_one_step_changes_the_student_only(tmp_path):
    model = DCKDModel(make_opt(tmp_path))
    frozen = {name: snapshot(getattr(model, name)) for name in ('net_t', 'net_history', 'net_vqgan')}
    student = snapshot(model.net_g)
    model.feed_data(batch())
    model.optimize_parameters(current_iter=1)
    assert set(model.log_dict) == {'l_pix', 'l_kd', 'l_lcr', 'l_dcl', 'l_ce'}
    assert all(same(getattr(model, name), state) for name, state in frozen.items())
    assert not same(model.net_g, student)
    assert all(not p.requires_grad for name in frozen for p in getattr(model, name).parameters())


def test_the_teacher_is_loaded_and_stays_in_eval_mode(tmp_path):
    opt = make_opt(tmp_path, terms=('kd', ))
    model = KDModel(opt)
    expected = torch.load(opt['path']['pretrain_network_t'], weights_only=True)['params']
    assert all(torch.equal(v, expected[k]) for k, v in model.net_t.state_dict().items())
    model.net_t.train()
    assert not model.net_t.training and not any(m.training for m in model.net_t.modules())


def test_a_stochastic_depth_teacher_gives_deterministic_targets(tmp_path):
    swinir = dict(type='SwinIR', upscale=SCALE, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle', drop_path_rate=0.5)
    model = KDModel(make_opt(tmp_path, teacher=swinir, terms=('kd', )))
    model.feed_data(batch(size=8))
    with torch.no_grad():
        assert torch.equal(model.net_t(model.lq), model.net_t(model.lq))


def test_scratch_is_the_same_model_with_every_teacher_term_off(tmp_path):
    opt = make_opt(tmp_path, terms=())
    del opt['network_t'], opt['network_vqgan']
    model = DCKDModel(opt)
    assert not any(hasattr(model, n) for n in ('net_t', 'net_vqgan', 'net_history'))
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix'}


def test_logits_kd_is_the_l1_distance_to_the_teacher_output(tmp_path):
    model = DCKDModel(make_opt(tmp_path, terms=('kd', )))
    model.feed_data(batch())
    with torch.no_grad():
        expected = (model.net_g(model.lq) - model.net_t(model.lq)).abs().mean().item()
    model.optimize_parameters(1)
    assert model.log_dict['l_kd'] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('source', ['ema', 'student'])
def test_history_update_on_schedule(tmp_path, source):
    history = {'source': source, 'attenuation': 0.1, 'steps': [2], 'milestones': []}
    model = DCKDModel(make_opt(tmp_path, terms=('kd', 'dcl'), history=history))
    before = snapshot(model.net_history)
    model.feed_data(batch())
    model.optimize_parameters(1)  # 1 % 2 != 0: no update
    assert same(model.net_history, before)
    model.optimize_parameters(2)
    source_net = model.net_g_ema if source == 'ema' else model.net_g
    src = source_net.state_dict()
    for key, value in model.net_history.state_dict().items():
        assert torch.allclose(value, 0.1 * before[key] + 0.9 * src[key], atol=1e-6), key


def test_history_starts_as_a_copy_of_its_source(tmp_path):
    model = DCKDModel(make_opt(tmp_path, terms=('kd', 'dcl')))
    assert same(model.net_history, snapshot(model.net_g_ema))


def test_negatives_are_the_history_model_on_clean_and_degraded_inputs(tmp_path):
    model = DCKDModel(make_opt(tmp_path, terms=('kd', 'dcl'), negatives={'num': 4}))
    model.feed_data(batch())
    negatives = model.term(DynamicContrastiveKD).history_negatives(model.lq)
    assert negatives.shape == (4 * 2, 3, 32, 32)
    with torch.no_grad():
        clean = model.net_history(model.lq)
    assert torch.equal(negatives[:2], clean)
    assert not torch.allclose(negatives[2:4], clean)


def test_windowed_students_are_padded_at_test_time(tmp_path):
    swinir = dict(type='SwinIR', upscale=SCALE, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle')
    opt = make_opt(tmp_path, student=swinir, terms=())
    opt['is_train'] = False
    model = KDModel(opt)
    model.feed_data({'lq': torch.rand(1, 3, 10, 7)})
    model.test()
    assert model.output.shape == (1, 3, 20, 14)


# ----- errors before any network is built --------------------------------------------------------


@pytest.fixture
def no_network_building(monkeypatch):

    def refuse(*args, **kwargs):
        raise AssertionError('a network was built before the options were checked')

    monkeypatch.setattr(basicsr.models.sr_model, 'build_network', refuse)
    monkeypatch.setattr(dckd_models.kd_model, 'build', refuse)  # the frozen networks


def test_missing_teacher_checkpoint(tmp_path, no_network_building):
    opt = make_opt(tmp_path)
    opt['path']['pretrain_network_t'] = str(tmp_path / 'missing_teacher.pth')
    with pytest.raises(OptionError, match=r'path.pretrain_network_t.*not found.*missing_teacher.pth'):
        DCKDModel(opt)


def test_teacher_student_scale_mismatch(tmp_path, no_network_building):
    opt = make_opt(tmp_path)
    opt['network_t'] = edsr(16, 2, 4)
    with pytest.raises(OptionError, match=r'network_t.upscale = 4 does not match scale = 2'):
        DCKDModel(opt)


def test_missing_vqgan_checkpoint(tmp_path, no_network_building):
    opt = make_opt(tmp_path)
    opt['path']['pretrain_network_vqgan'] = str(tmp_path / 'no_vqgan.ckpt')
    with pytest.raises(OptionError, match=r'path.pretrain_network_vqgan.*not found'):
        DCKDModel(opt)


def test_unknown_loss_mode(tmp_path, no_network_building):
    opt = make_opt(tmp_path)
    opt['train']['distribution_opt']['mode'] = 'double'
    with pytest.raises(OptionError, match=r"train.distribution_opt.mode.*'double'"):
        DCKDModel(opt)


def test_window_size_mismatch(tmp_path, no_network_building):
    opt = make_opt(tmp_path)
    opt['network_g'] = dict(type='SwinIR', upscale=SCALE, window_size=8, img_size=48)
    opt['datasets']['train']['gt_size'] = 40
    with pytest.raises(OptionError, match=r'gt_size / scale = 40 / 2 = 20 .*network_g.window_size = 8'):
        DCKDModel(opt)


def test_history_from_ema_needs_ema(tmp_path, no_network_building):
    opt = make_opt(tmp_path, ema_decay=0)
    with pytest.raises(OptionError, match='ema_decay'):
        DCKDModel(opt)


def test_without_vqgan_checkpoint_the_encoder_is_random_and_the_log_says_so(tmp_path, caplog):
    opt = make_opt(tmp_path, terms=('kd', 'ce'))
    opt['path']['pretrain_network_vqgan'] = None
    import logging
    logging.getLogger('basicsr').propagate = True
    with caplog.at_level('WARNING', logger='basicsr'):
        DCKDModel(opt)
    assert 'RANDOMLY INITIALISED' in caplog.text


def test_each_rank_draws_its_own_degradations(tmp_path):
    """Seeded with manual_seed + rank: ranks see different negatives, runs are reproducible."""
    draws = {}
    for rank in (0, 1, 0):
        opt = make_opt(tmp_path, terms=('kd', 'dcl'))
        opt['rank'] = rank
        model = DCKDModel(opt)
        draws.setdefault(rank, []).append(model.term(DynamicContrastiveKD).degrade(torch.full((2, 3, 8, 8), 0.5)))
    assert torch.equal(draws[0][0], draws[0][1]) and not torch.equal(draws[0][0], draws[1][0])


def test_the_final_validation_is_labelled_total_iter(tmp_path, monkeypatch):
    """BasicSR's loop hands its final validation its counter, which has run past total_iter by one
    per epoch left (a 40-iteration run logged "@ 42 iter"): it is labelled total_iter (10 here)."""
    labels = []
    monkeypatch.setattr(basicsr.models.sr_model.SRModel, 'validation',
                        lambda self, loader, current_iter, tb_logger, save_img=False: labels.append(current_iter))
    model = DCKDModel(make_opt(tmp_path, terms=('kd', )))
    for current_iter in (4, 10, 12):
        model.validation(None, current_iter, None)
    assert labels == [4, 10, 10]
