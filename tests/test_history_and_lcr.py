"""History model update rule and schedule; label-consistency transforms and their exact inverse."""
import itertools

import pytest
import torch
from torch import nn

from dckd_models import label_consistency as lcr
from dckd_utils.schema import OptionError
from dckd_models.history import HistorySchedule, move_towards
from dckd_models.options import HISTORY

RELEASED = HistorySchedule(steps=[1000, 2000, 3000], milestones=[100000, 200000])


@pytest.mark.parametrize('iteration, step', [(1, 1000), (100000, 1000), (100001, 2000), (200000, 2000),
                                             (200001, 3000), (250000, 3000), (10**7, 3000)])
def test_step_grows_at_the_milestones_and_stays_after_the_last(iteration, step):
    assert RELEASED.step_at(iteration) == step


def test_updates_happen_on_multiples_of_the_current_step():
    updates = [i for i in range(1, 206001) if RELEASED.updates_at(i)]
    assert updates[:2] == [1000, 2000] and 100000 in updates and 101000 not in updates
    assert 102000 in updates and 201000 in updates and 204000 in updates and 202000 not in updates
    assert len(updates) == 100 + 50 + 2


@pytest.mark.parametrize('steps, milestones', [([1000, 2000], [100, 200]), ([0, 10], [5]), ([10, 20], [])])
def test_inconsistent_schedules_are_rejected(steps, milestones):
    with pytest.raises(OptionError, match=r'train.history(.steps\[0\] must be >= 1| needs one more value in steps than in milestones)'):
        HISTORY.parse({'steps': steps, 'milestones': milestones}, 'train.history')


def test_history_moves_towards_the_source_by_one_minus_attenuation():
    history, source = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        history.weight.fill_(0.)
        source.weight.fill_(1.)
        source.num_batches_tracked.fill_(7)
    move_towards(history, source, attenuation=0.1)
    assert torch.allclose(history.weight, torch.full((2, ), 0.9))
    assert history.num_batches_tracked.item() == 7


# multiples of 1/128: 1 - x is exact in float32, so "exact inverse" can be checked bitwise
IMAGE = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4) / 128


@pytest.mark.parametrize('combination', list(itertools.product([False, True], repeat=4)))
def test_inverse_undoes_every_one_of_the_16_combinations_exactly(combination):
    chosen = torch.tensor(combination).view(4, 1).expand(4, 2)
    transformed = lcr.apply_transforms(IMAGE, chosen)
    assert torch.equal(lcr.invert_transforms(transformed, chosen), IMAGE)


def test_transforms_apply_invert_then_flips_then_transpose():
    img = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])
    # hflip: [[.2, .1], [.4, .3]], then transpose: [[.2, .4], [.1, .3]]
    chosen = torch.tensor([[False], [True], [False], [True]])
    assert torch.allclose(lcr.apply_transforms(img, chosen), torch.tensor([[[[0.2, 0.4], [0.1, 0.3]]]]))
    # invert first: 1 - x
    chosen = torch.tensor([[True], [False], [False], [False]])
    assert torch.allclose(lcr.apply_transforms(img, chosen), 1 - img)


def test_reapplying_in_forward_order_is_not_an_inverse():
    """The defect of public code this module avoids: hflip + transpose is not self-inverse."""
    chosen = torch.tensor([[False], [True], [False], [True]]).expand(4, 2)
    transformed = lcr.apply_transforms(IMAGE, chosen)
    assert not torch.equal(lcr.apply_transforms(transformed, chosen), IMAGE)


def test_transforms_are_drawn_per_sample():
    generator = torch.Generator().manual_seed(0)
    chosen = lcr.draw_transforms(1000, 0.5, generator)
    assert chosen.shape == (4, 1000)
    assert 0.45 < chosen.float().mean().item() < 0.55
    assert len({tuple(c) for c in chosen.t().tolist()}) == 16
