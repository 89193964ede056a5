"""RestorationModel: what every restoration run dckd trains needs, apart from distillation.

BasicSR's SRModel with: options parsed and checked once (dckd_models/options.py) before any
network is built; any torch.optim optimizer by name and Restormer's cyclic cosine schedule;
`train.precision: bfloat16` (forward passes under bfloat16 autocast; weights, gradients, optimizer
and losses stay float32); `fused_attention`; DDP on CPU (gloo); replicas checked to be in sync at
each checkpoint; a loss that becomes NaN or inf stops the run; windowed networks padded at test;
exact resume (ResumableTraining). KDModel adds the teacher and the distillation terms.
"""
import os

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from dckd_arch.fused_attention import use_fused_attention
from dckd_arch.padding import pad_to_multiple
from .options import import_modules, parse_training_options
from .resumable import ResumableTraining
from .schedules import CosineAnnealingRestartCyclicLR


class TrainingStopped(RuntimeError):
    """Training cannot go on (a loss became NaN or inf); the message says where and what to do."""


class RestorationModel(ResumableTraining, SRModel):
    """See the module doc; not registered: KDModel and DCKDModel are the model types."""

    def __init__(self, opt):
        if opt['is_train']:
            import_modules(opt.get('import_modules', []), 'import_modules')  # also under BasicSR's train.py
            self.options = parse_training_options(opt)  # OptionError before any network is built
        self.mixed_precision = opt['is_train'] and self.options.train.precision == 'bfloat16'
        super().__init__(opt)
        if opt.get('fused_attention'):  # once every network exists
            networks = [net for net in vars(self).values() if isinstance(net, nn.Module)]
            switched = sum(use_fused_attention(net) for net in networks)
            get_root_logger().info(f'fused_attention: {switched} SwinIR window attention modules switched')

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any torch.optim optimizer by name (BasicSR 1.4.2 knows only Adam; NAFNet and Restormer
        train with AdamW); the name is checked by the option schema."""
        return getattr(torch.optim, optim_type)(params, lr, **kwargs)

    def setup_schedulers(self):
        """BasicSR's schedulers, plus CosineAnnealingRestartCyclicLR (Restormer's recipe)."""
        scheduler = self.options.train.scheduler
        if scheduler.type != 'CosineAnnealingRestartCyclicLR':
            return super().setup_schedulers()
        self.schedulers = [CosineAnnealingRestartCyclicLR(o, **scheduler.arguments) for o in self.optimizers]

    def autocast(self):
        """bfloat16 autocast with `train.precision: bfloat16`, a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    def model_to_device(self, net):
        """BasicSR wraps with DDP on `cuda.current_device()`; on CPU (gloo) DDP takes no device ids."""
        if self.opt['dist'] and self.device.type == 'cpu':
            return DistributedDataParallel(net.to(self.device),
                                           find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return super().model_to_device(net)

    def replicated_networks(self):
        """Networks every rank must hold identically under DDP."""
        networks = {'student': self.get_bare_model(self.net_g)}
        if hasattr(self, 'net_g_ema'):
            networks['EMA'] = self.net_g_ema
        return networks

    def check_replicas_in_sync(self):
        """Compare per-tensor sums of every replicated network across ranks (cheap, exact)."""
        networks = self.replicated_networks()
        sums = torch.stack([t.detach().double().sum() for net in networks.values() for t in net.state_dict().values()])
        gathered = [torch.empty_like(sums) for _ in range(self.opt['world_size'])]
        torch.distributed.all_gather(gathered, sums)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f'{", ".join(networks)} weights differ between ranks: DDP replicas are out of sync')
        get_root_logger().info(f'{", ".join(networks)} weights identical on all {len(gathered)} ranks.')

    def save(self, epoch, current_iter):
        """Replicas checked, then extra networks, then BasicSR's (student, EMA, training state last)."""
        if self.opt['dist']:
            self.check_replicas_in_sync()
        self.save_extra_networks(current_iter)
        super().save(epoch, current_iter)

    def stop_unless_finite(self, losses, current_iter):
        """Stop before a NaN or inf loss reaches the weights, naming the iteration and the terms; no
        checkpoint is written after it, so the last one saved is the last good one. All ranks stop
        together (one all-reduce of a flag: a lone rank stopping would leave the others waiting)."""
        finite = torch.stack([value.detach().isfinite().all() for value in losses.values()])
        if self.opt['dist']:
            all_finite = finite.all().to(torch.int32)
            torch.distributed.all_reduce(all_finite, op=torch.distributed.ReduceOp.MIN)
            if bool(all_finite):
                return
        elif bool(finite.all()):
            return
        bad = {name: float(value.detach()) for name, value, ok in zip(losses, losses.values(), finite.tolist())
               if not ok}
        states = self.opt['path'].get('training_states', '')
        saved = sorted(int(f[:-len('.state')]) for f in os.listdir(states) if f[:-len('.state')].isdigit()
                       ) if os.path.isdir(states) else []
        fix = ('lower train.optim_g.lr or the loss_weight of that term (or check the data and the teacher '
               'checkpoint)')
        then = (f'The last good checkpoint (iteration {saved[-1]}) is kept: {fix}, then resume from it with '
                '--auto_resume.' if saved else f'No checkpoint was saved before it: {fix} and start again.')
        bad_text = ', '.join(f'{name} = {value}' for name, value in bad.items()) or 'a loss on another rank'
        message = (f'training stopped at iteration {current_iter}: {bad_text} is not finite; this step would have '
                   f'spread it into the student. {then}')
        get_root_logger().error(message)
        raise TrainingStopped(message)

    def save_extra_networks(self, current_iter):
        """Hook for networks a subclass saves with every checkpoint."""

    def load_saved_network(self, net, label, resume_state, needs):
        """`net` from `<label>_<iter>.pth`, written with the training state being resumed; `needs`
        says who needs it in the error when the file is missing."""
        path = os.path.join(self.opt['path']['models'], f'{label}_{resume_state["iter"]}.pth')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'resuming {needs} saved with the state: {path} is missing.')
        self.load_network(net, path, strict=True, param_key='params')
        return path

    def test(self):
        """SRModel's test; inputs of windowed networks (`network_g.window_size`) padded to whole
        windows and the output cropped back."""
        window = self.opt['network_g'].get('window_size')
        if not window:
            return super().test()
        lq = self.lq
        self.lq = pad_to_multiple(lq, window)
        super().test()
        self.lq = lq
        scale = self.opt.get('scale', 1)
        self.output = self.output[..., :lq.shape[-2] * scale, :lq.shape[-1] * scale]
