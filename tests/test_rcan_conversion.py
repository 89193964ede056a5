"""Official RCAN checkpoints (yulunzhang/RCAN, `RCAN_BIX{2,3,4}.pt`) as BasicSR `RCAN` teachers.

The published layout comes from ../shared/reference/keys (rcan_official_x4.tsv -> rcan_basicsr_x4.tsv);
the behaviour is checked against an independent functional forward of the official RCAN formulation
(sub_mean -> head -> groups -> body tail + residual -> tail -> add_mean, on images in [0, 255]).
"""
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network

from dckd.convert_rcan import main
from dckd_arch.rcan_layout import is_official_rcan, official_to_basicsr
from dckd_models.frozen import checkpoint_weights
from conftest import reference_layout

RCAN_MEAN = (0.4488, 0.4371, 0.4040)
SMALL = dict(num_group=2, num_block=2, num_feat=16, squeeze_factor=4)


def mean_shift(sign, rgb_range=255., mean=RCAN_MEAN, std=(1., 1., 1.)):
    """RCAN's common.MeanShift, written out: weight = eye(3) / std, bias = sign * rgb_range * mean / std."""
    std = torch.tensor(std)
    weight = (torch.eye(3) / std.view(3, 1)).view(3, 3, 1, 1)
    bias = sign * rgb_range * torch.tensor(mean) / std
    return weight, bias


