"""taming-transformers' VQGAN: its encoder half as DCKD's frozen feature space (`VQGANEncoder`),
and the whole autoencoder for training one on the user's own images (`VQGAN`).

Module names mirror taming's `VQModel` (`encoder.*`, `quant_conv.*`, `quantize.embedding.*`,
`post_quant_conv.*`, `decoder.*`), so the published checkpoint loads key for key, and the encoder
side of a trained `VQGAN` loads into `VQGANEncoder` (`encoder_state_dict`). One encoder pass returns
what DCR needs (the output of the first residual block at each of the five resolutions, before the
lowest level's attention, as in the released code) and what the DMM needs (the latent after
`quant_conv`).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from basicsr.utils.registry import ARCH_REGISTRY
from dckd_utils.checkpoint import extract_state_dict, load_checkpoint
from dckd_utils.codebook import codebook_logits
from dckd_utils.registry import register

ENCODER_KEY_PREFIXES = ('encoder.', 'quant_conv.', 'quantize.embedding.')


def _group_norm(channels):
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):

    def __init__(self, in_channels, out_channels, dropout):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = self.nin_shortcut(x) if hasattr(self, 'nin_shortcut') else x
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 projections."""

    def __init__(self, channels):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        h = self.norm(x)
        b, c, height, width = h.shape
        q, k, v = (proj(h).reshape(b, 1, c, height * width).transpose(-1, -2) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, height, width))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution with taming's asymmetric (right/bottom) padding."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Level(nn.Module):
    """One resolution of the encoder: residual blocks, optional attention, optional downsample."""

    def __init__(self, in_channels, out_channels, num_res_blocks, with_attn, with_downsample, dropout):
        super().__init__()
        channels = [in_channels] + [out_channels] * num_res_blocks
        self.block = nn.ModuleList(ResnetBlock(channels[i], channels[i + 1], dropout) for i in range(num_res_blocks))
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(num_res_blocks if with_attn else 0))
        if with_downsample:
            self.downsample = Downsample(out_channels)


