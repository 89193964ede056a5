"""Training states from which a resumed run continues exactly, for any BasicSR model.

`ResumableTraining` goes before a BasicSR model class in the bases (KDModel has it; dckd-train
gives it to every other model it builds). Its training state holds, besides BasicSR's epoch,
iteration, optimizers and schedulers: every rank's random states (Python, NumPy, torch CPU and
CUDA, and the model's own generators), gathered at each checkpoint, and what decides the data
stream (dckd_data/resumable.py). It is written atomically. Validation runs with every random
state kept as it was, so it never changes what the next iteration draws.
"""
import os

import torch

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from dckd import random_states
from dckd.checkpoint import save_atomically
from dckd_data.resumable import stream_fingerprint


class ResumableTraining:

    def generators(self):
        """The model's own torch.Generators by name (saved per rank with the global states)."""
        return {}

    def training_state_extras(self):
        """More entries for the training state (a subclass's)."""
        return {}

    def save(self, epoch, current_iter):
        self.rank_random_states = self.gather_random_states()  # a collective: every rank saves
        super().save(epoch, current_iter)

    def gather_random_states(self):
        local = {'global': random_states.capture(), **{n: g.get_state() for n, g in self.generators().items()}}
        if not self.opt['dist']:
            return [local]
        gathered = [None] * self.opt['world_size']
        torch.distributed.all_gather_object(gathered, local)
        return gathered

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            **self.training_state_extras(),
            'random_states': self.rank_random_states,
            'data_stream': {'fingerprint': stream_fingerprint(self.opt)},
        }
        save_atomically(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self.restore_random_states(resume_state)

    def restore_random_states(self, resume_state):
        """This rank's random states as they were saved. A dckd 0.1 state kept the model's generator
        alone (as 'rng'), BasicSR's none: dckd-train's data-stream warning says such a resume is not
        exact."""
        generators = self.generators()
        if 'random_states' not in resume_state:
            if 'rng' in resume_state and 'model' in generators:
                generators['model'].set_state(resume_state['rng'].cpu())
            return
        states, rank = resume_state['random_states'], self.opt.get('rank', 0)
        if len(states) != self.opt.get('world_size', 1):
            get_root_logger().warning(f'Resume: the state was saved by {len(states)} process(es), this run has '
                                      f'{self.opt.get("world_size", 1)}: random states restored from rank 0 only.')
            rank = 0
        random_states.restore(states[rank]['global'])
        for name, generator in generators.items():
            generator.set_state(states[rank][name].cpu())

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        with random_states.preserved():
            super().validation(dataloader, current_iter, tb_logger, save_img)


def make_resumable(model):
    """Give a built model ResumableTraining (dckd-train does it to models that are not dckd's)."""
    if not isinstance(model, ResumableTraining):
        model.__class__ = type(type(model).__name__, (ResumableTraining, type(model)), {})
    return model