def official_layout(num_group, num_block, num_feat, reduction, scale):
    """{key: shape} of the official RCAN module for any size (checked against the published listing below)."""
    conv3 = lambda c_out, c_in: {'weight': (c_out, c_in, 3, 3), 'bias': (c_out,)}  # noqa: E731
    conv1 = lambda c_out, c_in: {'weight': (c_out, c_in, 1, 1), 'bias': (c_out,)}  # noqa: E731
    modules = {'sub_mean': conv1(3, 3), 'add_mean': conv1(3, 3), 'head.0': conv3(num_feat, 3)}
    for g in range(num_group):
        for b in range(num_block):
            block = f'body.{g}.body.{b}.body'
            modules[f'{block}.0'] = conv3(num_feat, num_feat)
            modules[f'{block}.2'] = conv3(num_feat, num_feat)
            modules[f'{block}.3.conv_du.0'] = conv1(num_feat // reduction, num_feat)
            modules[f'{block}.3.conv_du.2'] = conv1(num_feat, num_feat // reduction)
        modules[f'body.{g}.body.{num_block}'] = conv3(num_feat, num_feat)
    modules[f'body.{num_group}'] = conv3(num_feat, num_feat)
    if scale == 3:
        modules['tail.0.0'] = conv3(9 * num_feat, num_feat)
    else:
        for i in range(scale.bit_length() - 1):
            modules[f'tail.0.{2 * i}'] = conv3(4 * num_feat, num_feat)
    modules['tail.1'] = conv3(3, num_feat)
    return {f'{name}.{p}': shape for name, params in modules.items() for p, shape in params.items()}


def official_checkpoint(layout, seed=0, scale=0.05):
    """Random weights in `layout`, except the mean-shift convs, which hold RCAN's real values."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=generator) * scale for k, shape in layout.items()}
    state['sub_mean.weight'], state['sub_mean.bias'] = mean_shift(-1)
    state['add_mean.weight'], state['add_mean.bias'] = mean_shift(+1)
    return state


def official_forward(sd, x, num_group, num_block):
    """The official RCAN forward (rcan.py / common.py), functional, on an image in [0, rgb_range]."""
    conv = lambda name, h: F.conv2d(h, sd[f'{name}.weight'], sd[f'{name}.bias'],  # noqa: E731
                                    padding=sd[f'{name}.weight'].shape[-1] // 2)
    x = conv('sub_mean', x)
    x = conv('head.0', x)
    res = x
    for g in range(num_group):
        group_in = res
        for b in range(num_block):
            block = f'body.{g}.body.{b}.body'
            r = conv(f'{block}.2', F.relu(conv(f'{block}.0', res)))
            y = F.adaptive_avg_pool2d(r, 1)  # CALayer: avg_pool -> conv_du (conv, ReLU, conv, Sigmoid)
            y = torch.sigmoid(conv(f'{block}.3.conv_du.2', F.relu(conv(f'{block}.3.conv_du.0', y))))
            res = r * y + res  # RCAB: res_scale is not applied in the official code
        res = conv(f'body.{g}.body.{num_block}', res) + group_in
    res = conv(f'body.{num_group}', res) + x
    i = 0
    while f'tail.0.{i}.weight' in sd:  # Upsampler: conv -> PixelShuffle, repeated
        h = conv(f'tail.0.{i}', res)
        res = F.pixel_shuffle(h, int(round((h.shape[1] / res.shape[1])**0.5)))
        i += 2
    return conv('add_mean', conv('tail.1', res))


def basicsr_rcan(info, state_dict=None):
    net = build_network({**info, 'type': 'RCAN', 'img_range': 255., 'rgb_mean': list(RCAN_MEAN)})
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
    return net.eval()


@pytest.fixture(scope='module')
def published_x4():
    official = official_checkpoint(reference_layout('rcan_official_x4.tsv'))
    converted, info = official_to_basicsr(official)
    return official, converted, info


def small_official(scale, seed=0):
    layout = official_layout(SMALL['num_group'], SMALL['num_block'], SMALL['num_feat'], SMALL['squeeze_factor'], scale)
    return official_checkpoint(layout, seed)


# 1. layout

def test_layout_helper_reproduces_the_published_listing():
    assert official_layout(10, 20, 64, 16, 4) == reference_layout('rcan_official_x4.tsv')
    assert list(official_layout(10, 20, 64, 16, 4)) == list(reference_layout('rcan_official_x4.tsv'))


def test_published_x4_converts_to_exactly_the_basicsr_layout(published_x4):
    official, converted, info = published_x4
    expected = reference_layout('rcan_basicsr_x4.tsv')
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert list(converted) == list(expected)
    assert len(official) - len(converted) == 4  # sub_mean/add_mean weight+bias dropped
    assert {k: info[k] for k in ('num_group', 'num_block', 'num_feat', 'squeeze_factor', 'upscale')} == dict(
        num_group=10, num_block=20, num_feat=64, squeeze_factor=16, upscale=4)
    assert info['img_range'] == 255. and info['rgb_mean'] == list(RCAN_MEAN)
    basicsr_rcan(info, converted)  # the inferred options are usable as network_t; strict load succeeds


def test_recognises_the_official_layout_only(published_x4):
    official, converted, _ = published_x4
    assert is_official_rcan(official)
    assert not is_official_rcan(converted)
    assert not is_official_rcan({'params': converted})
    edsr = {k: v for k, v in official.items() if 'conv_du' not in k}  # official EDSR: same head/sub_mean keys
    assert not is_official_rcan(edsr)
    with pytest.raises(ValueError, match='not an official RCAN'):
        official_to_basicsr(converted)


# 2. hand-checked mapping

@pytest.mark.parametrize('official_key, basicsr_key', [
    ('head.0.weight', 'conv_first.weight'),
    ('body.0.body.0.body.0.weight', 'body.0.residual_group.0.rcab.0.weight'),
    ('body.0.body.0.body.0.bias', 'body.0.residual_group.0.rcab.0.bias'),
    ('body.3.body.7.body.2.weight', 'body.3.residual_group.7.rcab.2.weight'),
    ('body.0.body.0.body.3.conv_du.0.weight', 'body.0.residual_group.0.rcab.3.attention.1.weight'),
    ('body.9.body.19.body.3.conv_du.2.bias', 'body.9.residual_group.19.rcab.3.attention.3.bias'),
    ('body.5.body.20.weight', 'body.5.conv.weight'),  # group tail: index num_block
    ('body.10.weight', 'conv_after_body.weight'),  # body tail: index num_group
    ('body.10.bias', 'conv_after_body.bias'),
    ('tail.0.0.weight', 'upsample.0.weight'),
    ('tail.0.2.bias', 'upsample.2.bias'),
    ('tail.1.weight', 'conv_last.weight'),
])
def test_key_carries_the_official_tensor_unchanged(published_x4, official_key, basicsr_key):
    official, converted, _ = published_x4
    assert torch.equal(converted[basicsr_key], official[official_key])


# 3. behaviour

@pytest.mark.parametrize('scale', [2, 3, 4])
def test_converted_weights_reproduce_the_official_network(scale):
    official = small_official(scale)
    converted, info = official_to_basicsr(official)
    assert {k: info[k] for k in (*SMALL, 'upscale')} == {**SMALL, 'upscale': scale}
    net = basicsr_rcan(info, converted)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))  # BasicSR input in [0, 1]
    with torch.no_grad():
        reference = official_forward(official, x * 255, SMALL['num_group'], SMALL['num_block'])
        output = net(x) * 255
    assert output.shape == (1, 3, 12 * scale, 10 * scale)
    assert reference.abs().max() > 10  # not a trivial (all-mean) output
    torch.testing.assert_close(output, reference, rtol=1e-4, atol=1e-3)


def test_mean_shift_layers_are_what_basicsr_does_with_img_range_255():
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor(RCAN_MEAN).view(1, 3, 1, 1)
    sub_w, sub_b = mean_shift(-1)
    add_w, add_b = mean_shift(+1)
    torch.testing.assert_close(F.conv2d(x * 255, sub_w, sub_b), (x - mean) * 255)
    y = torch.randn(1, 3, 8, 8) * 50  # network output before add_mean, on the 255 scale
    torch.testing.assert_close(F.conv2d(y, add_w, add_b), (y / 255 + mean) * 255)


# 4. other mean-shifts are refused

@pytest.mark.parametrize('layer, values, message', [
    ('sub_mean', dict(sign=-1, rgb_range=1.), r'sub_mean encodes std \(1, 1, 1\) and rgb_range\*mean '
                                              r'\(0\.4488, 0\.4371, 0\.404\)'),
    ('add_mean', dict(sign=+1, std=(0.5, 0.5, 0.5)), r'add_mean encodes std \(0\.5, 0\.5, 0\.5\)'),
    ('add_mean', dict(sign=+1, mean=(0.5, 0.5, 0.5)), r'add_mean .* rgb_range\*mean \(127\.5, 127\.5, 127\.5\)'),
])
def test_another_mean_shift_is_refused_naming_its_values(layer, values, message):
    official = small_official(2)
    official[f'{layer}.weight'], official[f'{layer}.bias'] = mean_shift(**values)
    with pytest.raises(ValueError, match=message):
        official_to_basicsr(official)


def test_unknown_or_missing_keys_are_refused():
    official = small_official(2)
    with pytest.raises(ValueError, match='keys of no official RCAN layer'):
        official_to_basicsr({**official, 'body.0.body.0.body.1.weight': torch.zeros(1)})
    del official['body.1.body.2.weight']  # group tail of the last group
    with pytest.raises(ValueError, match=r'missing.*body\.1\.conv\.weight'):
        official_to_basicsr(official)


# 5. loading and the command line

@pytest.fixture
def official_file(tmp_path):
    official = small_official(2, seed=3)
    path = tmp_path / 'RCAN_BIX2.pt'
    torch.save(official, path, _use_new_zipfile_serialization=False)  # legacy format, like the 2018 files
    return str(path), official


def test_official_and_converted_files_load_to_the_same_network(official_file, tmp_path):
    path, official = official_file
    out = str(tmp_path / 'RCAN_BIX2_basicsr.pth')
    main([path, out])
    def as_teacher(file):  # what a teacher loads: the official file converted on the fly, or the converted file
        return checkpoint_weights({'path': file, 'param_key': 'params', 'strict': True}, 'network_t')

    on_the_fly, from_file = as_teacher(path), as_teacher(out)
    assert list(on_the_fly) == list(from_file)
    assert all(torch.equal(on_the_fly[k], from_file[k]) for k in on_the_fly)
    info = official_to_basicsr(official)[1]
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(basicsr_rcan(info, on_the_fly)(x), basicsr_rcan(info, from_file)(x))


def test_cli_writes_params_refuses_to_overwrite_and_prints_the_options(official_file, tmp_path, capsys):
    path, official = official_file
    out = tmp_path / 'RCAN_BIX2_basicsr.pth'
    main([path, str(out)])
    printed = capsys.readouterr().out
    for line in ('type: RCAN', 'num_group: 2', 'num_block: 2', 'num_feat: 16', 'squeeze_factor: 4', 'upscale: 2'):
        assert line in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ['RCAN_BIX2.pt', 'RCAN_BIX2_basicsr.pth']  # no .tmp left

    written = torch.load(out, map_location='cpu', weights_only=True)
    assert list(written) == ['params']
    info = dict(num_in_ch=3, num_out_ch=3, upscale=2, **SMALL)
    basicsr_rcan(info, written['params'])  # strict

    before = out.stat().st_mtime_ns
    with pytest.raises(SystemExit, match='--force'):
        main([path, str(out)])
    assert out.stat().st_mtime_ns == before
    main([path, str(out), '--force'])


def test_cli_refuses_a_basicsr_file(official_file, tmp_path):
    path, _ = official_file
    converted = str(tmp_path / 'converted.pth')
    main([path, converted])
    with pytest.raises(SystemExit, match='not an official RCAN checkpoint'):
        main([converted, str(tmp_path / 'again.pth')])


def test_a_teacher_option_pointing_at_an_official_rcan_file_is_converted_on_the_fly(official_file, tmp_path):
    from dckd_models import KDModel
    from test_models import make_opt
    path, official = official_file
    converted, info = official_to_basicsr(official)
    opt = make_opt(tmp_path, teacher=dict(info), terms=('kd', ))
    opt['scale'] = opt['network_g']['upscale'] = info['upscale']
    opt['path']['pretrain_network_t'] = path
    model = KDModel(opt)
    assert all(torch.equal(v, converted[k]) for k, v in model.net_t.state_dict().items())
