"""NAFNet and Restormer, the deblurring/deraining backbones: the published checkpoints' key layouts
and sizes, strict loading of files in the published layout through BasicSR, and image-to-image
forward passes (global residual) on any image size."""
import pytest
import torch
from torch.nn import functional as F

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

import dckd_arch.nafnet_arch as nafnet_arch
import dckd_arch.restormer_arch as restormer_arch
from conftest import reference_layout

# Table 1 of the paper: listing of the checkpoint layout -> (options as in the authors' files, size).
PUBLISHED = {
    'nafnet_w32_gopro.tsv': (dict(type='NAFNet', img_channel=3, width=32, middle_blk_num=1,
                                  enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1]), 17.1e6),
    'nafnet_w16.tsv': (dict(type='NAFNet', img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 14],
                            dec_blk_nums=[1, 1, 1, 1]), 2.7e6),
    'restormer_dim48.tsv': (dict(type='Restormer', inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
                                 num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False,
                                 LayerNorm_type='WithBias', dual_pixel_task=False), 26.1e6),
    'restormer_dim24.tsv': (dict(type='Restormer', inp_channels=3, out_channels=3, dim=24, num_blocks=[2, 3, 3, 4],
                                 num_refinement_blocks=2, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False,
                                 LayerNorm_type='WithBias', dual_pixel_task=False), 3.8e6),
}

# Released files -> the layout they store, always as {'params': state_dict}.
PUBLISHED_FILES = {
    'NAFNet-GoPro-width32.pth': 'nafnet_w32_gopro.tsv',
    'motion_deblurring.pth': 'restormer_dim48.tsv',
    'deraining.pth': 'restormer_dim48.tsv',
}

