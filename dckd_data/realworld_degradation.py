"""Real-ESRGAN's synthetic degradation, on any device, every random draw from generators the caller owns.

BasicSR 1.4.2 makes a real-world training pair in two places: `RealESRGANDataset` (its kernels, drawn
per sample in the data workers, which dckd's resumable stream seeds) and `RealESRGANModel.feed_data`
(the second-order degradation of each batch: blur, resize, noise, JPEG, twice, then the sinc filter;
a random crop; the training pair pool). The second half is here: the same operations in the same
order, but on the device of the images (BasicSR builds its JPEG and sharpening modules with
`.cuda()`) and with every draw taken from `Draws` instead of Python's, NumPy's and torch's global
generators, so a model that saves its generators with its training state resumes degrading exactly
where it stopped. `tests/test_realworld_degradation.py` checks this module against BasicSR's own
feed_data for the same draws.
"""
import math

import torch
from torch.nn import functional as F
from torchvision.transforms.functional import rgb_to_grayscale

from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.img_process_util import filter2D

RESIZE_MODES = ('area', 'bilinear', 'bicubic')
DATASETS = ('RealESRGANDataset_basicsr', 'RealESRGANDataset')  # BasicSR 1.4.2's name, the realesrgan package's
# the top-level options RealESRGANDegradation reads, with RealESRGAN_x4plus's values (its train_realesrgan_x4plus.yml)
DEFAULTS = {
    'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5, 'noise_range': [1, 30],
    'poisson_scale_range': [0.05, 3], 'gray_noise_prob': 0.4, 'jpeg_range': [30, 95],
    'second_blur_prob': 0.8,
    'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2], 'gaussian_noise_prob2': 0.5,
    'noise_range2': [1, 25], 'poisson_scale_range2': [0.05, 2.5], 'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95],
}
PAIR_DEFAULTS = {'gt_size': None, 'queue_size': 180}  # the crop (required) and the pool


class Draws:
    """The random numbers of the degradation: which branch, which factor, where to crop from
    `scalars` (a CPU torch.Generator: no device round trip per choice); noise, JPEG qualities and
    the pool's shuffles from `tensors` (a generator on the images' device; None draws from torch's
    global generator, as BasicSR does)."""

    def __init__(self, scalars, tensors):
        self.scalars, self.tensors = scalars, tensors

    def uniform(self, low=0.0, high=1.0):
        return low + (high - low) * torch.rand((), dtype=torch.float64, generator=self.scalars).item()

    def choice(self, items, weights=None):
        if weights is None:
            return items[int(torch.randint(len(items), (), generator=self.scalars))]
        weights = torch.tensor(weights, dtype=torch.float64)
        return items[int(torch.multinomial(weights, 1, generator=self.scalars))]

    def randint(self, low, high):
        """An integer in [low, high], both included (Python's random.randint)."""
        return int(torch.randint(low, high + 1, (), generator=self.scalars))


# ----- the random noises of BasicSR's degradations.py, drawn from `generator` -------------------------

def random_gaussian_noise(images, sigma_range, gray_prob, generator):
    """BasicSR's random_add_gaussian_noise_pt (clip, no rounding). Its gray noise is one (h, w)
    pattern for the whole batch, scaled by each sample's sigma: kept, it is the distribution
    Real-ESRGAN's models were trained on."""
    batch, _, height, width = images.size()
    options = {'dtype': images.dtype, 'device': images.device, 'generator': generator}
    sigma = torch.rand(batch, **options) * (sigma_range[1] - sigma_range[0]) + sigma_range[0]
    gray = (torch.rand(batch, **options) < gray_prob).float().view(batch, 1, 1, 1)
    sigma = sigma.view(batch, 1, 1, 1)
    any_gray = bool(gray.sum() > 0)
    if any_gray:
        gray_noise = (torch.randn(height, width, **options) * sigma / 255.).view(batch, 1, height, width)
    noise = torch.randn(*images.size(), **options) * sigma / 255.
    if any_gray:
        noise = noise * (1 - gray) + gray_noise * gray
    return torch.clamp(images + noise, 0, 1)


