"""Any model file as the teacher: `network_t: {type: PretrainedModel, path: FILE}`.

The files are built here at random weights in their published layouts and containers (the real
ones cannot be downloaded). What a loaded teacher computes is checked against the original
network (BasicSR's or dckd's class with the same weights; for official RCAN, an independent
functional forward of the official formulation), never against spandrel's own output.
"""
import os

import pytest
import torch
import yaml

import dckd_arch  # noqa: F401  (registers PretrainedModel)
from basicsr.archs import build_network
from dckd_utils.schema import OptionError
from dckd_arch.padding import pad_to_multiple
from dckd_arch.pretrained_arch import PretrainedModel
from dckd_models import DCKDModel, KDModel
from dckd_models.frozen import build, check_detected, freeze
from dckd_models.options import parse_training_options
from dckd_models.preflight import preflight
from conftest import PROJECT_ROOT, edsr, reference_layout
from test_models import batch, make_opt, same, snapshot
from test_rcan_conversion import official_checkpoint, official_forward

safetensors_torch = pytest.importorskip('safetensors.torch')

SWINIR_M_X4 = dict(type='SwinIR', upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1., depths=[6] * 6,
                   embed_dim=180, num_heads=[6] * 6, mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')
SWINIR_LIGHT_X4 = dict(SWINIR_M_X4, img_size=64, depths=[6] * 4, embed_dim=60, num_heads=[6] * 4,
                       upsampler='pixelshuffledirect')
NAFNET_GOPRO = dict(type='NAFNet', img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                    dec_blk_nums=[1, 1, 1, 1])


def random_network(net_opt, seed=0):
    torch.manual_seed(seed)
    return build_network(net_opt).eval()


def pretrained(path, **options):
    """The teacher as a run uses it: in eval mode (freeze does that; SwinIR's drop path is random)."""
    return PretrainedModel(path, **options).eval()


def save_basicsr_file(net, path):
    """`net`'s weights (a network or a state dict) as BasicSR saves them, under 'params'."""
    torch.save({'params': net if isinstance(net, dict) else net.state_dict()}, path)
    return str(path)


def outputs_equal(net, teacher, size, scale, window=None):
    """Largest difference of the two on a batch of size x size images; BasicSR's SwinIR takes whole
    windows only, so its input is padded as dckd pads it at test and cropped back."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(pad_to_multiple(x, window))[..., :size * scale, :size * scale] if window else net(x)
        got = teacher(x)
    assert got.shape == (2, 3, size * scale, size * scale)
    return (got - expected).abs().max().item()


# ----- the published files load as the networks they are ------------------------------------------

def test_a_published_swinir_m_file_is_the_swinir_it_holds(tmp_path):
    net = random_network(SWINIR_M_X4)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == reference_layout('swinir_m_x4.tsv')
    teacher = pretrained(save_basicsr_file(net, tmp_path / '001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth'))
    assert teacher.detected['architecture'] == 'SwinIR'
    assert (teacher.detected['scale'], teacher.detected['in_channels'], teacher.detected['out_channels']) == (4, 3, 3)
    assert teacher.detected['parameters'] == sum(p.numel() for p in net.parameters())
    # 13 x 13 is not a multiple of the window: both pad it (SwinIR inside), and must agree
    assert outputs_equal(net, teacher, 13, 4, window=8) <= 1e-5


def test_a_swinir_light_safetensors_file_is_the_swinir_it_holds(tmp_path):
    net = random_network(SWINIR_LIGHT_X4)
    path = str(tmp_path / 'swinir_light_x4.safetensors')
    safetensors_torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    teacher = pretrained(path)
    assert (teacher.detected['architecture'], teacher.detected['scale']) == ('SwinIR', 4)
    assert outputs_equal(net, teacher, 16, 4) <= 1e-5


def test_the_nafnet_gopro_file_is_the_nafnet_it_holds(tmp_path):
    net = random_network(NAFNET_GOPRO)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == reference_layout('nafnet_w32_gopro.tsv')
    teacher = pretrained(save_basicsr_file(net, tmp_path / 'NAFNet-GoPro-width32.pth'))
    assert (teacher.detected['architecture'], teacher.detected['scale']) == ('NAFNet', 1)
    assert outputs_equal(net, teacher, 24, 1) <= 1e-5


def test_an_official_rcan_file_computes_the_official_rcan(tmp_path):
    state = official_checkpoint(reference_layout('rcan_official_x4.tsv'))
    path = tmp_path / 'RCAN_BIX4.pt'
    torch.save(state, path)  # the official files are flat state dicts
    teacher = pretrained(str(path))
    assert (teacher.detected['architecture'], teacher.detected['scale']) == ('RCAN', 4)
    x = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = official_forward(state, x * 255, num_group=10, num_block=20) / 255
        assert (teacher(x) - expected).abs().max().item() <= 1e-5


# Real-ESRGAN's published files (xinntao/Real-ESRGAN, inference_realesrgan.py): RealESRGAN_x4plus is
# BasicSR's RRDBNet (64 features, 23 blocks, growth 32) saved under params_ema; realesr-general-x4v3
# is SRVGGNetCompact (64 features, 32 convolutions, PReLU) saved under params
REALESRGAN_X4PLUS = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32,
                         scale=4)


def test_a_real_esrgan_x4plus_file_is_the_rrdbnet_it_holds(tmp_path):
    net = random_network(REALESRGAN_X4PLUS)
    path = tmp_path / 'RealESRGAN_x4plus.pth'
    torch.save({'params_ema': net.state_dict()}, path)
    teacher = pretrained(str(path))
    assert (teacher.detected['architecture'], teacher.detected['scale']) == ('ESRGAN', 4)  # spandrel's name
    assert (teacher.detected['in_channels'], teacher.detected['out_channels']) == (3, 3)
    assert teacher.detected['parameters'] == sum(p.numel() for p in net.parameters()) > 16_000_000
    assert outputs_equal(net, teacher, 12, 4) <= 1e-5


def test_a_real_esrgan_compact_file_is_the_srvggnetcompact_it_holds(tmp_path):
    srvgg_arch = pytest.importorskip('basicsr.archs.srvgg_arch')  # BasicSR 1.4 has it, 1.3.4.9 not
    torch.manual_seed(0)
    net = srvgg_arch.SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4,
                                     act_type='prelu').eval()
    path = tmp_path / 'realesr-general-x4v3.pth'
    torch.save({'params': net.state_dict()}, path)
    teacher = pretrained(str(path))
    assert (teacher.detected['architecture'], teacher.detected['scale']) == ('RealESRGAN Compact', 4)
    assert (teacher.detected['in_channels'], teacher.detected['out_channels']) == (3, 3)
    assert teacher.detected['parameters'] == sum(p.numel() for p in net.parameters())
    assert outputs_equal(net, teacher, 12, 4) <= 1e-5


def test_a_real_esrgan_x2_file_teaches_a_student(tmp_path):
    """RealESRGAN_x2plus's RRDBNet takes its input pixel-unshuffled (12 channels at x2); as a teacher
    it labels the student's batch with what the network itself computes."""
    x2plus = dict(REALESRGAN_X4PLUS, scale=2, num_block=2)  # 2 of the published 23 blocks: the same path
    teacher_net = random_network(x2plus)
    model = DCKDModel(pretrained_run(tmp_path, x2plus, 'RealESRGAN_x2plus.pth'))
    assert model.net_t.detected['architecture'] == 'ESRGAN'
    data = batch()
    model.feed_data(data)
    model.optimize_parameters(current_iter=1)
    assert set(model.log_dict) == {'l_pix', 'l_kd', 'l_dcl', 'l_ce'}
    with torch.no_grad():
        assert torch.allclose(model.net_t(data['lq']), teacher_net(data['lq']), atol=1e-5)


def test_outputs_are_not_clamped(tmp_path):
    """spandrel's own call clamps to [0, 1]; a teacher's targets are the network's output as it is."""
    net = random_network(dict(SWINIR_M_X4, depths=[2], num_heads=[2], embed_dim=16))
    with torch.no_grad():
        net.conv_last.bias += 2  # every output above 1
    teacher = pretrained(save_basicsr_file(net, tmp_path / 'bright.pth'))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = teacher(x)
    assert out.min() > 1
    assert torch.allclose(out, net(x), atol=1e-5)


def test_param_key_chooses_the_weights_of_a_basicsr_checkpoint(tmp_path):
    """spandrel prefers params_ema; param_key: params takes the other network of the file."""
    small = dict(SWINIR_M_X4, depths=[2], num_heads=[2], embed_dim=16)
    online, ema = random_network(small, seed=0), random_network(small, seed=1)
    path = str(tmp_path / 'net_g_1000.pth')
    torch.save({'params': online.state_dict(), 'params_ema': ema.state_dict()}, path)
    assert outputs_equal(ema, pretrained(path), 16, 4) <= 1e-5
    assert outputs_equal(online, pretrained(path, param_key='params'), 16, 4) <= 1e-5


# ----- files it cannot use are clear errors, never a wrong network ---------------------------------

def published_layout_file(tmp_path, listing):
    """A {'params': ...} file with random values in a published layout."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) for k, shape in reference_layout(listing).items()}
    return save_basicsr_file(state, tmp_path / 'teacher.pth')


@pytest.mark.parametrize('make_file', [
    lambda tmp_path: save_basicsr_file(random_network(edsr(64, 16, 4)), tmp_path / 'teacher.pth'),
    lambda tmp_path: published_layout_file(tmp_path, 'restormer_dim48.tsv'),
    lambda tmp_path: published_layout_file(tmp_path, 'rcan_basicsr_x4.tsv'),
], ids=['EDSR-M', 'Restormer-motion_deblurring', 'RCAN-basicsr-layout'])
def test_a_file_spandrel_does_not_know_says_so_and_points_to_the_explicit_options(tmp_path, make_file):
    with pytest.raises(ValueError, match=r'teacher\.pth: not a model spandrel .* recognises.*type: SwinIR.*'
                                         r'path\.pretrain_network_t.*import_modules'):
        PretrainedModel(make_file(tmp_path))


def test_a_model_that_is_not_image_to_image_is_refused(tmp_path):
    lama = pytest.importorskip('spandrel.architectures.LaMa')
    path = tmp_path / 'big-lama.pth'
    torch.save(lama.LaMa().state_dict(), path)
    with pytest.raises(ValueError, match=r'big-lama\.pth: a LaMa model for Inpainting, not an image-to-image model'):
        PretrainedModel(str(path))


def test_a_damaged_file_names_the_file(tmp_path):
    path = tmp_path / 'teacher.pth'
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='teacher.pth: cannot be read as a model file'):
        PretrainedModel(str(path))


# ----- in a run ------------------------------------------------------------------------------------

SMALL_SWINIR = dict(SWINIR_M_X4, depths=[2], num_heads=[2], embed_dim=16, img_size=16)


def pretrained_run(tmp_path, teacher_opt, teacher_file, **changes):
    """make_opt's x2 run with a PretrainedModel teacher read from `teacher_file`."""
    path = save_basicsr_file(random_network(teacher_opt), tmp_path / teacher_file)
    opt = make_opt(tmp_path, teacher={'type': 'PretrainedModel', 'path': path}, terms=('kd', 'dcl', 'ce'), **changes)
    del opt['path']['pretrain_network_t']
    return opt


def test_a_pretrained_teacher_trains_the_student_and_stays_as_loaded(tmp_path):
    teacher_net = random_network(dict(SMALL_SWINIR, upscale=2))
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2), 'teacher_x2.pth')
    model = DCKDModel(opt)
    frozen, student = snapshot(model.net_t), snapshot(model.net_g)
    data = batch()
    model.feed_data(data)
    model.optimize_parameters(current_iter=1)
    assert set(model.log_dict) == {'l_pix', 'l_kd', 'l_dcl', 'l_ce'}
    assert same(model.net_t, frozen) and not same(model.net_g, student)
    assert not model.net_t.training and not any(p.requires_grad for p in model.net_t.parameters())
    with torch.no_grad():  # the KD target is the original network's output
        assert torch.allclose(model.net_t(data['lq']), teacher_net(data['lq']), atol=1e-5)