class Encoder(nn.Module):
    """`recompute_activations`: with gradients on, keep only each block's input and recompute the
    block in backward (torch.utils.checkpoint); the full-resolution activations of a grad-enabled
    pass are otherwise the largest tensors kept for backward."""

    recompute_activations = False

    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, dropout):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        in_mult = (1, ) + tuple(ch_mult)
        current_resolution = resolution
        self.down = nn.ModuleList()
        for level, mult in enumerate(ch_mult):
            last = level == len(ch_mult) - 1
            self.down.append(
                Level(ch * in_mult[level], ch * mult, num_res_blocks, current_resolution in attn_resolutions,
                      not last, dropout))
            if not last:
                current_resolution //= 2
        channels = ch * ch_mult[-1]
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(channels, channels, dropout)
        self.mid.attn_1 = AttnBlock(channels)
        self.mid.block_2 = ResnetBlock(channels, channels, dropout)
        self.norm_out = _group_norm(channels)
        self.conv_out = nn.Conv2d(channels, z_channels, 3, padding=1)

    def forward(self, x):
        """Returns (first-block output of every level, final z)."""
        run = self._recomputed if self.recompute_activations and torch.is_grad_enabled() else self._direct
        features = []
        h = self.conv_in(x)
        for level in self.down:
            for index, block in enumerate(level.block):
                h = run(block, h)
                if index == 0:
                    features.append(h)
                if len(level.attn):
                    h = run(level.attn[index], h)
            if hasattr(level, 'downsample'):
                h = level.downsample(h)
        h = run(self.mid.block_2, run(self.mid.attn_1, run(self.mid.block_1, h)))
        return features, self.conv_out(F.silu(self.norm_out(h)))

    @staticmethod
    def _direct(block, h):
        return block(h)

    @staticmethod
    def _recomputed(block, h):
        return checkpoint(block, h, use_reentrant=False)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution (taming's `resamp_with_conv`)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Decoder(nn.Module):
    """The encoder mirrored, as taming's: one more residual block per level, attention at the same
    resolutions, levels listed from the finest (`up.0`) and run from the coarsest."""

    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, dropout):
        super().__init__()
        channels = ch * ch_mult[-1]
        current_resolution = resolution // 2**(len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, channels, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(channels, channels, dropout)
        self.mid.attn_1 = AttnBlock(channels)
        self.mid.block_2 = ResnetBlock(channels, channels, dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(len(ch_mult))):
            out_channels = ch * ch_mult[level]
            up = nn.Module()
            up.block = nn.ModuleList(ResnetBlock(channels if i == 0 else out_channels, out_channels, dropout)
                                     for i in range(num_res_blocks + 1))
            with_attn = current_resolution in attn_resolutions
            up.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(num_res_blocks + 1 if with_attn else 0))
            if level != 0:
                up.upsample = Upsample(out_channels)
                current_resolution *= 2
            self.up.insert(0, up)
            channels = out_channels
        self.norm_out = _group_norm(channels)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for up in reversed(self.up):
            for index, block in enumerate(up.block):
                h = block(h)
                if len(up.attn):
                    h = up.attn[index](h)
            if hasattr(up, 'upsample'):
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Codebook(nn.Module):
    """The codebook under taming's name (`quantize.embedding.weight`), initialised as taming's."""

    def __init__(self, n_embed, embed_dim):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)

    @property
    def weight(self):
        """The codes, (n_embed, embed_dim)."""
        return self.embedding.weight

    def forward(self, z, beta):
        """(z quantized with a straight-through gradient, codebook + beta x commitment loss, code of
        every token (B, h, w)) for a latent z (B, C, h, w): VQ-VAE's losses, as taming's quantizer
        computes them without its `legacy` weighting."""
        codes = codebook_logits(z, self.embedding.weight).argmax(1)
        quantized = self.embedding(codes).view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        loss = F.mse_loss(quantized, z.detach()) + beta * F.mse_loss(z, quantized.detach())
        return z + (quantized - z).detach(), loss, codes.view(z.shape[0], z.shape[2], z.shape[3])


EMA_CODEBOOK_KEY = 'quantize.vq._codebook.embed'  # where EMACodebook's codes are, (1, n_embed, embed_dim)


class EMACodebook(nn.Module):
    """vector-quantize-pytorch's VectorQuantize as the VQGAN's quantizer (`quantizer: ema`): the codes
    move by exponential moving averages (decay 0.99) of the latents assigned to them rather than by a
    loss, start from k-means on the first batch, and a code whose averaged count falls below 2 is
    replaced by a latent of the batch: the remedies for a collapsing codebook. The decoder's gradient
    passes straight through, as with Codebook, whose outputs it gives (the loss: beta x commitment)."""

    def __init__(self, n_embed, embed_dim):
        super().__init__()
        try:
            from vector_quantize_pytorch import VectorQuantize
        except ImportError as error:
            raise ImportError('network_g.quantizer: ema needs vector-quantize-pytorch: pip install '
                              "'dckd[vqgan]' (or vector-quantize-pytorch==1.32.0)") from error
        self.vq = VectorQuantize(dim=embed_dim, codebook_size=n_embed, decay=0.99, kmeans_init=True,
                                 threshold_ema_dead_code=2, commitment_weight=1.0, accept_image_fmap=True,
                                 rotation_trick=False)

    @property
    def weight(self):
        return self.vq.codebook

    def forward(self, z, beta):
        quantized, codes, commitment = self.vq(z)
        return quantized, beta * commitment, codes


