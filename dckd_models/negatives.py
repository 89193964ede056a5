"""Degradations D_j for the dynamic negatives H(D_j(x)), drawn independently per sample.

The defaults (declared in dckd_models/options.py) follow the authors' released code: Gaussian noise only (sigma ~ U[1, 30]/255, gray with
probability 0.5, clipped); blur (odd kernel 3..11 per axis, sigma ~ U[0.1, 2] per axis) and random
resize (up with p 0.25 by U[1, 1.5], else down by U[0.5, 1], random area/bilinear/bicubic, then
back with a random mode) can be switched on with their own probabilities ("mix" = several on).
Applied in the released order: blur, resize, noise, resize back.
"""
import math

import torch
from torch.nn import functional as F


def undegraded_warning(options):
    """Why every negative H(D_j(x)) would be H(x) (`train.negatives.probs` all 0 under the dckd
    pipeline, N > 1): legal, but almost never meant; None otherwise."""
    if options.pipeline != 'dckd' or options.num < 2 or any(vars(options.probs).values()):
        return None
    return (f'train.negatives.probs are all 0 (noise, blur and resize): no negative is degraded, so each of the '
            f'{options.num - 1} degraded negatives H(D_j(x)) is the history model\'s output on the clean input, H(x), '
            'and DCR pushes the student away from that one image only. Set train.negatives.probs.noise: 1.0 (the '
            'released default), or another probability above 0.')


def _uniform(low, high, size, generator):
    return low + (high - low) * torch.rand(size, generator=generator, device=generator.device)


class NegativeDegrader:
    """Callable: images (B, C, H, W) in [0, 1] -> degraded copies, same shape, in [0, 1].

    Args: `options`, the parsed `train.negatives` (dckd_models/options.py declares them and their
    defaults): `probs` per degradation and the parameters of each; `generator`, a torch.Generator
    on the images' device that every draw comes from, so runs are reproducible and resumable.
    """

    def __init__(self, options, generator):
        self.generator = generator
        self.probs = vars(options.probs)
        self.noise, self.blur, self.resize = vars(options.noise), vars(options.blur), vars(options.resize)

    def _rand(self, *size):
        return torch.rand(size, generator=self.generator, device=self.generator.device)

    def _chosen(self, name, batch):
        return self._rand(batch) < self.probs[name]

    def __call__(self, images):
        batch = images.shape[0]
        out = images
        if self.probs['blur'] > 0:
            out = torch.where(self._chosen('blur', batch).view(-1, 1, 1, 1), self.gaussian_blur(out), out)
        resized = self._chosen('resize', batch) if self.probs['resize'] > 0 else None
        if resized is None or not resized.any():
            return self._noisy(out).clamp_(0, 1)
        # resized samples have their own sizes until they are resized back: one at a time
        out = [self.random_resize(img[None]) if r else img[None] for img, r in zip(out, resized.tolist())]
        out = [self._noisy(img) for img in out]
        out = [self.resize_to(img, images.shape[-2:]) if r else img for img, r in zip(out, resized.tolist())]
        return torch.cat(out).clamp_(0, 1)

    def _noisy(self, images):
        if self.probs['noise'] <= 0:
            return images
        chosen = self._chosen('noise', images.shape[0]).view(-1, 1, 1, 1)
        return torch.where(chosen, self.gaussian_noise(images), images)

    def gaussian_noise(self, images):
        """Per-sample sigma; gray noise (same on every channel) per sample with gray_prob."""
        batch = images.shape[0]
        low, high = self.noise['sigma_range']
        sigma = _uniform(low, high, (batch, 1, 1, 1), self.generator) / 255
        gray = self._rand(batch, 1, 1, 1) < self.noise['gray_prob']
        color_noise = torch.randn(images.shape, generator=self.generator, device=images.device, dtype=images.dtype)
        gray_noise = torch.randn((batch, 1) + images.shape[2:], generator=self.generator, device=images.device,
                                 dtype=images.dtype).expand_as(images)
        return (images + sigma * torch.where(gray, gray_noise, color_noise)).clamp(0, 1)

    def gaussian_blur(self, images):
        """Per-sample anisotropic Gaussian kernels, zero-padded to the largest size so one grouped
        convolution serves the batch (zero weights make it equal to each kernel's own size)."""
        batch, channels, device = images.shape[0], images.shape[1], images.device
        low, high = self.blur['kernel_range']
        radius_max = high // 2
        sig_low, sig_high = self.blur['sigma_range']
        offsets = torch.arange(-radius_max, radius_max + 1, device=device, dtype=images.dtype)
        kernels_1d = []
        for _ in range(2):  # y then x
            radius = torch.randint(low // 2, high // 2 + 1, (batch, 1), generator=self.generator, device=device)
            sigma = _uniform(sig_low, sig_high, (batch, 1), self.generator)
            k = torch.exp(-offsets.pow(2) / (2 * sigma.pow(2))) * (offsets.abs() <= radius)
            kernels_1d.append(k / k.sum(1, keepdim=True))
        kernels = kernels_1d[0][:, :, None] * kernels_1d[1][:, None, :]
        weight = kernels.repeat_interleave(channels, 0).unsqueeze(1)
        padded = F.pad(images.reshape(1, batch * channels, *images.shape[2:]), [radius_max] * 4, mode='reflect')
        return F.conv2d(padded, weight, groups=batch * channels).reshape(images.shape)

    def random_resize(self, img):
        """img (1, C, H, W)."""
        opt = self.resize
        low, high = opt['up_range'] if self._rand(1).item() < opt['up_prob'] else opt['down_range']
        factor = low + (high - low) * self._rand(1).item()
        size = [max(1, math.floor(s * factor)) for s in img.shape[-2:]]
        return self.resize_to(img, size)

    def resize_to(self, img, size):
        modes = self.resize['modes']
        mode = modes[int(self._rand(1).item() * len(modes))]
        align = {} if mode == 'area' else {'align_corners': False}
        return F.interpolate(img, size=tuple(size), mode=mode, **align)