def test_a_x2_file_in_a_x4_run_names_both_scales(tmp_path):
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2), 'teacher_x2.pth')
    opt['scale'] = opt['network_g']['upscale'] = 4
    opt['datasets']['train']['gt_size'] = 64
    with pytest.raises(OptionError, match=r'network_t\.path: .*teacher_x2\.pth holds a x2 SwinIR model, but the '
                                          r'options say scale: 4'):
        KDModel(opt)


def test_a_one_channel_file_for_colour_images_names_the_channels(tmp_path):
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2, in_chans=1), 'gray_x2.pth')
    with pytest.raises(OptionError, match=r'gray_x2\.pth holds a SwinIR model with 1 input and 1 output channels, '
                                          r'but network_g\.num_in_ch has 3'):
        KDModel(opt)


def test_the_file_is_given_once(tmp_path):
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2), 'teacher_x2.pth')
    opt['path']['pretrain_network_t'] = opt['network_t']['path']
    with pytest.raises(OptionError, match=r'path\.pretrain_network_t: network_t is a PretrainedModel, which reads its '
                                          r'weights from network_t\.path; remove path\.pretrain_network_t'):
        KDModel(opt)


def test_a_missing_file_is_named_before_anything_is_built(tmp_path):
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2), 'teacher_x2.pth')
    os.remove(opt['network_t']['path'])
    with pytest.raises(OptionError, match=r'network_t\.path: model file not found: .*teacher_x2\.pth'):
        KDModel(opt)


