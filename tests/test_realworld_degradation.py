"""Real-ESRGAN's degradation, reimplemented on any device with owned generators
(dckd_data/realworld_degradation.py), against BasicSR 1.4.2's own RealESRGANModel.feed_data.

The reference is BasicSR's code itself, run on the CPU: its model object is made without its
__init__ (which moves the JPEG and sharpening modules to CUDA), with CPU modules and a CPU pool.
For the same random numbers the two must give the same LQ batch, GT crops and pool content, to
the bit. `BasicSRDraws` hands dckd's pipeline the numbers BasicSR draws, in BasicSR's order, from
Python's, NumPy's and torch's global generators: if dckd drew one number more, fewer or elsewhere,
every later draw would shift and the batches would differ.
"""
import random

import numpy as np
import pytest
import torch

import dckd_data  # noqa: F401  (compatibility fix before BasicSR)
from basicsr.data.realesrgan_dataset import RealESRGANDataset
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.utils import DiffJPEG, USMSharp
from dckd_data.realworld_degradation import (Draws, RealESRGANDegradation, TrainingPairPool, paired_random_crop,
                                             random_gaussian_noise, random_poisson_noise, sharpener)

# Real-ESRGAN's train_realesrgan_x4plus.yml, first and second degradation
DEGRADATION = {
    'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5, 'noise_range': [1, 30],
    'poisson_scale_range': [0.05, 3], 'gray_noise_prob': 0.4, 'jpeg_range': [30, 95],
    'second_blur_prob': 0.8, 'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2],
    'gaussian_noise_prob2': 0.5, 'noise_range2': [1, 25], 'poisson_scale_range2': [0.05, 2.5],
    'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95],
}
KERNELS = {
    'blur_kernel_size': 21, 'kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                            'plateau_aniso'],
    'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'sinc_prob': 0.1, 'blur_sigma': [0.2, 3],
    'betag_range': [0.5, 4], 'betap_range': [1, 2], 'blur_kernel_size2': 21,
    'kernel_list2': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
    'kernel_prob2': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'sinc_prob2': 0.1, 'blur_sigma2': [0.2, 1.5],
    'betag_range2': [0.5, 4], 'betap_range2': [1, 2], 'final_sinc_prob': 0.8,
}
SCALE, GT_SIZE, QUEUE = 4, 64, 6
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')


class BasicSRDraws(Draws):
    """The numbers BasicSR's feed_data draws, from where it draws them."""

    def __init__(self):
        super().__init__(scalars=None, tensors=None)  # tensors: torch's global generator

    def uniform(self, low=0.0, high=1.0):
        return np.random.uniform(low, high)

    def choice(self, items, weights=None):
        return random.choices(items, weights)[0] if weights is not None else random.choice(items)

    def randint(self, low, high):
        return random.randint(low, high)


def basicsr_model():
    """BasicSR's RealESRGANModel as far as feed_data needs it, on the CPU."""
    model = RealESRGANModel.__new__(RealESRGANModel)
    model.opt = {**DEGRADATION, 'scale': SCALE, 'gt_size': GT_SIZE, 'high_order_degradation': True}
    model.device, model.is_train, model.queue_size = torch.device('cpu'), True, QUEUE
    jpeg = DiffJPEG(differentiable=False)
    # DiffJPEG returns a non-contiguous tensor, which BasicSR's filter2D cannot view on the CPU (on
    # CUDA, reflect padding makes it contiguous): the same values, laid out contiguously
    model.jpeger = lambda images, quality: jpeg(images, quality=quality).contiguous()
    model.usm_sharpener = USMSharp()
    return model


def write_photographs(root):
    """scikit-image's colour photographs as PNGs in root/gt, listed in root/meta_info.txt (as
    RealESRGANDataset reads them from a folder)."""
    import cv2
    from skimage import data as images
    (root / 'gt').mkdir()
    for name in PHOTOS:
        cv2.imwrite(str(root / 'gt' / f'{name}.png'), getattr(images, name)()[..., ::-1])
    (root / 'meta_info.txt').write_text(''.join(f'{name}.png\n' for name in PHOTOS))


def kernel_batches(tmp_path, batches, batch_size):
    """Batches of real photographs with the kernels BasicSR's RealESRGANDataset draws for them."""
    write_photographs(tmp_path)
    dataset = RealESRGANDataset({**KERNELS, 'dataroot_gt': str(tmp_path / 'gt'),
                                 'meta_info': str(tmp_path / 'meta_info.txt'), 'io_backend': {'type': 'disk'},
                                 'use_hflip': True, 'use_rot': False})
    random.seed(0)
    np.random.seed(0)
    samples = [dataset[i % len(dataset)] for i in range(batches * batch_size)]
    return [torch.utils.data.default_collate(samples[i * batch_size:(i + 1) * batch_size]) for i in range(batches)]


@pytest.fixture(scope='module')
def batches(tmp_path_factory):
    return kernel_batches(tmp_path_factory.mktemp('photos'), batches=4, batch_size=3)