# Small enough for CPU forward passes; two (NAFNet) or three (Restormer) down-samplings.
TINY_NAFNET = dict(type='NAFNet', img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
TINY_RESTORMER = dict(type='Restormer', dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
TINY = {'NAFNet': TINY_NAFNET, 'Restormer': TINY_RESTORMER}
# How each pads to its down-sampling multiple (right and bottom), as the authors evaluate.
PAD_MODE = {'NAFNet': 'constant', 'Restormer': 'reflect'}

_built = {}


def published_network(listing):
    """The paper-sized network of a listing, built once through BasicSR (only ever inspected, never run)."""
    if listing not in _built:
        _built[listing] = build_network(PUBLISHED[listing][0])
    return _built[listing]


def layout_of(network):
    return {key: tuple(value.shape) for key, value in network.state_dict().items()}


def tiny_network(name, seed=0):
    """A tiny network with every parameter random, so that no block is the identity (NAFNet's
    `beta`/`gamma` start at zero) and a wrong wiring shows in the output."""
    network = build_network(TINY[name]).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return network


# 1. key layout and 2. size


@pytest.mark.parametrize('listing', sorted(PUBLISHED))
def test_state_dict_keys_and_shapes_equal_the_published_listing(listing):
    assert layout_of(published_network(listing)) == reference_layout(listing)


@pytest.mark.parametrize('listing', sorted(PUBLISHED))
def test_parameter_count_is_the_papers(listing):
    network = published_network(listing)
    count = sum(parameter.numel() for parameter in network.parameters())
    assert count == pytest.approx(PUBLISHED[listing][1], rel=0.02)


# 3. loading the released files


@pytest.mark.parametrize('filename', sorted(PUBLISHED_FILES))
def test_checkpoint_in_the_published_layout_loads_strictly_with_its_values(filename, tmp_path):
    listing = PUBLISHED_FILES[filename]
    generator = torch.Generator().manual_seed(len(filename))
    state = {key: torch.randn(shape, generator=generator) for key, shape in reference_layout(listing).items()}
    path = tmp_path / filename
    torch.save({'params': state}, path)

    network = published_network(listing)
    network.load_state_dict(torch.load(path, map_location='cpu', weights_only=True)['params'], strict=True)

    loaded = network.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


# 4. forward passes


@pytest.mark.parametrize('name', sorted(TINY))
@pytest.mark.parametrize('size', [(37, 53), (64, 40), (5, 3)])
def test_output_has_the_input_size_for_any_height_and_width(name, size):
    network = tiny_network(name)
    image = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = network(image)
        assert out.shape == image.shape
        assert torch.isfinite(out).all()
        assert torch.equal(out, network(image))


@pytest.mark.parametrize('name', sorted(TINY))
def test_batch_items_are_restored_independently(name):
    network = tiny_network(name)
    images = torch.rand(2, 3, 21, 30)
    with torch.no_grad():
        batch = network(images)
        assert torch.allclose(batch[1:], network(images[1:]), atol=1e-5)


@pytest.mark.parametrize('name', sorted(TINY))
def test_global_residual_a_zero_last_conv_returns_the_input(name):
    network = tiny_network(name)
    last = network.ending if name == 'NAFNet' else network.output
    with torch.no_grad():
        for parameter in last.parameters():
            parameter.zero_()
        image = torch.rand(1, 3, 37, 53)
        assert torch.equal(network(image), image)


@pytest.mark.parametrize('name', sorted(TINY))
def test_odd_sizes_are_padded_at_the_right_and_bottom_and_cropped_back(name):
    """Equal to running the network on the image padded by hand (NAFNet with zeros, Restormer by
    reflection) to a multiple of its down-sampling factor, then cropping."""
    network = tiny_network(name)
    image = torch.rand(1, 3, 37, 53)
    factor = 4 if name == 'NAFNet' else 8
    padded = F.pad(image, (0, -53 % factor, 0, -37 % factor), mode=PAD_MODE[name])
    with torch.no_grad():
        assert torch.allclose(network(image), network(padded)[..., :37, :53], atol=1e-5)


def nafnet_unet(network, image):
    """NAFNet's published wiring, written out: skips are added after each up-sampling."""
    x = network.intro(image)
    skips = []
    for encoder, down in zip(network.encoders, network.downs):
        x = encoder(x)
        skips.append(x)
        x = down(x)
    x = network.middle_blks(x)
    for decoder, up, skip in zip(network.decoders, network.ups, skips[::-1]):
        x = decoder(up(x) + skip)
    return network.ending(x) + image


def restormer_unet(network, image):
    """Restormer's published wiring, written out: skips are concatenated, reduced by 1x1 convs at
    levels 3 and 2, kept at twice `dim` channels at level 1."""
    e1 = network.encoder_level1(network.patch_embed(image))
    e2 = network.encoder_level2(network.down1_2(e1))
    e3 = network.encoder_level3(network.down2_3(e2))
    z = network.latent(network.down3_4(e3))
    d3 = network.decoder_level3(network.reduce_chan_level3(torch.cat([network.up4_3(z), e3], 1)))
    d2 = network.decoder_level2(network.reduce_chan_level2(torch.cat([network.up3_2(d3), e2], 1)))
    d1 = network.decoder_level1(torch.cat([network.up2_1(d2), e1], 1))
    return network.output(network.refinement(d1)) + image


@pytest.mark.parametrize('name, unet', [('NAFNet', nafnet_unet), ('Restormer', restormer_unet)])
def test_sizes_already_multiples_are_not_padded(name, unet):
    network = tiny_network(name)
    image = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.allclose(network(image), unet(network, image), atol=1e-6)


def test_restormer_dual_pixel_task_takes_two_views_and_has_no_global_residual():
    network = build_network(dict(TINY_RESTORMER, inp_channels=6, out_channels=3, dual_pixel_task=True)).eval()
    assert 'skip_conv.weight' in network.state_dict()
    with torch.no_grad():
        network.output.weight.zero_()
        out = network(torch.rand(1, 6, 19, 27))
    assert out.shape == (1, 3, 19, 27)
    assert torch.equal(out, torch.zeros_like(out))


# the building blocks, against their formulas


def test_nafnet_layer_norm_normalises_each_pixels_channels():
    norm = nafnet_arch.LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
        x = torch.randn(2, 6, 5, 7)
        mean = x.mean(1, keepdim=True)
        var = ((x - mean)**2).mean(1, keepdim=True)
        expected = (x - mean) / (var + 1e-6).sqrt() * norm.weight.view(1, 6, 1, 1) + norm.bias.view(1, 6, 1, 1)
        assert torch.allclose(norm(x), expected, atol=1e-5)


@pytest.mark.parametrize('kind', ['WithBias', 'BiasFree'])
def test_restormer_layer_norm_types(kind):
    norm = restormer_arch.LayerNorm(6, kind)
    assert sorted(dict(norm.named_parameters())) == (['body.bias', 'body.weight'] if kind == 'WithBias' else
                                                     ['body.weight'])
    with torch.no_grad():
        for parameter in norm.parameters():
            parameter.normal_()
        x = torch.randn(2, 6, 5, 7)
        mean = x.mean(1, keepdim=True)
        var = ((x - mean)**2).mean(1, keepdim=True)
        weight = norm.body.weight.view(1, 6, 1, 1)
        if kind == 'WithBias':
            expected = (x - mean) / (var + 1e-5).sqrt() * weight + norm.body.bias.view(1, 6, 1, 1)
        else:
            expected = x / (var + 1e-5).sqrt() * weight
        assert torch.allclose(norm(x), expected, atol=1e-5)


def test_restormer_attention_is_across_channels_per_head():
    torch.manual_seed(0)
    attention = restormer_arch.Attention(8, num_heads=2, bias=False)
    with torch.no_grad():
        attention.temperature.copy_(torch.tensor([0.5, 3.0]).view(2, 1, 1))
        x = torch.randn(1, 8, 5, 7)
        q, k, v = attention.qkv_dwconv(attention.qkv(x)).reshape(3, 8, 35)  # (q/k/v, channel, pixel)
        heads = []
        for head, channels in enumerate((slice(0, 4), slice(4, 8))):
            qh, kh = F.normalize(q[channels], dim=1), F.normalize(k[channels], dim=1)
            weights = torch.softmax(qh @ kh.T * attention.temperature[head, 0, 0], dim=1)  # 4 x 4
            heads.append(weights @ v[channels])
        expected = attention.project_out(torch.cat(heads).reshape(1, 8, 5, 7))
        assert torch.allclose(attention(x), expected, atol=1e-5)


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match='dec_blk_nums'):
        nafnet_arch.NAFNet(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1])
    with pytest.raises(ValueError, match='LayerNorm_type'):
        restormer_arch.Restormer(dim=8, num_blocks=[1, 1, 1, 1], LayerNorm_type='Batch')


# 5. registration


@pytest.mark.parametrize('name, module', [('NAFNet', nafnet_arch), ('Restormer', restormer_arch)])
def test_registered_in_basicsr_from_our_modules(name, module):
    assert ARCH_REGISTRY.get(name) is getattr(module, name)
    assert getattr(module, name).__module__ == f'dckd_arch.{module.__name__.rsplit(".", 1)[-1]}'
