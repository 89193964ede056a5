"""KDModel: BasicSR's SRModel plus a frozen teacher and the distillation terms."""
import contextlib
import os
from collections import OrderedDict

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from dckd.registry import register
from dckd_arch.fused_attention import use_fused_attention
from dckd_arch.padding import pad_to_multiple
from dckd.schema import config
from .frozen import build, check_detected, checkpoint_source, freeze, load_teacher
from .resumable import ResumableTraining
from .options import import_modules, is_rewritten_by_resume, needs_teacher, parse_training_options
from .schedules import CosineAnnealingRestartCyclicLR, ProgressivePatches
from .taps import FeatureTaps, check_module_names
from .terms import Step, build_terms


def build_optional_loss(component):
    """The loss a parsed `train.*_opt` describes, or None when the term is off."""
    return build_loss(config(component)) if component else None


class TrainingStopped(RuntimeError):
    """Training cannot go on (a loss became NaN or inf); the message says where and what to do."""


@register(MODEL_REGISTRY)
class KDModel(ResumableTraining, SRModel):
    """Student `network_g` trained with its usual losses plus the distillation terms its
    `train.*_opt` options switch on (dckd_models/terms: Logits KD, label consistency, FAKD, DUKD).
    Each step, the terms add the inputs they need; the student and the teacher run once per input
    size over all of them, features of tapped modules recorded by forward hooks; the losses of the
    terms are summed.

    `train.precision: bfloat16` runs the networks' forward passes under bfloat16 autocast (the
    student's weights, gradients and optimizer stay float32) and every loss in float32; the
    default `float32` is plain float32.

    The teacher (`network_t`, `path.pretrain_network_t`, `param_key_t`, `strict_load_t`) is
    built only when a term needs it, stays in eval mode without gradients, and is never saved;
    its checkpoint source is kept in the training state so resuming needs no
    `ignore_resume_networks`. Windowed students (`network_g.window_size`) are padded at test.
    """

    def __init__(self, opt):
        if opt['is_train']:
            import_modules(opt.get('import_modules', []), 'import_modules')  # also under BasicSR's train.py
            self.options = parse_training_options(opt)  # OptionError before any network is built
        super().__init__(opt)
        self.apply_cost_options(opt)

    def apply_cost_options(self, opt):
        """`fused_attention` and `train.compile_frozen`, once every network exists."""
        if opt.get('fused_attention'):
            networks = [net for net in vars(self).values() if isinstance(net, nn.Module)]
            switched = sum(use_fused_attention(net) for net in networks)
            get_root_logger().info(f'fused_attention: {switched} SwinIR window attention modules switched')
        if opt['is_train'] and self.options.train.compile_frozen:
            for net in self.frozen_networks():
                net.compile()  # in place: state_dict keys stay unprefixed
            get_root_logger().info('compile_frozen: the frozen networks are compiled on first use (takes minutes)')

    # ----- setup -----------------------------------------------------------------------------

    def init_training_settings(self):
        train = self.options.train
        self.terms = build_terms(train, self)
        self.mixed_precision = train.precision == 'bfloat16'
        self.progressive = ProgressivePatches(train.progressive) if train.progressive else None
        self.frozen_sources = {}
        self.deferred_networks = []
        # the model's own random stream (degradations, LCR transforms): per rank, and saved with
        # the training state, so a resumed run draws exactly what an uninterrupted one would
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(self.opt.get('manual_seed', 0) + self.opt.get('rank', 0))
        if needs_teacher(train):
            self.net_t = self.build_frozen('network_t', self.load_teacher)
        super().init_training_settings()
        self.taps = {role: self.tap(role, network) for role, network in (('student', 'net_g'), ('teacher', 'net_t'))}

    def tap(self, role, network):
        """FeatureTaps on the modules the terms read of the student or the teacher."""
        names = [name for term in self.terms for name in term.taps()[role]]
        if not names:
            return None
        net = self.get_bare_model(getattr(self, network))
        check_module_names(net, names, f'train: the {role} taps')
        return FeatureTaps(net, names)

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

    def frozen_networks(self):
        """Networks that only run forward passes on the student's behalf."""
        return [self.net_t] if hasattr(self, 'net_t') else []

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

    def generators(self):
        return {'model': self.rng}

    def save_extra_networks(self, current_iter):
        """Hook for networks a subclass saves with every checkpoint."""

    def load_teacher(self, net, source):
        """BasicSR checkpoints under `param_key_t`; official RCAN files (EDSR-PyTorch layout,
        `RCAN_BIX4.pt`) are converted on the fly (dckd-convert-rcan does it once, to a file)."""
        load_teacher(net, source)
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

    def optimize_parameters(self, current_iter):
        if self.progressive:
            self.lq, self.gt = self.progressive.crop(self.lq, self.gt, current_iter, self.opt.get('scale', 1), self.rng)
        self.optimizer_g.zero_grad()
        step = self.run_step()
        self.output = step.output
        losses = self.compute_losses(step)
        self.stop_unless_finite(losses, current_iter)
        sum(losses.values()).backward()
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
        step.outputs['student'], step.features['student'] = self.run_network(self.net_g, step.inputs['student'],
                                                                             self.taps['student'])
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
                start = sum(sizes[:names.index('main')])
                features = {module: passes[0][start:start + sizes[names.index('main')]]
                            for module, passes in recorded.items()}
        return outputs, features

    def compute_losses(self, step):
        """Every enabled loss of this step, by log name."""
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(step.output, step.gt)
        if self.cri_perceptual:
            percep, style = self.cri_perceptual(step.output, step.gt)
            losses.update({k: v for k, v in (('l_percep', percep), ('l_style', style)) if v is not None})
        for term in self.terms:
            losses.update(term.losses(step))
        return losses

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

    def after_step(self, current_iter):
        """Hook after the optimizer and EMA updates."""

    # ----- test ------------------------------------------------------------------------------

    def test(self):
        window = self.opt['network_g'].get('window_size')
        if not window:
            return super().test()
        lq = self.lq
        self.lq = pad_to_multiple(lq, window)
        super().test()
        self.lq = lq
        scale = self.opt.get('scale', 1)
        self.output = self.output[..., :lq.shape[-2] * scale, :lq.shape[-1] * scale]

    # ----- checkpoints -----------------------------------------------------------------------

    def training_state_extras(self):
        """Where the frozen networks' weights came from: resume reloads them from there."""
        return {'frozen_networks': self.frozen_sources}

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
