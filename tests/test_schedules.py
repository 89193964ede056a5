"""The teachers' recipes: any torch optimizer, Restormer's cyclic cosine schedule, progressive patches."""
import math

import pytest
import torch

from dckd_models import DCKDModel
from dckd_utils.schema import OptionError
from dckd_models.options import PROGRESSIVE
from dckd_models.schedules import CosineAnnealingRestartCyclicLR, ProgressivePatches
from test_models import make_opt


def progressive(**options):
    return PROGRESSIVE.parse(options, 'train.progressive')


def lrs(scheduler, iterations):
    values = []
    for _ in range(iterations):
        values.append(scheduler.optimizer.param_groups[0]['lr'])
        scheduler.optimizer.step()
        scheduler.step()
    return values


def test_cyclic_cosine_holds_then_anneals_to_its_own_floor():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, periods=[4, 4], restart_weights=[1, 1],
                                               eta_mins=[3e-4, 1e-6])
    values = lrs(scheduler, 10)
    assert values[:5] == pytest.approx([3e-4] * 5)  # cycle 1 ends at 4 with its floor = the base lr
    assert values[6] == pytest.approx(1e-6 + 0.5 * (3e-4 - 1e-6) * (1 + math.cos(math.pi * 2 / 4)))
    assert values[8] == pytest.approx(1e-6) and values[9] == pytest.approx(1e-6)  # stays at the end


def test_any_torch_optimizer_by_name_and_an_unknown_one_is_named(tmp_path):
    opt = make_opt(tmp_path, terms=())
    del opt['network_t'], opt['network_vqgan']
    opt['train']['optim_g'] = {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]}
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartCyclicLR', 'periods': [5, 5],
                                 'restart_weights': [1, 1], 'eta_mins': [1e-3, 1e-7]}
    model = DCKDModel(opt)
    assert type(model.optimizer_g) is torch.optim.AdamW and model.optimizer_g.defaults['weight_decay'] == 1e-3
    assert isinstance(model.schedulers[0], CosineAnnealingRestartCyclicLR)
    opt['train']['optim_g'] = {'type': 'Adamm', 'lr': 1e-3}
    with pytest.raises(OptionError, match="train.optim_g.type: no torch.optim optimizer named 'Adamm'; did you mean Adam"):
        DCKDModel(opt)


def test_progressive_stages_change_after_each_milestone():
    schedule = ProgressivePatches(progressive(milestones=[10, 20], gt_sizes=[32, 48, 64], batch_sizes=[8, 4, 2]))
    assert [schedule.stage(i) for i in (1, 10, 11, 20, 21, 10**6)] == [(32, 8), (32, 8), (48, 4), (48, 4), (64, 2),
                                                                     (64, 2)]


def test_progressive_crops_keep_lq_and_gt_aligned():
    generator = torch.Generator().manual_seed(0)
    lq = torch.rand(8, 3, 16, 16)
    gt = lq.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)  # gt = lq upscaled x2 (nearest)
    schedule = ProgressivePatches(progressive(milestones=[5], gt_sizes=[12, 32], batch_sizes=[3, 8]))
    small_lq, small_gt = schedule.crop(lq, gt, iteration=1, scale=2, generator=generator)
    assert small_lq.shape == (3, 3, 6, 6) and small_gt.shape == (3, 3, 12, 12)
    assert torch.equal(small_gt, small_lq.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2))