def test_pipeline_crop_and_pool_equal_basicsrs_feed_data_for_the_same_draws(batches):
    """Four batches of three 400x400 photographs (the pool of 6 fills, then swaps): every LQ batch,
    GT and sharpened-GT crop equals BasicSR's to the bit."""
    reference = basicsr_model()
    reference.queue_lr, reference.queue_gt, reference.queue_ptr = (
        torch.zeros(QUEUE, 3, GT_SIZE // SCALE, GT_SIZE // SCALE), torch.zeros(QUEUE, 3, GT_SIZE, GT_SIZE), 0)
    degrade, sharpen, pool = RealESRGANDegradation(DEGRADATION, SCALE, 'cpu'), sharpener('cpu'), TrainingPairPool(QUEUE)
    draws = BasicSRDraws()
    seen = set()
    for index, data in enumerate(batches):
        random.seed(index), np.random.seed(index), torch.manual_seed(index)
        reference.feed_data(data)
        random.seed(index), np.random.seed(index), torch.manual_seed(index)
        gt = data['gt']
        lq = degrade(sharpen(gt), data['kernel1'], data['kernel2'], data['sinc_kernel'], draws)
        seen.add(tuple(lq.shape))
        (gt, _), lq = paired_random_crop([gt, sharpen(gt)], lq, GT_SIZE, SCALE, draws)
        lq, gt = pool(lq, gt, None)
        assert torch.equal(lq, reference.lq), f'batch {index}: LQ differs'
        assert torch.equal(gt, reference.gt), f'batch {index}: GT differs'
        assert torch.equal(sharpen(gt), reference.gt_usm), f'batch {index}: sharpened GT differs'
    assert seen == {(3, 3, 100, 100)}
    assert torch.equal(pool.lq, reference.queue_lr) and torch.equal(pool.gt, reference.queue_gt)


@pytest.mark.parametrize('gray_prob', [0.0, 1.0, 0.5])
def test_noises_equal_basicsrs_for_the_same_generator(gray_prob):
    """Each noise from an owned generator equals BasicSR's from torch's global generator in the same state."""
    from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt
    images = torch.rand(4, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    for ours, theirs, value_range in ((random_gaussian_noise, random_add_gaussian_noise_pt, [1, 30]),
                                      (random_poisson_noise, random_add_poisson_noise_pt, [0.05, 3])):
        generator = torch.Generator().manual_seed(7)
        torch.manual_seed(7)
        expected = theirs(images, value_range, gray_prob=gray_prob, clip=True, rounds=False)
        got = ours(images, value_range, gray_prob, generator)
        assert torch.equal(got, expected), ours.__name__
        assert not torch.equal(got, images)


def test_owned_draws_repeat_from_a_saved_state_and_leave_the_global_generators_alone(batches):
    """Production draws come from two torch generators: the same states give the same batch, and
    Python's, NumPy's and torch's global generators are not touched."""
    degrade, sharpen = RealESRGANDegradation(DEGRADATION, SCALE, 'cpu'), sharpener('cpu')
    scalars, tensors = torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)
    data = batches[0]
    run = [None, None]
    states = scalars.get_state(), tensors.get_state()
    global_before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    for attempt in range(2):
        scalars.set_state(states[0]), tensors.set_state(states[1])
        draws = Draws(scalars, tensors)
        lq = degrade(sharpen(data['gt']), data['kernel1'], data['kernel2'], data['sinc_kernel'], draws)
        run[attempt] = paired_random_crop([data['gt']], lq, GT_SIZE, SCALE, draws)[1]
    assert torch.equal(run[0], run[1])
    assert random.getstate() == global_before[0]
    assert np.array_equal(np.random.get_state()[1], global_before[1])
    assert torch.equal(torch.get_rng_state(), global_before[2])
    again = degrade(sharpen(data['gt']), data['kernel1'], data['kernel2'], data['sinc_kernel'], Draws(scalars, tensors))
    assert not torch.equal(paired_random_crop([data['gt']], again, GT_SIZE, SCALE, Draws(scalars, tensors))[1], run[0])


def test_draws_follow_their_weights():
    """Draws.choice with weights picks each item about as often as its weight says (20000 draws)."""
    draws = Draws(torch.Generator().manual_seed(0), None)
    picks = [draws.choice(('up', 'down', 'keep'), [0.2, 0.7, 0.1]) for _ in range(20000)]
    for item, weight in zip(('up', 'down', 'keep'), (0.2, 0.7, 0.1)):
        assert abs(picks.count(item) / len(picks) - weight) < 0.015
    values = [draws.randint(2, 4) for _ in range(3000)]
    assert set(values) == {2, 3, 4}


def test_the_pool_state_continues_a_pool():
    """A pool restored from its state_dict hands out what the original pool would."""
    generator = torch.Generator().manual_seed(0)
    pool = TrainingPairPool(4)
    batches = [(torch.full((2, 1, 2, 2), float(i)), torch.full((2, 1, 4, 4), float(i))) for i in range(6)]
    for lq, gt in batches[:3]:
        pool(lq, gt, generator)
    restored, restored_generator = TrainingPairPool(4), torch.Generator()
    restored.load_state_dict(pool.state_dict(), 'cpu')
    restored_generator.set_state(generator.get_state())
    for lq, gt in batches[3:]:
        expected, got = pool(lq, gt, generator), restored(lq, gt, restored_generator)
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    with pytest.raises(ValueError, match='multiple of the batch size 3'):
        TrainingPairPool(4)(torch.zeros(3, 1, 2, 2), torch.zeros(3, 1, 4, 4), generator)


def test_the_schema_declares_every_option_the_degradation_reads_with_real_esrgans_defaults():
    """dckd_models/options.py types exactly the top-level options RealESRGANDegradation reads (and
    the resumable stream fingerprints), and their defaults are Real-ESRGAN's (DEGRADATION above,
    copied by hand from its train_realesrgan_x4plus.yml)."""
    from dckd_data.realworld_degradation import DEFAULTS
    from dckd_models.options import DEGRADATION as SCHEMA
    assert set(SCHEMA) == set(DEFAULTS) == set(DEGRADATION)
    assert DEFAULTS == DEGRADATION and {key: option.default for key, option in SCHEMA.items()} == DEGRADATION
