"""Training states from which a resumed run continues exactly, for any BasicSR model.

`ResumableTraining` goes before a BasicSR model class in the bases (KDModel has it; dckd-train
gives it to every other model it builds). Its training state holds, besides BasicSR's epoch,
iteration, optimizers and schedulers: every rank's random states (Python, NumPy, torch CPU and
CUDA, and the model's own generators), gathered at each checkpoint, what decides the data
stream (dckd_data/resumable.py), and the model files written with it. Every file of a checkpoint
is written atomically, the state last (dckd_models/run_checkpoints.py); a file that cannot be
written stops the run (BasicSR retries, then ignores it) and removes what the checkpoint had
written, and `logger.keep_checkpoints` prunes old checkpoints once a new one is complete.
Validation runs with every random state kept as it was, so it never changes what the next
iteration draws.
"""
import os

import torch

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from dckd_utils import random_states
from dckd_utils.checkpoint import save_atomically
from dckd_data.resumable import stream_fingerprint
from . import run_checkpoints


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
        return self.gather_per_rank({'global': random_states.capture(),
                                     **{n: g.get_state() for n, g in self.generators().items()}})

    def gather_per_rank(self, local):
        """[every rank's `local`], in rank order (a collective under DDP)."""
        if not self.opt['dist']:
            return [local]
        gathered = [None] * self.opt['world_size']
        torch.distributed.all_gather_object(gathered, local)
        return gathered

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's file name and layout, written atomically; a failed write stops the run."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save_dict = {key: {(k[len('module.'):] if k.startswith('module.') else k): v.cpu()
                           for k, v in self.get_bare_model(one).state_dict().items()} for one, key in zip(nets, keys)}
        label = 'latest' if current_iter == -1 else current_iter
        self.write_checkpoint_file(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'),
                                   current_iter)

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
            'model_files': [os.path.basename(path) for path in self.checkpoint_files],
        }
        self.write_checkpoint_file(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'),
                                   current_iter)
        self.checkpoint_files = []  # complete: the state is written last
        for path in run_checkpoints.prune(self.opt['path'], self.opt['logger'].get('keep_checkpoints')):
            get_root_logger().info(f'keep_checkpoints: removed {path}')

    @property
    def checkpoint_files(self):
        """The files written so far for the checkpoint in progress."""
        return self.__dict__.setdefault('_checkpoint_files', [])

    @checkpoint_files.setter
    def checkpoint_files(self, files):
        self.__dict__['_checkpoint_files'] = files

    def write_checkpoint_file(self, obj, path, current_iter):
        """Write one file of the checkpoint of `current_iter` atomically; when that fails, remove the
        files this checkpoint wrote and raise CheckpointNotWritten."""
        try:
            save_atomically(obj, path)
        except OSError as error:
            written = sum(os.path.getsize(f) for f in self.checkpoint_files if os.path.isfile(f))
            for done in self.checkpoint_files:
                if os.path.isfile(done):
                    os.remove(done)
            self.checkpoint_files = []
            raise run_checkpoints.not_written(path, error, current_iter, written + run_checkpoints.tensor_bytes(obj),
                                              self.opt['path']) from error
        if current_iter != -1:
            self.checkpoint_files.append(path)

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
        """BasicSR's, leaving the random states as they were. The final validation is labelled
        `total_iter`: BasicSR's loop passes its counter, which each epoch left after the last
        iteration has moved on by one (a 40-iteration run logged "@ 42 iter")."""
        current_iter = min(current_iter, self.opt['train']['total_iter']) if self.opt.get('train') else current_iter
        with random_states.preserved():
            super().validation(dataloader, current_iter, tb_logger, save_img)


def make_resumable(model):
    """Give a built model ResumableTraining (dckd-train does it to models that are not dckd's)."""
    if not isinstance(model, ResumableTraining):
        model.__class__ = type(type(model).__name__, (ResumableTraining, type(model)), {})
    return model
