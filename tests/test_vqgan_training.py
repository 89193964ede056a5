"""A VQGAN of the user's own images (VQGANModel) through dckd-train, on photographs: taming's losses
with the discriminator from `disc_start`, the codebook's usage at validation and its collapse, the
encoder file that a DCKD run's DMM then works in, and an exact resume."""
import re

import cv2
import pytest
import torch
import yaml

from dckd import train_vqgan
from dckd.demo.data import skimage_photo_bgr
from dckd.lmdb_writer import write_image_lmdb
from basicsr.losses.gan_loss import GANLoss
from dckd_arch.vqgan_arch import VQGAN, encoder_state_dict
from dckd_models.vqgan_model import VQGANModel
from in_process import dckd_train, dckd_train_in_a_new_process
from test_pipeline import dckd_options, workspace, write_options  # noqa: F401  (workspace: a fixture)
from test_resume import logged_losses

VQGAN_NET = dict(type='VQGAN', ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[8], resolution=32,
             z_channels=8, embed_dim=8, n_embed=32)  # downsampling factor 4


@pytest.fixture(scope='module')
def photographs(tmp_path_factory):
    """Four photographs (a quarter of their size) to train on, two held-out crops to validate on."""
    root = tmp_path_factory.mktemp('vqgan_photographs')

    def quarter(name):
        image = skimage_photo_bgr(name)
        return cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)

    write_image_lmdb(str(root / 'train.lmdb'), [(n, quarter(n)) for n in ('astronaut', 'coffee', 'rocket',
                                                                          'immunohistochemistry')])
    (root / 'held_out').mkdir()
    cv2.imwrite(str(root / 'held_out' / 'chelsea.png'), quarter('chelsea')[:70, :90])  # no multiple of 4: padded
    cv2.imwrite(str(root / 'held_out' / 'retina.png'), quarter('retina')[100:164, 100:164])
    return root


def vqgan_options(photographs, name, total_iter, disc_start=3, **train):
    hr = {'type': 'HRImageDataset', 'io_backend': {'type': 'lmdb'}}
    return {
        'name': name, 'model_type': 'VQGANModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {**hr, 'name': 'photographs', 'dataroot_gt': str(photographs / 'train.lmdb'), 'gt_size': 32,
                      'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 2, 'batch_size_per_gpu': 4},
            'val': {'name': 'held_out', 'type': 'HRImageDataset', 'io_backend': {'type': 'disk'},
                    'dataroot_gt': str(photographs / 'held_out')}},
        'network_g': dict(VQGAN_NET),
        'network_d': {'type': 'PatchDiscriminator', 'num_feat': 8, 'num_layers': 2},
        'path': {},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-4, 'betas': [0.5, 0.9]},
                  'optim_d': {'type': 'Adam', 'lr': 2e-4, 'betas': [0.5, 0.9]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1, 'disc_start': disc_start,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1.0}},
                  'gan_opt': {'type': 'GANLoss', 'gan_type': 'hinge', 'loss_weight': 0.1}, **train},
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def train(tmp_path, opt, *extra, new_process=False):
    path = tmp_path / f'{opt["name"]}_{opt["train"]["total_iter"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    done = (dckd_train_in_a_new_process if new_process else dckd_train)(['-opt', path, *extra], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = tmp_path / 'experiments' / opt['name']
    return experiment, ''.join(log.read_text() for log in sorted(experiment.glob('train_*.log')))


@pytest.fixture(scope='module')
def trained(photographs, tmp_path_factory):
    """4 iterations, the discriminator from the third, VGG19's weights absent: (experiment, log)."""
    folder = tmp_path_factory.mktemp('vqgan_run')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('TORCH_HOME', str(folder / 'torch_home'))  # an empty download cache
        return train(folder, vqgan_options(photographs, 'vqgan', 4))


