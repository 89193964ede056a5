"""VQGAN encoder: the published key layout, one pass giving five features + latent, and loading of
checkpoints built in the published layout (Lightning and plain), safely. The whole VQGAN (to train
one): taming's layout, nearest codes with VQ-VAE's losses, its encoder side loading into the
encoder, and the codebook usage that shows a collapse."""
import os

import pytest
import torch

from dckd.convert_vqgan import convert
from dckd_arch.vqgan_arch import (VQGAN, AttnBlock, Codebook, EMACodebook, VQGANEncoder, codebook_usage,
                                  encoder_state_dict, load_vqgan_encoder)
from conftest import reference_layout


@pytest.fixture(scope='module')
def published_encoder():
    return VQGANEncoder()


def random_state(layout, generator):
    return {k: torch.randn(shape, generator=generator) for k, shape in layout.items()}


def test_state_dict_matches_taming_vqmodel_encoder_layout(published_encoder):
    expected = reference_layout('vqgan_f16_n1024_encoder.tsv')
    actual = {k: tuple(v.shape) for k, v in published_encoder.state_dict().items()}
    assert actual == expected
    assert sum(v.numel() for v in published_encoder.state_dict().values()) == pytest.approx(29.6e6, rel=0.01)


def test_one_pass_gives_the_five_level_features_and_the_latent_tokens(published_encoder):
    with torch.no_grad():
        features, latent = published_encoder(torch.rand(2, 3, 96, 96))
    assert [tuple(f.shape) for f in features] == [(2, 128, 96, 96), (2, 128, 48, 48), (2, 256, 24, 24),
                                                  (2, 256, 12, 12), (2, 512, 6, 6)]
    assert tuple(latent.shape) == (2, 256, 6, 6)


def test_attention_equals_taming_formula():
    torch.manual_seed(0)
    block = AttnBlock(32).eval()
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        h = block.norm(x)
        q, k, v = (p(h).reshape(2, 32, 35) for p in (block.q, block.k, block.v))
        weights = torch.softmax(torch.bmm(q.permute(0, 2, 1), k) * 32**-0.5, dim=2)  # (b, query, key)
        expected = x + block.proj_out(torch.bmm(v, weights.permute(0, 2, 1)).reshape(2, 32, 5, 7))
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_input_range_option_rescales_zero_one_images():
    torch.manual_seed(0)
    taming = VQGANEncoder(ch=32, num_res_blocks=1, z_channels=8, embed_dim=8, n_embed=4, input_range=[-1, 1])
    released = VQGANEncoder(ch=32, num_res_blocks=1, z_channels=8, embed_dim=8, n_embed=4, input_range=[0, 1])
    released.load_state_dict(taming.state_dict())
    img = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(taming(img)[1], released(img * 2 - 1)[1])
    with pytest.raises(ValueError, match='input_range'):
        VQGANEncoder(input_range=[0, 255])


class LightningHParams:
    """Stands for the training-code objects a Lightning checkpoint pickles beside the weights."""

    def __init__(self):
        self.base_learning_rate = 4.5e-6


@pytest.fixture(scope='module')
def lightning_checkpoint(tmp_path_factory):
    layout = reference_layout('vqgan_f16_n1024_full_vqmodel.tsv')
    generator = torch.Generator().manual_seed(1)
    state = {k: (torch.randn(s, generator=generator) if not k.startswith(('decoder', 'loss')) else torch.zeros(s))
             for k, s in layout.items()}
    path = tmp_path_factory.mktemp('vqgan') / 'last.ckpt'
    torch.save({'epoch': 3, 'global_step': 1000, 'pytorch-lightning_version': '1.0.8', 'state_dict': state,
                'hparams': LightningHParams(), 'optimizer_states': [{}, {}], 'lr_schedulers': []}, path)
    return path, state


def test_loads_the_lightning_checkpoint_ignoring_decoder_and_loss(published_encoder, lightning_checkpoint):
    path, state = lightning_checkpoint
    load_vqgan_encoder(published_encoder, str(path))
    loaded = published_encoder.state_dict()
    assert torch.equal(loaded['quantize.embedding.weight'], state['quantize.embedding.weight'])
    assert torch.equal(loaded['encoder.down.4.attn.1.proj_out.weight'], state['encoder.down.4.attn.1.proj_out.weight'])
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)


