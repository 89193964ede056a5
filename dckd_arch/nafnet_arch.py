"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022), DCKD's deblurring backbone.

A U-Net of "nonlinear activation free" blocks: the only nonlinearity is SimpleGate (halve the
channels, multiply the halves). Constructor arguments and module names follow the authors'
project, so their option files paste in and `NAFNet-GoPro-width32.pth` loads key for key.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from dckd_utils.registry import register


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (b, c, h, w) map, with NAFNet's eps."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Replaces the activation: channels [0, c/2) times channels [c/2, c)."""

    def forward(self, x):
        first, second = x.chunk(2, dim=1)
        return first * second


class NAFBlock(nn.Module):
    """Two pre-norm residual halves, each scaled by a learnt per-channel factor (`beta`, `gamma`).

    The spatial half: 1x1 expand, 3x3 depth-wise, SimpleGate, simplified channel attention (`sca`:
    global average pool then 1x1, no sigmoid), 1x1 back. The channel half: 1x1 expand, SimpleGate,
    1x1 back. The factors start at zero, so every block starts as the identity.
    """

    def __init__(self, c, dw_expand=2, ffn_expand=2, drop_out_rate=0.):
        super().__init__()
        dw_channels = c * dw_expand
        ffn_channels = c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw_channels, 1)
        self.conv2 = nn.Conv2d(dw_channels, dw_channels, 3, padding=1, groups=dw_channels)
        self.conv3 = nn.Conv2d(dw_channels // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw_channels // 2, dw_channels // 2, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn_channels, 1)
        self.conv5 = nn.Conv2d(ffn_channels // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x):
        h = self.sg(self.conv2(self.conv1(self.norm1(x))))
        h = self.conv3(h * self.sca(h))
        x = x + self.dropout1(h) * self.beta
        h = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + self.dropout2(h) * self.gamma


def _blocks(channels, count):
    return nn.Sequential(*(NAFBlock(channels) for _ in range(count)))


@register(ARCH_REGISTRY)
class NAFNet(nn.Module):
    """NAFNet as published: `intro` 3x3 conv, one encoder level per entry of `enc_blk_nums`
    (blocks, then a stride-2 2x2 conv doubling the channels), `middle_blks`, one decoder level per
    entry of `dec_blk_nums` (1x1 conv + PixelShuffle halving the channels, add the encoder skip,
    blocks), `ending` 3x3 conv, plus the input (global residual).

    Any height and width: the input is padded to a multiple of 2**len(enc_blk_nums) and the output
    cropped back.
    """

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=()):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f'NAFNet needs as many decoder as encoder levels, got enc_blk_nums={enc_blk_nums} '
                             f'and dec_blk_nums={dec_blk_nums}')
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        # Containers declared in the published order, so state_dict() lists keys as the released file.
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()

        channels = width
        for count in enc_blk_nums:
            self.encoders.append(_blocks(channels, count))
            self.downs.append(nn.Conv2d(channels, channels * 2, 2, stride=2))
            channels *= 2
        for _ in range(middle_blk_num):
            self.middle_blks.append(NAFBlock(channels))
        for count in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, channels * 2, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(_blocks(channels, count))

        self.padder_size = 2**len(self.encoders)

    def forward(self, inp):
        height, width = inp.shape[-2:]
        # Zero padding at the right and bottom, as the authors' own forward does: the published
        # weights were evaluated that way, so their scores are reproduced on odd-sized images.
        inp = F.pad(inp, (0, -width % self.padder_size, 0, -height % self.padder_size))

        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        out = self.ending(x) + inp
        return out[..., :height, :width]