def _poisson(images, generator):
    """Shot noise of images rounded to 8 bits, each sample's levels the power of two at or above
    its count of distinct values."""
    images = torch.clamp((images * 255.0).round(), 0, 255) / 255.
    levels = images.new_empty(len(images))
    for index, sample in enumerate(images):
        levels[index] = 2 ** math.ceil(math.log2(len(torch.unique(sample))))
    levels = levels.view(-1, 1, 1, 1)
    return torch.poisson(images * levels, generator=generator) / levels - images


def random_poisson_noise(images, scale_range, gray_prob, generator):
    """BasicSR's random_add_poisson_noise_pt (clip, no rounding)."""
    batch, channels, height, width = images.size()
    options = {'dtype': images.dtype, 'device': images.device, 'generator': generator}
    scale = torch.rand(batch, **options) * (scale_range[1] - scale_range[0]) + scale_range[0]
    gray = (torch.rand(batch, **options) < gray_prob).float().view(batch, 1, 1, 1)
    any_gray = bool(gray.sum() > 0)
    if any_gray:
        gray_noise = _poisson(rgb_to_grayscale(images, num_output_channels=1), generator)
        gray_noise = gray_noise.expand(batch, channels, height, width)
    noise = _poisson(images, generator)
    if any_gray:
        noise = noise * (1 - gray) + gray_noise * gray
    return torch.clamp(images + noise * scale.view(batch, 1, 1, 1), 0, 1)


# ----- the second-order degradation --------------------------------------------------------------