def test_converter_writes_an_encoder_only_pth_that_loads_and_never_overwrites(published_encoder, lightning_checkpoint,
                                                                               tmp_path):
    path, state = lightning_checkpoint
    out = tmp_path / 'vqgan_encoder.pth'
    assert convert(str(path), str(out)) == 147
    saved = torch.load(out, weights_only=True)['params']
    assert set(saved) == set(reference_layout('vqgan_f16_n1024_encoder.tsv'))
    fresh = VQGANEncoder()
    load_vqgan_encoder(fresh, str(out))
    assert torch.equal(fresh.codebook, state['quantize.embedding.weight'])
    with pytest.raises(SystemExit, match='exists'):
        convert(str(path), str(out))


def test_a_missing_encoder_key_is_named(tmp_path):
    layout = reference_layout('vqgan_f16_n1024_encoder.tsv')
    state = {k: torch.zeros(s) for k, s in layout.items() if k != 'quant_conv.bias'}
    path = tmp_path / 'broken.pth'
    torch.save({'params': state}, path)
    with pytest.raises(KeyError, match=r'lacks 1 encoder key.*quant_conv\.bias'):
        load_vqgan_encoder(VQGANEncoder(), str(path))


def test_a_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='VQGAN checkpoint not found.*nowhere.ckpt'):
        load_vqgan_encoder(VQGANEncoder(ch=32, num_res_blocks=1), str(tmp_path / 'nowhere.ckpt'))


class RunsACommand:

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    payload = RunsACommand()
    payload.marker = tmp_path / 'was_run'
    path = tmp_path / 'evil.ckpt'
    torch.save({'state_dict': {}, 'payload': payload}, path)
    with pytest.raises(RuntimeError, match='cannot load VQGAN checkpoint'):
        load_vqgan_encoder(VQGANEncoder(ch=32, num_res_blocks=1), str(path))
    assert not payload.marker.exists()


# ----- the whole VQGAN, to train one -------------------------------------------------------------

SMALL = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8, ), resolution=32, z_channels=8,
             embed_dim=4, n_embed=16)


def test_the_whole_vqgan_has_taming_vqmodels_layout_without_its_loss():
    layout = reference_layout('vqgan_f16_n1024_full_vqmodel.tsv')
    expected = {k: shape for k, shape in layout.items() if not k.startswith('loss.')}
    assert {k: tuple(v.shape) for k, v in VQGAN().state_dict().items()} == expected


def test_each_token_takes_its_nearest_code_with_vq_vaes_losses_and_a_straight_through_gradient():
    codebook = Codebook(3, 2)
    codebook.embedding.weight.data = torch.tensor([[0., 0.], [1., 0.], [0., 2.]])
    z = torch.tensor([[0.9, 0.2], [0.1, 1.5], [-0.2, 0.1], [0.6, 0.0]]).t().reshape(1, 2, 2, 2).requires_grad_()
    quantized, loss, codes = codebook(z, beta=0.25)
    assert codes.tolist() == [[[1, 2], [0, 1]]]  # by hand: squared distances to the three codes
    assert torch.equal(quantized.detach(), torch.tensor([[1., 0.], [0., 2.], [0., 0.], [1., 0.]]).t().reshape(1, 2, 2, 2))
    squared_error = (0.01 + 0.04 + 0.01 + 0.25 + 0.04 + 0.01 + 0.16 + 0) / 8
    assert loss.item() == pytest.approx(1.25 * squared_error)  # codebook term + 0.25 x commitment term
    quantized.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # the decoder's gradient reaches the encoder unchanged


