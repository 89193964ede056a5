"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration",
CVPR 2022), DCKD's deblurring and deraining backbone.

A four-level U-Net of transformer blocks whose attention runs across channels instead of pixels
(cost linear in the image size). Constructor arguments and module names follow the authors'
project, so their option files paste in and `motion_deblurring.pth` / `deraining.pth` load key
for key.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from dckd_utils.registry import register

LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


class _ChannelNorm(nn.Module):
    """Normalises each pixel's channel vector of a (b, c, h, w) map (eps 1e-5, biased variance).

    'BiasFree' divides by the standard deviation without subtracting the mean and has no bias.
    """

    def __init__(self, channels, with_bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        if self.bias is not None:
            x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, eps=1e-5)
        else:
            x = x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight
        return x.permute(0, 3, 1, 2)


class LayerNorm(nn.Module):
    """Wrapper whose only child is `body`, giving the published `norm1.body.weight` keys."""

    def __init__(self, dim, LayerNorm_type):
        super().__init__()
        if LayerNorm_type not in LAYER_NORM_TYPES:
            raise ValueError(f'LayerNorm_type must be one of {LAYER_NORM_TYPES}, got {LayerNorm_type!r}')
        self.body = _ChannelNorm(dim, with_bias=LayerNorm_type == 'WithBias')

    def forward(self, x):
        return self.body(x)


class FeedForward(nn.Module):
    """Gated-Dconv FFN: 1x1 to two hidden halves, 3x3 depth-wise, GELU(first) * second, 1x1 back."""

    def __init__(self, dim, ffn_expansion_factor, bias):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Attention(nn.Module):
    """Multi-Dconv transposed attention: queries, keys and values from a 1x1 then a 3x3 depth-wise
    conv; per head, a (channels x channels) attention map from L2-normalised rows (each row one
    channel over all pixels), scaled by a learnt per-head `temperature`."""

    def __init__(self, dim, num_heads, bias):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        b, c, h, w = x.shape
        heads = (t.reshape(b, self.num_heads, c // self.num_heads, h * w)
                 for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        q, k, v = heads
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        weights = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((weights @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    """Pre-norm residual attention, then pre-norm residual feed-forward."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type):
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """A bias-free 3x3 conv to `dim` channels (bias-free whatever `bias` says, as published)."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the channels with a 3x3 conv, then PixelUnshuffle: half the size, twice the channels."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """Double the channels with a 3x3 conv, then PixelShuffle: twice the size, half the channels."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


@register(ARCH_REGISTRY)
class Restormer(nn.Module):
    """Restormer as published. Levels 1-3 of the encoder and `latent` work at dim, 2, 4 and 8 x dim
    channels with num_blocks[0..3] blocks and heads[0..3] heads. Going up, the skip is concatenated
    and reduced back by a 1x1 conv (`reduce_chan_level3/2`), except at level 1, whose decoder and the
    `refinement` blocks keep the 2 x dim channels of the concatenation. `output` (3x3 conv) gives the
    residual added to the input; with `dual_pixel_task` (two views in, one image out) the patch
    embedding comes back through `skip_conv` instead and there is no global residual.

    Any height and width: the input is padded to a multiple of 8 and the output cropped back.
    """

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',
                 dual_pixel_task=False):
        super().__init__()

        def level(channels, count, num_heads):
            return nn.Sequential(*(TransformerBlock(channels, num_heads, ffn_expansion_factor, bias, LayerNorm_type)
                                   for _ in range(count)))

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = level(dim, num_blocks[0], heads[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = level(dim * 8, num_blocks[3], heads[3])

        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = level(dim * 2, num_blocks[0], heads[0])
        self.refinement = level(dim * 2, num_refinement_blocks, heads[0])

        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img):
        height, width = inp_img.shape[-2:]
        pad_h, pad_w = -height % 8, -width % 8
        # Reflect padding at the right and bottom, as the authors' test scripts pad before calling
        # the network: the published scores were measured that way, and mirrored content gives the
        # attention statistics less of a jump than a black border. Reflection needs the pad to be
        # smaller than the image; tinier inputs repeat their edge instead.
        mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
        if pad_h or pad_w:
            inp_img = F.pad(inp_img, (0, pad_w, 0, pad_h), mode=mode)

        embedded = self.patch_embed(inp_img)
        level1 = self.encoder_level1(embedded)
        level2 = self.encoder_level2(self.down1_2(level1))
        level3 = self.encoder_level3(self.down2_3(level2))
        x = self.latent(self.down3_4(level3))

        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), level3], dim=1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), level2], dim=1)))
        x = self.refinement(self.decoder_level1(torch.cat([self.up2_1(x), level1], dim=1)))

        if self.dual_pixel_task:
            out = self.output(x + self.skip_conv(embedded))
        else:
            out = self.output(x) + inp_img
        return out[..., :height, :width]
