"""The resumable data stream's parts: the sampler skips what a resumed run already trained, without
loading it; a sample's augmentation depends on (seed, epoch, position) alone."""
import random

import numpy as np
import pytest
import torch

from basicsr.data.data_sampler import EnlargedSampler
from dckd_data.resumable import ResumableSampler, SampleKey, SeededSamples


class Draws(torch.utils.data.Dataset):
    """Each item: its index and what Python's and NumPy's generators give while it is made (the way
    BasicSR's paired datasets draw crops and flips); `loaded` counts the items made."""

    def __init__(self, size):
        self.size, self.loaded = size, 0

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.loaded += 1
        return index, random.random(), float(np.random.rand())


def keys(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_rank_gets_enlarged_samplers_share_of_a_seeded_permutation():
    dataset = Draws(10)
    ranks = [ResumableSampler(dataset, 2, rank, ratio=3, seed=7) for rank in range(2)]
    reference = [EnlargedSampler(dataset, 2, rank, ratio=3) for rank in range(2)]
    for mine, theirs in zip(ranks, reference):
        assert len(mine) == len(theirs) == 15  # 10 x 3 / 2 ranks
    epoch0 = [keys(r, 0) for r in ranks]
    positions = sorted(k.position for share in epoch0 for k in share)
    assert positions == list(range(30))  # every position of the enlarged epoch, once
    assert sorted(k.index for share in epoch0 for k in share) == sorted(list(range(10)) * 3)
    assert [k.index for k in keys(ranks[0], 1)] != [k.index for k in epoch0[0]]  # another order each epoch
    other_seed = ResumableSampler(dataset, 2, 0, ratio=3, seed=8)
    assert [k.index for k in keys(other_seed, 0)] != [k.index for k in epoch0[0]]


@pytest.mark.parametrize('iteration, epoch, skipped', [(3, 0, 6), (5, 0, 10), (5, 1, 0), (7, 1, 4), (7, 2, 0)])
def test_a_resumed_sampler_continues_the_uninterrupted_stream(iteration, epoch, skipped):
    """11 samples, batch 2: 5 batches an epoch (the last sample dropped by the loader)."""
    dataset = Draws(11)
    straight = ResumableSampler(dataset, 1, 0, seed=3)
    resumed = ResumableSampler(dataset, 1, 0, seed=3)
    resumed.continue_at(iteration, batch_size=2)
    assert keys(resumed, epoch) == keys(straight, epoch)[skipped:]


def test_a_checkpoint_at_the_end_of_an_epoch_resumes_into_the_next():
    resumed = ResumableSampler(Draws(10), 1, 0, seed=3)
    resumed.continue_at(5, batch_size=2)  # 5 batches = all of epoch 0
    assert keys(resumed, 0) == [] and len(keys(resumed, 1)) == 10


def test_skipped_samples_are_never_loaded():
    dataset = Draws(40)
    sampler = ResumableSampler(dataset, 1, 0, seed=0)
    sampler.continue_at(19, batch_size=2)  # batch 19 of 20
    loader = torch.utils.data.DataLoader(SeededSamples(dataset, seed=0), batch_size=2, sampler=sampler,
                                         drop_last=True)
    assert len(list(loader)) == 1 and dataset.loaded == 2


def test_a_samples_draws_depend_on_seed_epoch_and_position_only():
    samples = SeededSamples(Draws(5), seed=11)
    key = SampleKey(epoch=2, position=3, index=1)
    random.seed(0), np.random.seed(0)
    first = samples[key]
    random.random(), np.random.rand(), samples[SampleKey(0, 0, 4)]  # other draws in between
    assert samples[key] == first
    assert samples[SampleKey(3, 3, 1)] != first and samples[SampleKey(2, 4, 1)] != first  # epoch, position
    assert SeededSamples(Draws(5), seed=12)[key] != first


def test_drawing_a_sample_leaves_the_global_generators_alone():
    samples = SeededSamples(Draws(5), seed=11)
    random.seed(5), np.random.seed(5)
    expected = random.random(), float(np.random.rand())
    random.seed(5), np.random.seed(5)
    samples[SampleKey(0, 0, 0)]
    assert (random.random(), float(np.random.rand())) == expected


def test_workers_draw_what_the_main_process_draws():
    """Whatever the number of workers (each has its own generators), the batches are the same."""
    def batches(workers):
        sampler = ResumableSampler(Draws(12), 1, 0, seed=4)
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(SeededSamples(Draws(12), seed=4), batch_size=3, sampler=sampler,
                                             num_workers=workers, drop_last=True)
        return [[tuple(float(v) for v in column) for column in batch] for batch in loader]

    assert batches(0) == batches(2)
