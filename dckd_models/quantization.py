"""Quantization-aware training (`train.quantization`): from `start_iter` the student trains as its
fake-quantized twin, the graph the backend's quantizer makes of it (dckd_arch/quantized.py), whose
parameters are the student's own tensors: the optimizer, the EMA and the weights' checkpoints stay
as they are, and `net_g_<iter>.pth` keeps BasicSR's layout (a float student that loads anywhere).
What QAT adds is the state of the fake quantizers (ranges, scales, zero points, observer
switches), saved as `net_g_quantization_<iter>.pth` with every checkpoint and restored on resume.

Under DDP (several ranks) the twin's forward is not DDP's: the student's gradients are averaged
over the ranks after backward (one all-reduce, as DDP does), and after every step each rank takes
rank 0's fake quantizers, as DDP's `broadcast_buffers` gives every rank rank 0's buffers: the
replicas stay identical (checked at every checkpoint) while each rank observes its own batch.

The twins, each captured as in eval mode (no stochastic depth or dropout under QAT):
- the student's: every term's student pass runs through it;
- DCKD's history model's (`history: quantized`): the negatives come from it;
- the EMA student's (when the run has one): validation scores it and the INT8 artifact is made of it.
The student's and the history model's observers learn their ranges as they run (moving averages,
as the backend's QAT configuration sets them) until `freeze_iter`. The EMA's twin never observes:
before each validation its activations' ranges are copied from the student's and its weights' are
measured on the EMA weights (dckd_arch.quantized.follow). Validation runs with every observer off,
so scoring never moves a range. At the end of training the scored twin becomes the INT8 artifact
`models/net_g_int8.pth` (dckd-evaluate, dckd-profile and dckd-quantize --benchmark read it).
"""
import os

import torch

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from dckd_arch.quantized import artifact, fake_quantizers, follow, load_state, observe, prepare, recipe
from dckd_utils.checkpoint import load_checkpoint
from dckd_utils.schema import OptionError

STATE_LABEL = 'net_g_quantization'  # models/net_g_quantization_<iter>.pth
ARTIFACT = 'net_g_int8.pth'
SETTINGS = ('backend', 'start_iter', 'freeze_iter', 'per_channel', 'history')


class QuantizationAwareTraining:
    """The fake-quantized twins of a KDModel's student, EMA student and history model (module doc)."""

    def __init__(self, options, model):
        self.options, self.model = options, model
        self.recipe = recipe(model.opt['network_g'], model.opt.get('scale', 1), options.backend, options.per_channel,
                             training=True)
        self.twins = {}  # role: (network, its fake-quantized graph)

    def settings(self):
        """What a resumed run must share with the run it resumes (saved in the training state)."""
        return {key: getattr(self.options, key) for key in SETTINGS}

    @property
    def active(self):
        return bool(self.twins)

    def begin(self, current_iter):
        """Make the twins at the first iteration of QAT (once)."""
        if self.active or current_iter < self.options.start_iter:
            return
        model = self.model
        networks = {'student': model.get_bare_model(model.net_g), 'ema': getattr(model, 'net_g_ema', None),
                    'history': getattr(model, 'net_history', None) if self.options.history == 'quantized' else None}
        for role, net in networks.items():
            if net is not None:
                self.twins[role] = (net, prepare(net, self.recipe))
        if 'ema' in self.twins:
            observe(self.graph('ema'), False)  # it follows the student's (scored)
        get_root_logger().info(f'Quantization-aware training from iteration {current_iter} (backend '
                               f'{self.options.backend}): {len(fake_quantizers(self.graph("student")))} fake '
                               f'quantizers in the student; fake-quantized: {", ".join(self.twins)}.')

    def graph(self, role):
        return self.twins[role][1]

    def as_trained(self, net):
        """`net` as training runs it: its twin once QAT has begun, else itself."""
        return next((graph for source, graph in self.twins.values() if source is net), net)

    def before_step(self, current_iter):
        self.begin(current_iter)
        freeze = self.options.freeze_iter
        if self.active and freeze is not None and current_iter == max(freeze, self.options.start_iter):
            for role in ('student', 'history'):
                if role in self.twins:
                    observe(self.graph(role), False)
            get_root_logger().info(f'Quantization-aware training: ranges frozen from iteration {current_iter}.')

    def observing(self):
        """The fake quantizers that learn (student's and history model's), by role."""
        return {role: fake_quantizers(self.graph(role)) for role in ('student', 'history') if role in self.twins}

    def after_step(self):
        """Under DDP, every rank takes rank 0's fake quantizers (see the module doc)."""
        if self.active and self.model.opt['dist']:
            for quantizers in self.observing().values():
                for tensor in quantizers.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)

    def scored(self):
        """The twin validation scores and the artifact holds: the EMA student's when the run has one."""
        if 'ema' not in self.twins:
            return self.graph('student')
        follow(self.graph('ema'), self.graph('student'))
        return self.graph('ema')

    @torch.no_grad()
    def score(self, images):
        """The scored twin's output, its observers off for the call (scoring never moves a range)."""
        graph = self.scored()
        switches = {name: q.observer_enabled.clone() for name, q in fake_quantizers(graph).items()}
        observe(graph, False)
        output = graph(images)
        for name, quantizer in fake_quantizers(graph).items():
            quantizer.observer_enabled.copy_(switches[name])
        return output

    # ----- checkpoints -----------------------------------------------------------------------

    def save(self, current_iter):
        """The fake quantizers with every checkpoint (`net_g_quantization_<iter>.pth`, a key per role);
        at the end (`current_iter` -1) the INT8 artifact instead."""
        if not self.active:
            return
        if current_iter == -1:
            self.save_artifact()
            return
        observing = self.observing()
        self.model.save_network(list(observing.values()), STATE_LABEL, current_iter, param_key=list(observing))

    @master_only
    def save_artifact(self):
        model = self.model
        path = os.path.join(model.opt['path']['models'], ARTIFACT)
        count = sum(p.numel() for p in self.twins['student'][0].parameters())
        model.write_checkpoint_file(artifact(self.recipe, self.scored(), count), path, -1)
        get_root_logger().info(f'INT8 artifact ({self.options.backend}): {path} (dckd-evaluate, dckd-profile '
                               'and dckd-quantize --benchmark read it)')

    def resume(self, resume_state):
        """Check the resumed run's options against the state's; at or past start_iter, make the twins
        of the loaded networks and restore their quantizers."""
        saved = resume_state.get('quantization')
        if saved is None:
            raise OptionError('train.quantization is set, but the run being resumed trained without it: start the '
                              'quantization-aware fine-tune from its checkpoint (path.pretrain_network_g) instead.')
        for key, value in self.settings().items():
            if saved.get(key) != value:
                raise OptionError(f'train.quantization.{key} was {saved.get(key)!r} in the run being resumed and is '
                                  f'{value!r} now: resume with the same quantization options.')
        iteration = resume_state['iter']
        if iteration < self.options.start_iter:
            return
        path = os.path.join(self.model.opt['path']['models'], f'{STATE_LABEL}_{iteration}.pth')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'resuming quantization-aware training needs the fake quantizers saved with the '
                                    f'state: {path} is missing.')
        self.begin(iteration)
        saved_quantizers = load_checkpoint(path, 'fake quantizers')
        for role, quantizers in self.observing().items():
            load_state(quantizers, saved_quantizers[role])
        get_root_logger().info(f'Resume: the fake quantizers from {path}')