def test_the_check_prints_what_was_detected(tmp_path):
    opt = pretrained_run(tmp_path, dict(SMALL_SWINIR, upscale=2), 'teacher_x2.pth', total_iter=10)
    opt['datasets'] = {}  # no data to check here
    summary = '\n'.join(preflight(opt))
    assert 'teacher   network_t: PretrainedModel' in summary
    assert 'from SwinIR x2, 3->3 channels' in summary and 'detected by spandrel' in summary


@pytest.mark.parametrize('scale', [2, 4])
def test_the_shipped_options_distil_a_hat_file_into_the_swinir_student(tmp_path, monkeypatch, scale):
    """options/train/pretrained/dckd_pretrained_swinir_x*.yml with a HAT file where it says (a small
    HAT at random weights, saved under params_ema as HAT's releases are)."""
    hat = pytest.importorskip('spandrel.architectures.HAT')
    monkeypatch.chdir(tmp_path)
    with open(os.path.join(PROJECT_ROOT, 'options', 'train', 'pretrained',
                           f'dckd_pretrained_swinir_x{scale}.yml')) as f:
        opt = yaml.safe_load(f)
    torch.manual_seed(0)
    net = hat.HAT(upscale=scale, embed_dim=60, depths=[2], num_heads=[2], window_size=8, img_size=16,
                  upsampler='pixelshuffle').eval()
    os.makedirs(os.path.dirname(opt['network_t']['path']))
    torch.save({'params_ema': net.state_dict()}, opt['network_t']['path'])
    opt['path']['pretrain_network_vqgan'] = None  # no VQGAN file here: random encoder
    parsed = parse_training_options(opt)
    teacher = freeze(build(parsed.network_t, 'network_t'))
    assert check_detected(teacher, parsed, 'network_t').startswith(f'HAT x{scale}, 3->3 channels')
    lq = torch.rand(2, 3, 48, 48)  # the training patch
    with torch.no_grad():
        assert torch.allclose(teacher(lq), net(lq), atol=1e-5)
