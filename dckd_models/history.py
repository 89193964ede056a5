"""The history model's update rule and its step schedule."""
import bisect
import torch


class HistorySchedule:
    """Update every `steps[k]` iterations, k = number of milestones strictly before the iteration.

    The released configs use steps [1000, 2000, 3000] and milestones [100000, 200000]: every 1000
    iterations in (0, 100k], 2000 in (100k, 200k], 3000 after. Past the last milestone the last
    step applies for good.
    """

    def __init__(self, steps, milestones):
        self.steps, self.milestones = list(steps), list(milestones)  # checked by the option schema

    def step_at(self, iteration):
        return self.steps[bisect.bisect_left(self.milestones, iteration)]

    def updates_at(self, iteration):
        return iteration % self.step_at(iteration) == 0


@torch.no_grad()
def move_towards(history, source, attenuation):
    """theta_H <- attenuation * theta_H + (1 - attenuation) * theta_source; integer buffers copied."""
    source_state = source.state_dict()
    for name, value in history.state_dict().items():
        if value.is_floating_point():
            value.lerp_(source_state[name], 1 - attenuation)
        else:
            value.copy_(source_state[name])