class RealESRGANDegradation:
    """Callable: (sharpened GT batch, the dataset's kernel1, kernel2, sinc_kernel, Draws) -> the LQ
    batch, 1/scale of the GT's size, rounded to 8 bits: BasicSR 1.4.2's RealESRGANModel.feed_data.

    `options`: the top-level degradation options of a Real-ESRGAN options file (DEFAULTS: resize_prob,
    resize_range, gaussian_noise_prob, noise_range, poisson_scale_range, gray_noise_prob,
    jpeg_range, the same with a 2, and second_blur_prob), as a mapping.
    """

    def __init__(self, options, scale, device):
        self.options, self.scale = dict(options), scale
        self.jpeg = DiffJPEG(differentiable=False).to(device)

    def __call__(self, sharpened, kernel1, kernel2, sinc_kernel, draws):
        opt = self.options
        height, width = sharpened.size()[2:4]
        # the first degradation
        out = filter2D(sharpened, kernel1)
        out = F.interpolate(out, scale_factor=self._resize_factor(draws, opt['resize_prob'], opt['resize_range']),
                            mode=draws.choice(RESIZE_MODES))
        out = self._noise(out, draws, '')
        out = self._compress(out, opt['jpeg_range'], draws)
        # the second degradation
        if draws.uniform() < opt['second_blur_prob']:
            out = filter2D(out, kernel2)
        factor = self._resize_factor(draws, opt['resize_prob2'], opt['resize_range2'])
        out = F.interpolate(out, size=(int(height / self.scale * factor), int(width / self.scale * factor)),
                            mode=draws.choice(RESIZE_MODES))
        out = self._noise(out, draws, '2')
        # the final sinc filter with the resize back, before or after the last JPEG
        size = (height // self.scale, width // self.scale)
        if draws.uniform() < 0.5:
            out = filter2D(F.interpolate(out, size=size, mode=draws.choice(RESIZE_MODES)), sinc_kernel)
            out = self._compress(out, opt['jpeg_range2'], draws)
        else:
            out = self._compress(out, opt['jpeg_range2'], draws)
            out = filter2D(F.interpolate(out, size=size, mode=draws.choice(RESIZE_MODES)), sinc_kernel)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.

    def degrade_again(self, images, kernels, draws):
        """The second degradation's blur, noise and JPEG at the images' own size (no resize, no
        sinc), rounded to 8 bits: DCR's negatives D_j(x) of a degraded LQ batch."""
        opt = self.options
        if draws.uniform() < opt['second_blur_prob']:
            images = filter2D(images, kernels)
        out = self._compress(self._noise(images, draws, '2'), opt['jpeg_range2'], draws)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.

    @staticmethod
    def _resize_factor(draws, probs, factor_range):
        direction = draws.choice(('up', 'down', 'keep'), probs)
        if direction == 'up':
            return draws.uniform(1, factor_range[1])
        if direction == 'down':
            return draws.uniform(factor_range[0], 1)
        return 1

    def _noise(self, images, draws, stage):
        opt = self.options
        if draws.uniform() < opt[f'gaussian_noise_prob{stage}']:
            return random_gaussian_noise(images, opt[f'noise_range{stage}'], opt[f'gray_noise_prob{stage}'],
                                         draws.tensors)
        return random_poisson_noise(images, opt[f'poisson_scale_range{stage}'], opt[f'gray_noise_prob{stage}'],
                                    draws.tensors)

    def _compress(self, images, quality_range, draws):
        quality = images.new_zeros(images.size(0)).uniform_(*quality_range, generator=draws.tensors)
        # contiguous: DiffJPEG's output is not, and filter2D views its input (on the CPU, nothing
        # else makes it contiguous before the second blur)
        return self.jpeg(torch.clamp(images, 0, 1), quality=quality).contiguous()


def sharpener(device):
    """BasicSR's unsharp masking of the GT (radius 50), on `device`."""
    return USMSharp().to(device)


def paired_random_crop(gts, lq, gt_size, scale, draws):
    """The same random patch of every GT batch in `gts` and of the LQ batch: BasicSR's
    paired_random_crop for tensors, the corner drawn from `draws`."""
    lq_size = gt_size // scale
    lq_height, lq_width = lq.size()[-2:]
    if lq_height < lq_size or lq_width < lq_size:
        raise ValueError(f'the degraded images ({lq_height}x{lq_width}) are smaller than the LQ patch {lq_size}: '
                         f'gt_size {gt_size} must be at most {min(lq_height, lq_width) * scale}')
    top, left = draws.randint(0, lq_height - lq_size), draws.randint(0, lq_width - lq_size)
    lq = lq[:, :, top:top + lq_size, left:left + lq_size]
    top, left = top * scale, left * scale
    return [gt[:, :, top:top + gt_size, left:left + gt_size] for gt in gts], lq


class TrainingPairPool:
    """Real-ESRGAN's training pair pool: batches go into a pool of `size` pairs; once it is full,
    each batch swaps places with `batch` pairs drawn from the shuffled pool, so a batch mixes
    degradations of many iterations. Its content is part of the training state (`state_dict`):
    a resumed run draws from the pool an uninterrupted run would hold."""

    def __init__(self, size):
        self.size = size
        self.lq = self.gt = None
        self.filled = 0

    @torch.no_grad()
    def __call__(self, lq, gt, generator):
        batch = lq.size(0)
        if self.lq is None:
            if self.size % batch:
                raise ValueError(f'queue_size {self.size} must be a multiple of the batch size {batch}')
            self.lq = lq.new_zeros((self.size, ) + lq.shape[1:])
            self.gt = gt.new_zeros((self.size, ) + gt.shape[1:])
        if self.filled < self.size:
            self.lq[self.filled:self.filled + batch] = lq
            self.gt[self.filled:self.filled + batch] = gt
            self.filled += batch
            return lq, gt
        order = torch.randperm(self.size, generator=generator,
                               device=generator.device if generator is not None else 'cpu')
        self.lq, self.gt = self.lq[order], self.gt[order]
        out_lq, out_gt = self.lq[:batch].clone(), self.gt[:batch].clone()
        self.lq[:batch], self.gt[:batch] = lq, gt
        return out_lq, out_gt

    def state_dict(self):
        return {'filled': self.filled, 'lq': None if self.lq is None else self.lq.cpu(),
                'gt': None if self.gt is None else self.gt.cpu()}

    def load_state_dict(self, state, device):
        self.filled = state['filled']
        self.lq = None if state['lq'] is None else state['lq'].to(device)
        self.gt = None if state['gt'] is None else state['gt'].to(device)
