"""KDModel: a restoration model (RestorationModel) plus a frozen teacher and the distillation terms."""
import contextlib
from collections import OrderedDict

import torch
from torch import nn

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_utils.registry import register
from dckd_utils.schema import OptionError
from .frozen import build, check_detected, checkpoint_source, freeze, load_into
from .negatives import NegativeDegrader, undegraded_warning
from .options import is_rewritten_by_resume, needs_teacher
from .quantization import QuantizationAwareTraining
from .restoration_model import RestorationModel
from .schedules import ProgressivePatches
from .taps import FeatureTaps, check_module_names
from .terms import Step, build_terms, tapped_modules


NETWORKS = (('student', 'net_g'), ('teacher', 'net_t'))  # the tapped networks, by role


@register(MODEL_REGISTRY)
class KDModel(RestorationModel):
    """Student `network_g` trained with its usual losses plus the distillation terms its
    `train.*_opt` options switch on (dckd_models/terms: Logits KD, label consistency, FAKD, DUKD, DCKD's DCR and DMM).
    Each step, the terms add the inputs they need; the student and the teacher run once per input
    size over all of them, features of tapped modules recorded by forward hooks; the losses of the
    terms are summed.

    The teacher (`network_t`, `path.pretrain_network_t`, `param_key_t`, `strict_load_t`) is
    built only when a term needs it, stays in eval mode without gradients, and is never saved;
    its checkpoint source is kept in the training state so resuming needs no
    `ignore_resume_networks`. `train.compile_frozen` compiles the frozen networks.
    """

    def __init__(self, opt):
        super().__init__(opt)
        if opt['is_train'] and self.options.train.compile_frozen:
            for net in self.frozen_networks():
                net.compile()  # in place: state_dict keys stay unprefixed
            get_root_logger().info('compile_frozen: the frozen networks are compiled on first use (takes minutes)')

    # ----- setup -----------------------------------------------------------------------------

    def init_training_settings(self):
        train = self.options.train
        self.progressive = ProgressivePatches(train.progressive) if train.progressive else None
        self.frozen_sources = {}
        self.deferred_networks = []
        # the model's own random stream (degradations, LCR transforms): per rank, and saved with
        # the training state, so a resumed run draws exactly what an uninterrupted one would
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(self.opt.get('manual_seed', 0) + self.opt.get('rank', 0))
        if needs_teacher(train):
            self.net_t = self.build_frozen('network_t', self.load_teacher)
        self.probed_shapes = None
        super().init_training_settings()  # the EMA student, then setup_optimizers below, then the schedulers
        self.taps = {role: self.tap(role, network) for role, network in NETWORKS}
        self.qat = QuantizationAwareTraining(train.quantization, self) if train.quantization else None

    def setup_optimizers(self):
        """The terms are built here, where SRModel's init_training_settings sets up the optimizer: after
        the EMA student (DCKD's history model starts from it) and before the schedulers, so the
        adapters the terms train join optim_g as a second parameter group, with its settings, that
        the schedulers follow too."""
        self.terms = build_terms(self.options.train, self)
        adapters = {name: module for term in self.terms for name, module in term.adapters().items()}
        self.net_adapters = self.build_adapters(adapters) if adapters else None
        super().setup_optimizers()
        if self.net_adapters is not None:
            self.optimizer_g.add_param_group({'params': list(self.net_adapters.parameters())})

    def build_adapters(self, adapters):
        """The terms' adapters as one module on the device; under DDP every rank starts from rank 0's
        weights (each rank seeds its own random stream)."""
        net = nn.ModuleDict(adapters).to(self.device)
        if self.opt['dist']:
            for tensor in net.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        get_root_logger().info(f'Adapters trained with the student: {", ".join(adapters)} '
                               f'({sum(p.numel() for p in net.parameters())} parameters)')
        return net

    def term(self, cls):
        """The enabled term of class `cls`, or None."""
        return next((term for term in self.terms if isinstance(term, cls)), None)

    def tap(self, role, network):
        """FeatureTaps on the modules the terms read of the student or the teacher."""
        tapped = tapped_modules(self.options.train, role)
        if not tapped:
            return None
        net = self.get_bare_model(getattr(self, network))
        for where, names in tapped:
            check_module_names(net, names, where)
        return FeatureTaps(net, [name for _, names in tapped for name in names])

    @torch.no_grad()
    def tapped_shapes(self):
        """{role: {module: shape of its output}} of the tapped modules for one LR training patch
        (zeros, with the channels of the student's first convolution: nothing is drawn at random),
        probed once, the networks in eval mode."""
        if self.probed_shapes is None:
            scale = self.opt.get('scale', 1)
            size = self.opt.get('datasets', {}).get('train', {}).get('gt_size', 32 * scale) // scale
            for network_key in ('network_g', 'network_t'):
                window = (self.opt.get(network_key) or {}).get('window_size', 1)
                size = -(-size // window) * window
            student = self.get_bare_model(self.net_g)
            in_channels = next(m.in_channels for m in student.modules() if isinstance(m, nn.Conv2d))
            patch = torch.zeros(1, in_channels, size, size, device=self.device)
            self.probed_shapes = {}
            for role, network in NETWORKS:
                taps = self.tap(role, network)
                if taps is not None:
                    net = self.get_bare_model(getattr(self, network))
                    was_training = net.training
                    with taps.recording() as recorded:
                        net.eval()(patch)
                    net.train(was_training)
                    taps.remove()
                    self.probed_shapes[role] = {name: tuple(outputs[0].shape) for name, outputs in recorded.items()}
        return self.probed_shapes

    def frozen_networks(self):
        """Networks that only run forward passes on the student's behalf."""
        return ([self.net_t] if hasattr(self, 'net_t') else []) + [n for t in self.terms for n in t.frozen_networks()]

    def replicated_networks(self):
        networks = super().replicated_networks()
        if self.net_adapters is not None:
            networks['adapters'] = self.net_adapters
        for term in self.terms:
            networks.update(term.replicated_networks())
        if self.qat and self.qat.active:
            networks.update({f'{role} fake quantizers': q for role, q in self.qat.observing().items()})
        return networks

    def save_extra_networks(self, current_iter):
        if self.net_adapters is not None:
            self.save_network(self.net_adapters, 'net_adapters', current_iter)
        for term in self.terms:
            term.save(current_iter)
        if self.qat:
            self.qat.save(current_iter)

    def generators(self):
        return {'model': self.rng}

    def negative_degradation(self, options):
        """D_j of DCR's negatives H(D_j(x)): the degradations of `train.negatives`."""
        warning = undegraded_warning(options)
        if warning:
            get_root_logger().warning(warning)
        return NegativeDegrader(options, self.rng)

    def load_teacher(self, net, source):
        """BasicSR checkpoints under `param_key_t`; official RCAN files (EDSR-PyTorch layout,
        `RCAN_BIX4.pt`) are converted on the fly (dckd-convert-rcan does it once, to a file)."""
        load_into(net, source, 'network_t')
        get_root_logger().info(f'Teacher: loaded {source["path"]}')

    def build_frozen(self, network_key, load):
        """Build `network_key`, freeze it, load its checkpoint (or defer that to resume_training)."""
        net = freeze(build(getattr(self.options, network_key), network_key).to(self.device))
        self.print_network(net)
        detected = check_detected(net, self.options, network_key)
        if detected:
            get_root_logger().info(f'{network_key}: {detected}')
        if is_rewritten_by_resume(self.options.path, network_key):
            self.deferred_networks.append((network_key, net, load))
        else:
            source = checkpoint_source(self.options.path, network_key)
            if source['path'] is not None:
                load(net, source)
            self.frozen_sources[network_key] = source
        return net

    # ----- training step ---------------------------------------------------------------------

    def as_trained(self, net):
        """`net` as training runs it: its fake-quantized twin under train.quantization once QAT has begun
        (under DDP too: the twin is the bare network's)."""
        if not getattr(self, 'qat', None):
            return net
        bare = self.get_bare_model(net)
        twin = self.qat.as_trained(bare)
        return net if twin is bare else twin

    def optimize_parameters(self, current_iter):
        if self.qat:
            self.qat.before_step(current_iter)
        if self.progressive:
            self.lq, self.gt = self.progressive.crop(self.lq, self.gt, current_iter, self.opt.get('scale', 1), self.rng)
        self.optimizer_g.zero_grad()
        step = self.run_step()
        self.output = step.output
        losses = self.compute_losses(step)
        self.stop_unless_finite(losses, current_iter)
        sum(losses.values()).backward()
        if self.opt['dist'] and self.qat and self.qat.active:  # the twin's forward is not DDP's
            average_gradients(self.get_bare_model(self.net_g).parameters(), self.opt['world_size'])
        if self.opt['dist'] and self.net_adapters is not None:
            average_gradients(self.net_adapters.parameters(), self.opt['world_size'])
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        self.after_step(current_iter)

    def run_step(self):
        """This step's inputs, drawn by the terms, and the student's and the teacher's passes over them."""
        step = Step(self.lq, self.gt, teacher=hasattr(self, 'net_t'))
        for term in self.terms:
            term.add_inputs(step, self.rng)
        step.outputs['student'], step.features['student'] = self.run_network(
            self.as_trained(self.net_g), step.inputs['student'], self.taps['student'])
        if step.inputs['teacher']:
            with torch.no_grad():
                step.outputs['teacher'], step.features['teacher'] = self.run_network(
                    self.net_t, step.inputs['teacher'], self.taps['teacher'])
        return step

    def run_network(self, net, inputs, taps):
        """`net` over the named batches, one pass per input size (batches of a size concatenated in
        order), under the precision option: float32 outputs by name, and the tapped features of the
        'main' batch by module name."""
        groups = {}
        for name, images in inputs.items():
            groups.setdefault(tuple(images.shape[1:]), []).append(name)
        outputs, features = {}, {}
        for names in groups.values():
            sizes = [len(inputs[name]) for name in names]
            with self.autocast(), taps.recording() if taps else contextlib.nullcontext({}) as recorded:
                output = net(torch.cat([inputs[name] for name in names]) if len(names) > 1 else inputs[names[0]])
            outputs.update(zip(names, output.float().split(sizes)))
            if 'main' in names:
                main = names.index('main')
                features = {module: passes[0].split(sizes)[main] for module, passes in recorded.items()}
        return outputs, features

    def compute_losses(self, step):
        """Every enabled loss of this step, by log name."""
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(step.output, self.target('pixel', step))
        if self.cri_perceptual:
            percep, style = self.cri_perceptual(step.output, self.target('perceptual', step))
            losses.update({k: v for k, v in (('l_percep', percep), ('l_style', style)) if v is not None})
        for term in self.terms:
            losses.update(term.losses(step))
        return losses

    def test(self):
        """Validation: the fake-quantized student under QAT (dckd_models/quantization.py), else RestorationModel's."""
        if getattr(self, 'qat', None) and self.qat.active:
            self.output = self.qat.score(self.lq)
        else:
            super().test()

    def target(self, loss, step):
        """The ground truth the student's `loss` ('pixel', 'perceptual') compares with."""
        return step.gt

    def after_step(self, current_iter):
        """After the optimizer and EMA updates."""
        for term in self.terms:
            term.after_step(current_iter)
        if self.qat:
            self.qat.after_step()

    # ----- checkpoints -----------------------------------------------------------------------

    def training_state_extras(self):
        """Where the frozen networks' weights came from (resume reloads them from there), and the
        quantization options (a resume must keep them)."""
        return {'frozen_networks': self.frozen_sources, 'quantization': self.qat.settings() if self.qat else None}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        recorded = resume_state.get('frozen_networks', {})
        for network_key, net, load in self.deferred_networks:
            if network_key not in recorded:
                raise KeyError(f'the training state does not say which checkpoint {network_key} came from; '
                               f"add 'ignore_resume_networks: [{network_key}]' under path to load "
                               f'path.pretrain_{network_key} instead.')
            source = recorded[network_key]
            get_root_logger().info(f'Resume: {network_key} from {source["path"]}')
            if source['path'] is not None:
                load(net, source)
            self.frozen_sources[network_key] = source
        self.deferred_networks = []
        if self.net_adapters is not None:
            self.load_saved_network(self.net_adapters, 'net_adapters', resume_state, 'needs the adapters')
        for term in self.terms:
            term.resume(resume_state)
        if self.qat:
            self.qat.resume(resume_state)
        elif resume_state.get('quantization'):
            raise OptionError('the run being resumed trained with train.quantization '
                              f'{resume_state["quantization"]}: resume it with the same train.quantization.')


def average_gradients(parameters, world_size):
    """Average the gradients of `parameters` over the ranks, as DDP does for the student's (one
    all-reduce; a parameter without a gradient counts as zero on its rank)."""
    parameters = list(parameters)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    for parameter, averaged in zip(parameters, flat.split([p.numel() for p in parameters])):
        parameter.grad = averaged.view_as(parameter).clone()