def codebook_usage(codes, n_embed):
    """(codes used, perplexity) of the code indices `codes` (any shape) of an `n_embed`-code book:
    perplexity exp(H) of the codes' frequencies is n_embed when every code is used alike and 1 when
    the codebook has collapsed onto one code."""
    counts = torch.bincount(codes.flatten(), minlength=n_embed).double()
    frequencies = counts[counts > 0] / counts.sum()
    return int((counts > 0).sum()), math.exp(float(-(frequencies * frequencies.log()).sum()))


@register(ARCH_REGISTRY)
class VQGANEncoder(nn.Module):
    """Frozen VQGAN encoder + codebook (defaults: the ImageNet f16, 1024-code model).

    Args:
        input_range: the value range the encoder is fed. Images arrive in [0, 1]; with
            [-1, 1] (default, the range taming trained on) they are rescaled first; [0, 1]
            feeds them unchanged, as the authors' released code does.
    """

    def __init__(self,
                 ch=128,
                 ch_mult=(1, 1, 2, 2, 4),
                 num_res_blocks=2,
                 attn_resolutions=(16, ),
                 resolution=256,
                 z_channels=256,
                 embed_dim=256,
                 n_embed=1024,
                 dropout=0.0,
                 input_range=(-1, 1)):
        super().__init__()
        if list(input_range) not in ([0, 1], [-1, 1]):
            raise ValueError(f'VQGANEncoder: input_range must be [0, 1] or [-1, 1], got {input_range}')
        self.rescale_input = list(input_range) == [-1, 1]
        self.encoder = Encoder(ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, dropout)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.quantize = Codebook(n_embed, embed_dim)

    @property
    def codebook(self):
        return self.quantize.weight

    def forward(self, img):
        """img in [0, 1], (B, 3, H, W) -> (five level features, latent tokens (B, embed_dim, H/16, W/16))."""
        if self.rescale_input:
            img = img * 2 - 1
        features, z = self.encoder(img)
        return features, self.quant_conv(z)


@register(ARCH_REGISTRY)
class VQGAN(VQGANEncoder):
    """taming's VQModel without its loss: VQGANEncoder's encoder, quant_conv and codebook (its
    arguments, its defaults: the ImageNet f16, 1024-code model), then post_quant_conv and a decoder;
    `beta` weighs the commitment term. `quantizer`: 'taming' (Codebook: nearest code, codebook and
    commitment losses; taming's layout, key for key) or 'ema' (EMACodebook). Images in and out are
    in [0, 1] (see `input_range`); `encoder_state_dict(state_dict())` loads into a VQGANEncoder of
    the same arguments, whichever the quantizer.
    """

    def __init__(self, ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16, ), resolution=256,
                 z_channels=256, embed_dim=256, n_embed=1024, dropout=0.0, input_range=(-1, 1), beta=0.25,
                 quantizer='taming'):
        super().__init__(ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, embed_dim, n_embed,
                         dropout, input_range)
        if quantizer not in ('taming', 'ema'):
            raise ValueError(f"VQGAN: quantizer must be 'taming' or 'ema', got {quantizer!r}")
        if quantizer == 'ema':
            self.quantize = EMACodebook(n_embed, embed_dim)
        self.beta, self.n_embed = beta, n_embed
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = Decoder(ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, dropout)

    def forward(self, img, with_codes=False):
        """The reconstruction of img in [0, 1], (B, 3, H, W), H and W multiples of the downsampling
        factor f; `with_codes`: (reconstruction, codebook + commitment loss, codes (B, H/f, W/f))."""
        quantized, loss, codes = self.quantize(super().forward(img)[1], self.beta)
        out = self.decoder(self.post_quant_conv(quantized))
        out = (out + 1) / 2 if self.rescale_input else out
        return (out, loss, codes) if with_codes else out


