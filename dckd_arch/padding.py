"""Padding inputs at the bottom and right to sizes a network accepts (its output is cropped back)."""
import torch
from torch.nn import functional as F


def pad_bottom_right(images, pad_h, pad_w):
    """Reflect-pad `pad_h` rows and `pad_w` columns (replicate when the image is too small to reflect)."""
    if not (pad_h or pad_w):
        return images
    height, width = images.shape[-2:]
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def pad_to_multiple(images, multiple):
    """Pad so that height and width are multiples of `multiple`."""
    height, width = images.shape[-2:]
    return pad_bottom_right(images, (-height) % multiple, (-width) % multiple)


MIN_SIDE, MAX_SIDE = 16, 8192  # input sides an exported graph accepts


def example_input(window, device='cpu'):
    """An input to capture a graph with: sides that are no multiple of the window, so that the
    captured padding stays general."""
    side = max(3 * (window or 8), MIN_SIDE) + 3
    return torch.rand(1, 3, side, side - 2, device=device)


class Deployable(torch.nn.Module):
    """`net` for any input size, as a graph to export: reflect-padded to whole windows (SwinIR) and
    cropped back to `scale` times the input."""

    def __init__(self, net, window, scale):
        super().__init__()
        self.net, self.window, self.scale = net, window, scale

    def forward(self, images):
        height, width = images.shape[-2:]
        if self.window:  # padded unconditionally: a shape test here would be fixed at export
            images = F.pad(images, (0, (-width) % self.window, 0, (-height) % self.window), mode='reflect')
        return self.net(images)[..., :height * self.scale, :width * self.scale]
