"""Training schedules BasicSR 1.4.2 cannot express, needed by the teachers' original recipes."""
import bisect
import math

import torch
from torch.optim.lr_scheduler import LRScheduler


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cosine cycles of `periods` iterations, each from `restart_weights[i]` x the base lr down to
    its own `eta_mins[i]` (Restormer's schedule: 92k iterations at 3e-4, then cosine to 1e-6)."""

    def __init__(self, optimizer, periods, restart_weights=(1, ), eta_mins=(0, ), last_epoch=-1):
        self.periods, self.restart_weights, self.eta_mins = list(periods), list(restart_weights), list(eta_mins)
        self.cumulative = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        # an iteration equal to a cycle's end still belongs to it (Restormer's convention)
        cycle = min(bisect.bisect_left(self.cumulative, self.last_epoch), len(self.periods) - 1)
        start = self.cumulative[cycle] - self.periods[cycle]
        progress = min((self.last_epoch - start) / self.periods[cycle], 1.0)
        weight, floor = self.restart_weights[cycle], self.eta_mins[cycle]
        return [floor + weight * 0.5 * (base - floor) * (1 + math.cos(math.pi * progress)) for base in self.base_lrs]


class ProgressivePatches:
    """Restormer's progressive training: after `milestones[i-1]`, each step trains on `batch_sizes[i]`
    randomly chosen samples of the loaded batch, cropped to `gt_sizes[i]` at one random position.
    The loader delivers the largest patch and batch (the option schema checks datasets.train against
    the largest stage); this only shrinks them, as Restormer does.
    """

    def __init__(self, options):
        """options: the parsed `train.progressive` (milestones, gt_sizes, batch_sizes)."""
        self.milestones, self.gt_sizes, self.batch_sizes = options.milestones, options.gt_sizes, options.batch_sizes

    def stage(self, iteration):
        index = bisect.bisect_left(self.milestones, iteration)
        return self.gt_sizes[index], self.batch_sizes[index]

    def crop(self, lq, gt, iteration, scale, generator):
        gt_size, batch_size = self.stage(iteration)
        device = generator.device
        keep = torch.randperm(gt.shape[0], generator=generator, device=device)[:batch_size].to(gt.device)
        lq_size = gt_size // scale
        top = int(torch.randint(0, lq.shape[-2] - lq_size + 1, (1, ), generator=generator, device=device))
        left = int(torch.randint(0, lq.shape[-1] - lq_size + 1, (1, ), generator=generator, device=device))
        lq = lq[keep, :, top:top + lq_size, left:left + lq_size]
        gt = gt[keep, :, top * scale:(top + lq_size) * scale, left * scale:(left + lq_size) * scale]
        return lq, gt