def test_a_vqgan_trains_with_tamings_losses_and_the_discriminator_from_disc_start(trained):
    _, log = trained
    lines = {int(m[1]): m[2] for m in re.finditer(r'iter:\s+(\d+),.*\] (l_.*)$', log, re.M)}
    assert sorted(lines) == [1, 2, 3, 4]
    for iteration, line in lines.items():
        assert 'l_pix: ' in line and 'l_codebook: ' in line and 'l_percep' not in line
        assert ('l_g_gan: ' in line and 'gan_weight: ' in line and 'l_d_real: ' in line) == (iteration >= 3), line
    assert "perceptual_opt: skipped, VGG19's ImageNet weights are not here" in log


def test_validation_reports_the_codebooks_usage_and_the_run_ends_with_the_encoder_file(trained):
    experiment, log = trained
    reports = re.findall(r'Codebook on held_out: (\d+) of 32 codes used, perplexity ([\d.]+)', log)
    assert len(reports) >= 2 and all(int(used) > 3 for used, _ in reports), reports  # iterations 2 and 4
    assert 'COLLAPSED' not in log
    encoder = torch.load(experiment / 'models' / 'vqgan_encoder.pth', weights_only=True)['params']
    vqgan = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    expected = encoder_state_dict(vqgan)
    assert sorted(encoder) == sorted(expected) and all(torch.equal(encoder[k], expected[k]) for k in expected)
    assert not any(k.startswith(('decoder.', 'post_quant_conv.')) for k in encoder)
    assert f'VQGAN encoder and codebook written to {experiment / "models" / "vqgan_encoder.pth"}' in log


def test_a_collapsed_codebook_is_reported_as_one(photographs, trained, tmp_path):
    """The trained VQGAN with every code set to one vector, trained on at learning rate 0."""
    experiment, _ = trained
    weights = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    weights['quantize.embedding.weight'][:] = weights['quantize.embedding.weight'][0]
    torch.save({'params': weights}, tmp_path / 'collapsed.pth')
    opt = vqgan_options(photographs, 'collapsed', 2, disc_start=0, optim_g={'type': 'Adam', 'lr': 0.0})
    opt['path']['pretrain_network_g'] = str(tmp_path / 'collapsed.pth')
    del opt['network_d'], opt['train']['gan_opt'], opt['train']['optim_d']
    _, log = train(tmp_path, opt)
    assert re.search(r'WARNING: Codebook on held_out: 1 of 32 codes used, perplexity 1.0. COLLAPSED: its \d+ tokens '
                     r'could use 32 codes', log), log[-2000:]


@pytest.mark.slow
def test_the_trained_encoder_serves_dckds_dmm_in_place_of_a_random_one(trained, workspace, tmp_path):  # noqa: F811
    experiment, _ = trained
    encoder = {key: value for key, value in VQGAN_NET.items() if key != 'type'}
    l_ce = {}
    for name, path in (('trained', str(experiment / 'models' / 'vqgan_encoder.pth')), ('random', None)):
        opt = dckd_options(workspace, f'dmm_{name}', total_iter=1, checkpoint_freq=1, val=False)
        opt['network_vqgan'] = {'type': 'VQGANEncoder', **encoder}
        opt['path']['pretrain_network_vqgan'] = path
        for key in ('contrastive_opt', 'history', 'negatives'):
            del opt['train'][key]
        checked = dckd_train(['--check', '-opt', write_options(tmp_path, opt)], tmp_path)
        assert checked.returncode == 0, checked.stderr[-3000:]
        assert 'VQGAN     network_vqgan: VQGANEncoder, ' in checked.stdout
        assert f'from {path or "random initialisation"}' in checked.stdout
        _, log = train(tmp_path, opt)
        l_ce[name] = float(re.search(r'l_ce: ([\d.e+-]+)', log)[1])
    assert l_ce['trained'] != l_ce['random'], l_ce