def test_the_encoder_side_of_a_trained_vqgan_loads_into_the_encoder_dckd_uses(tmp_path):
    torch.manual_seed(0)
    vqgan = VQGAN(**SMALL)
    path = tmp_path / 'vqgan_encoder.pth'
    torch.save({'params': encoder_state_dict(vqgan.state_dict())}, path)
    encoder = VQGANEncoder(**SMALL)
    load_vqgan_encoder(encoder, str(path))
    img = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features, latent = encoder(img)
        reconstruction, _, codes = vqgan(img, with_codes=True)
        assert torch.equal(latent, vqgan.quant_conv(vqgan.encoder(img * 2 - 1)[1]))
    assert torch.equal(encoder.codebook, vqgan.quantize.embedding.weight)
    assert reconstruction.shape == img.shape and codes.shape == (2, 8, 8)  # downsampling 2^(3 levels - 1)
    assert [f.shape[-1] for f in features] == [32, 16, 8]


def test_codebook_usage_counts_the_codes_used_and_their_perplexity():
    assert codebook_usage(torch.tensor([0, 0, 1, 1]), 4) == (2, pytest.approx(2.0))
    assert codebook_usage(torch.arange(16).repeat(3), 16) == (16, pytest.approx(16.0))
    frequencies = torch.tensor([0.5, 0.25, 0.25])
    assert codebook_usage(torch.tensor([3, 3, 1, 2]), 8) == (3, pytest.approx(float(torch.exp(
        -(frequencies * frequencies.log()).sum()))))


def test_a_collapsed_codebook_shows_as_one_code_used():
    torch.manual_seed(0)
    vqgan = VQGAN(**SMALL)
    img = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        used, perplexity = codebook_usage(vqgan(img, with_codes=True)[2], SMALL['n_embed'])
        assert used > 4 and perplexity > 3  # 256 tokens over a fresh codebook
        vqgan.quantize.embedding.weight[:] = vqgan.quantize.embedding.weight[5]  # every code the same vector
        assert codebook_usage(vqgan(img, with_codes=True)[2], SMALL['n_embed']) == (1, 1.0)


def test_the_ema_quantizer_takes_nearest_codes_and_its_codes_load_into_the_encoder(tmp_path):
    torch.manual_seed(0)
    vqgan = VQGAN(**SMALL, quantizer='ema')
    img = torch.rand(2, 3, 32, 32)
    vqgan(img, with_codes=True)  # training mode: k-means starts the codes on this batch
    vqgan.eval()
    with torch.no_grad():
        latent = vqgan.quant_conv(vqgan.encoder(img * 2 - 1)[1])
        _, _, codes = vqgan(img, with_codes=True)
    tokens = latent.permute(0, 2, 3, 1).reshape(-1, SMALL['embed_dim'])
    assert torch.equal(codes.flatten(), torch.cdist(tokens, vqgan.codebook).argmin(1))
    torch.save({'params': encoder_state_dict(vqgan.state_dict())}, tmp_path / 'ema_encoder.pth')
    encoder = VQGANEncoder(**SMALL)
    load_vqgan_encoder(encoder, str(tmp_path / 'ema_encoder.pth'))
    assert torch.equal(encoder.codebook, vqgan.codebook)
    with torch.no_grad():
        assert torch.equal(encoder(img)[1], latent)


def test_the_ema_quantizer_restarts_the_codes_of_a_collapsed_codebook():
    """Every code one vector, none but the first ever assigned: taming's quantizer stays at one code;
    one training step of the EMA quantizer replaces the dead codes with latents of the batch."""
    torch.manual_seed(0)
    z = torch.randn(4, SMALL['embed_dim'], 8, 8)
    taming, ema = Codebook(SMALL['n_embed'], SMALL['embed_dim']), EMACodebook(SMALL['n_embed'], SMALL['embed_dim'])
    ema(z, 0.25)  # k-means start
    with torch.no_grad():
        taming.embedding.weight[:] = z[0, :, 0, 0]
        book = ema.vq._codebook
        book.embed[:] = book.embed_avg[:] = z[0, :, 0, 0]
        book.cluster_size.zero_()
        book.cluster_size[0, 0] = z[:, 0].numel()
    used = {}
    for quantizer in (taming, ema):
        quantizer(z, 0.25)  # one training step
        quantizer.eval()
        with torch.no_grad():
            used[quantizer] = codebook_usage(quantizer(z, 0.25)[2], SMALL['n_embed'])[0]
    assert used[taming] == 1 and used[ema] > SMALL['n_embed'] // 2, used