@register(ARCH_REGISTRY)
class PatchDiscriminator(nn.Module):
    """taming's VQGAN discriminator (pix2pix's PatchGAN, `NLayerDiscriminator`): `num_layers`
    stride-2 4x4 convolutions from `num_feat` channels (doubling, at most 8x), batch norm and leaky
    ReLU, then one real/fake logit per patch. Initialised as taming's."""

    def __init__(self, num_in_ch=3, num_feat=64, num_layers=3):
        super().__init__()
        layers = [nn.Conv2d(num_in_ch, num_feat, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = num_feat
        for n in range(1, num_layers + 1):
            out_channels = num_feat * min(2**n, 8)
            layers += [nn.Conv2d(channels, out_channels, 4, stride=2 if n < num_layers else 1, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, True)]
            channels = out_channels
        self.main = nn.Sequential(*layers, nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, img):
        return self.main(img)


def encoder_state_dict(checkpoint_state):
    """The encoder-side entries of a full VQModel state dict (decoder and loss keys dropped); the
    codes of an EMACodebook under taming's name."""
    state = {k: v for k, v in checkpoint_state.items() if k.startswith(ENCODER_KEY_PREFIXES)}
    if EMA_CODEBOOK_KEY in checkpoint_state:
        state['quantize.embedding.weight'] = checkpoint_state[EMA_CODEBOOK_KEY][0]
    return state


def sizes(state):
    """The sizes of the VQGAN whose encoder-side entries `state` holds, as its options name them
    (levels: the length of ch_mult); None for a size the entries do not show."""
    def count(prefix):
        return 1 + max((int(k[len(prefix):].split('.')[0]) for k in state if k.startswith(prefix)), default=-1) or None

    found = {'ch': ('encoder.conv_in.weight', 0), 'z_channels': ('encoder.conv_out.weight', 0),
             'n_embed': ('quantize.embedding.weight', 0), 'embed_dim': ('quantize.embedding.weight', 1)}
    attention = sorted({int(k.split('.')[2]) for k in state if k.startswith('encoder.down.') and '.attn.' in k})
    return {'levels': count('encoder.down.'), 'num_res_blocks': count('encoder.down.0.block.'),
            'attention at levels': attention if count('encoder.down.') else None,
            **{name: tuple(state[key].shape)[dim] if key in state else None for name, (key, dim) in found.items()}}


def load_vqgan_encoder(net, path):
    """Load taming's Lightning `.ckpt`, a VQGAN checkpoint of dckd (net_g of VQGANModel) or an
    encoder-only `.pth` into `net`, strictly.

    Fails naming the file and both sides when the file is a VQGAN of other sizes, and the keys when
    an encoder key is missing or has another shape.
    """
    state = encoder_state_dict(extract_state_dict(load_checkpoint(path, 'VQGAN checkpoint')))
    expected = net.state_dict()
    ours, theirs = sizes(expected), sizes(state)
    differ = [name for name in ours if theirs[name] != ours[name]]
    if differ and None not in theirs.values():  # a VQGAN's encoder of other sizes (else: the keys are named)
        raise ValueError(f'VQGAN checkpoint {path} is a VQGAN of {", ".join(f"{n} {theirs[n]}" for n in differ)}; '
                         f'network_vqgan asks for {", ".join(f"{n} {ours[n]}" for n in differ)} (levels: the length '
                         'of ch_mult; attention: where attn_resolutions meets resolution / 2^level). Give '
                         'network_vqgan the options the VQGAN was trained with.')
    missing = sorted(set(expected) - set(state))
    if missing:
        raise KeyError(f'VQGAN checkpoint {path} lacks {len(missing)} encoder key(s), e.g. {missing[:5]}. '
                       'Use the taming-transformers VQModel checkpoint (vqgan_imagenet_f16_1024 last.ckpt) '
                       'or a .pth made from it with dckd-convert-vqgan.')
    wrong = [f'{k}: {tuple(state[k].shape)} != {tuple(v.shape)}' for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f'VQGAN checkpoint {path} does not fit network_vqgan: {wrong[:5]}. '
                         'Check ch, ch_mult, z_channels, embed_dim and n_embed.')
    net.load_state_dict(state, strict=True)