def test_the_gan_term_is_weighed_as_taming_weighs_it():
    """taming's adaptive weight: what gan_opt.loss_weight (disc_weight) multiplies is the ratio of the
    gradient norms at the decoder's last layer, so the GAN term's gradient there is loss_weight times
    the reconstruction's, whatever the GAN loss's own scale."""
    torch.manual_seed(0)
    model = VQGANModel.__new__(VQGANModel)  # the one method, on a network and a GAN loss of its own
    net = VQGAN(**{k: v for k, v in VQGAN_NET.items() if k != 'type'})
    model.net_g, model.device, model.get_bare_model = net, torch.device('cpu'), lambda network: network
    output = net(torch.rand(2, 3, 16, 16))
    reconstruction = (output - 0.5).abs().mean()
    last = net.decoder.conv_out.weight
    for weight, scale in ((0.8, 1.0), (0.1, 1.0), (0.8, 50.0)):
        model.cri_gan = GANLoss('hinge', loss_weight=weight)
        l_g_gan = model.cri_gan(scale * output, True, is_disc=False)
        term = model.adaptive_gan_weight(reconstruction, l_g_gan) * l_g_gan
        gradients = [torch.autograd.grad(loss, last, retain_graph=True)[0].norm() for loss in (term, reconstruction)]
        assert float(gradients[0] / gradients[1]) == pytest.approx(weight, rel=1e-3)


@pytest.mark.slow
def test_a_resumed_vqgan_run_equals_the_uninterrupted_one(photographs, tmp_path):
    """2 + 2 iterations against 4 straight, the discriminator training from the second, the EMA
    quantizer (its k-means start, moving averages and restarts) in the network."""
    def options(name, total):
        opt = vqgan_options(photographs, name, total, disc_start=2)
        opt['network_g']['quantizer'] = 'ema'
        return opt

    straight, _ = train(tmp_path, options('straight', 4))
    train(tmp_path, options('resumed', 2))
    resumed, log = train(tmp_path, options('resumed', 4), '--auto_resume', new_process=True)
    assert 'Resuming training from epoch' in log
    for network in ('net_g', 'net_d'):
        a, b = (torch.load(e / 'models' / f'{network}_4.pth', weights_only=True)['params'] for e in (straight, resumed))
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), network
    a, b = (torch.load(e / 'training_states' / '4.state', weights_only=True) for e in (straight, resumed))
    for optimizer_a, optimizer_b in zip(a['optimizers'], b['optimizers']):
        for state_a, state_b in zip(optimizer_a['state'].values(), optimizer_b['state'].values()):
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    losses_a, losses_b = logged_losses(straight), logged_losses(resumed)
    assert [losses_b[i] for i in (3, 4)] == [losses_a[i] for i in (3, 4)]


def test_dckd_train_vqgan_checks_a_vqgan_run_and_refuses_a_students(photographs, workspace, tmp_path,  # noqa: F811
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    vqgan_file = write_options(tmp_path, vqgan_options(photographs, 'checked', 4))
    train_vqgan.main(['--check', '-opt', str(vqgan_file)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f'{vqgan_file}: OK'
    assert ('terms     l_pix = 1.0 x L1Loss; l_percep = 1.0 x PerceptualLoss; l_codebook = 1.0 x (codebook + 0.25 x '
            'commitment); l_g_gan = 0.1 x GANLoss from iteration 3') in printed
    assert any(line.startswith('VQGAN     network_g: VQGAN, ') for line in printed)
    student_file = write_options(tmp_path, dckd_options(workspace, 'student', total_iter=1, checkpoint_freq=1))
    with pytest.raises(SystemExit) as stop:
        train_vqgan.main(['-opt', str(student_file)])
    assert str(stop.value.code) == (f'dckd-train-vqgan: {student_file}: model_type is DCKDModel: dckd-train-vqgan '
                                    'trains a VQGAN (model_type: VQGANModel, options/vqgan/); train a student with '
                                    'dckd-train.')
    assert not (tmp_path / 'experiments').exists()
