"""A training data stream that a resumed run continues exactly.

Batch k of the stream (iteration k + 1) is a pure function of the seed, the data and the batch
size: epoch e = k // P (P batches an epoch) shuffles with a generator seeded by (seed, e), and
each sample is augmented with Python's and NumPy's generators seeded by (seed, e, its position in
the epoch). Nothing depends on which worker or process loads it, so a run resumed at iteration I
skips the I batches already trained (without reading them) and draws exactly what the
uninterrupted run would have; every epoch is also augmented differently (BasicSR's workers
repeat one augmentation sequence every epoch).

`ResumableSampler` replaces BasicSR's EnlargedSampler (same arguments, same partition across
ranks, `dataset_enlarge_ratio` included) and yields SampleKeys that `SeededSamples`, wrapped
around the training dataset, turns into samples.
"""
from collections import namedtuple

import numpy as np
import torch

from basicsr.data.data_sampler import EnlargedSampler
from dckd_utils.random_states import seeded_python_and_numpy
from . import realworld_degradation as realworld

SampleKey = namedtuple('SampleKey', 'epoch position index')

# the options a resumed run must share with the run it continues for the stream to be the same
STREAM_KEYS = ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'filename_tmpl', 'gt_size', 'use_hflip', 'use_rot',
               'batch_size_per_gpu', 'dataset_enlarge_ratio', 'type') + (
    'meta_info', 'final_sinc_prob', *(f'{name}{stage}' for stage in ('', '2') for name in (  # RealESRGANDataset's
        'blur_kernel_size', 'kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma', 'betag_range', 'betap_range')))
# in a real-world run (RealESRGANDataset), the top-level options of the degradation, the crop and the pool too
REALWORLD_TOP_KEYS = {**realworld.DEFAULTS, **realworld.PAIR_DEFAULTS}


class ResumableSampler(EnlargedSampler):
    """EnlargedSampler whose epochs are shuffled by (seed, epoch) and which can start the stream
    at any iteration (`continue_at`): earlier batches are skipped, never loaded."""

    def __init__(self, dataset, num_replicas, rank, ratio=1, seed=0):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.seed = seed
        self.first_batch, self.batch_size = 0, None

    def continue_at(self, iteration, batch_size):
        """Start the stream at batch `iteration` (the iterations a training state has done)."""
        self.first_batch, self.batch_size = iteration, batch_size

    def batches_per_epoch(self, batch_size):
        return self.num_samples // batch_size  # the loader drops the last, incomplete batch

    def __iter__(self):
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        order = torch.randperm(self.total_size, generator=generator).tolist()
        positions = range(self.rank, self.total_size, self.num_replicas)  # this rank's share, as EnlargedSampler
        skip = 0
        if self.batch_size:
            per_epoch = self.batches_per_epoch(self.batch_size)
            skip = min(max(self.first_batch - self.epoch * per_epoch, 0), per_epoch) * self.batch_size
        size = len(self.dataset)
        return iter([SampleKey(self.epoch, p, order[p] % size) for p in list(positions)[skip:]])


class SeededSamples(torch.utils.data.Dataset):
    """The training dataset, each sample drawn with generators seeded by (seed, epoch, position)."""

    def __init__(self, dataset, seed=0):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        with seeded_python_and_numpy(self.seed, key.epoch, key.position):
            return self.dataset[key.index]

    def __getattr__(self, name):  # what BasicSR reads of the dataset it built
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)


def stream_fingerprint(opt):
    """What decides the stream, from BasicSR's options: to record with a training state."""
    train_set = opt['datasets']['train']
    fingerprint = {key: train_set.get(key) for key in STREAM_KEYS}
    if train_set.get('type') in realworld.DATASETS:
        fingerprint.update({f'top-level {key}': opt.get(key, default) for key, default in REALWORLD_TOP_KEYS.items()})
    fingerprint.update(manual_seed=opt.get('manual_seed'), world_size=opt.get('world_size', 1),
                       num_gpu=opt.get('num_gpu'))
    return fingerprint


def stream_changes(recorded, current):
    """The keys whose change breaks the continuation, with their old and new values."""
    return {key: (recorded.get(key), value) for key, value in current.items() if recorded.get(key) != value}
