"""RealWorldKDModel: distillation for real-world super-resolution, trained as Real-ESRGAN trains.

KDModel (the teacher and every distillation term) with what BasicSR 1.4.2's RealESRGANModel adds
to SRModel: each training batch of HR images (RealESRGANDataset) is degraded into its LQ input by
the second-order degradation, cropped and passed through the training pair pool
(dckd_data/realworld_degradation.py); the losses compare with the sharpened GT where the options
say so; with `network_d`, a discriminator trains beside the student (GANLoss, `optim_d`, the
same scheduler, `net_d_iters`, `net_d_init_iters`). Unlike BasicSR's model it runs on any device,
and a resumed run continues exactly: the degradation draws from the model's own generators, the
pool and the discriminator are saved with every checkpoint. The teacher labels the degraded input,
so every term works unchanged; DCR can take its negatives from the same degradations
(`train.negatives.pipeline: realworld`).
"""
from collections import OrderedDict

import numpy as np
import torch

from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_data.realworld_degradation import Draws, RealESRGANDegradation, TrainingPairPool, paired_random_crop, \
    sharpener
from dckd_utils.registry import register
from dckd_utils.schema import config
from .frozen import build, checkpoint_source, load_into
from .kd_model import KDModel
from .options import DEGRADATION, is_rewritten_by_resume


@register(MODEL_REGISTRY)
class RealWorldKDModel(KDModel):
    """See the module doc. Options: the top-level keys of Real-ESRGAN's options files (gt_size,
    queue_size, *_gt_usm, the two degradations), `network_d`, `train.gan_opt`, `train.optim_d`,
    `train.net_d_iters`, `train.net_d_init_iters`, `path.pretrain_network_d`."""

    synthesizes_pairs = True  # the option checks' sign of a model that makes its LQ from RealESRGANDataset's HR

    # ----- setup -----------------------------------------------------------------------------

    def init_training_settings(self):
        opt = self.options
        self.degrade = RealESRGANDegradation({key: getattr(opt, key) for key in DEGRADATION}, opt.scale,
                                             self.device)
        self.sharpen = sharpener(self.device)
        self.pool = TrainingPairPool(opt.queue_size) if opt.queue_size else None
        # the degradation's branch and factor draws: a CPU generator of its own, seeded apart from the
        # model's (which draws the noise and the pool's shuffles on the device)
        seed = np.random.SeedSequence([self.opt.get('manual_seed', 0), self.opt.get('rank', 0), 1])
        self.choices = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        self.net_d = self.build_discriminator() if opt.network_d else None
        super().init_training_settings()
        if self.net_d is not None:
            train = opt.train
            self.cri_gan = build_loss(config(train.gan_opt)).to(self.device)
            self.net_d_iters, self.net_d_init_iters = train.net_d_iters, train.net_d_init_iters

    def build_discriminator(self):
        net = self.model_to_device(build(self.options.network_d, 'network_d'))
        self.print_network(net)
        if not is_rewritten_by_resume(self.options.path, 'network_d'):
            source = checkpoint_source(self.options.path, 'network_d')
            if source['path'] is not None:
                load_into(self.get_bare_model(net), source, 'network_d')
                get_root_logger().info(f'Discriminator: loaded {source["path"]}')
        return net.train()

    def setup_optimizers(self):
        """The student's optimizer (and the adapters'), then the discriminator's: the order of
        BasicSR's SRGANModel, which the training state's optimizer list keeps."""
        super().setup_optimizers()
        if self.net_d is not None:
            optim_d = self.options.train.optim_d
            self.optimizer_d = self.get_optimizer(optim_d.type, self.net_d.parameters(), **optim_d.arguments)
            self.optimizers.append(self.optimizer_d)

    def generators(self):
        return {**super().generators(), 'degradation': self.choices}

    def negative_degradation(self, options):
        """With `pipeline: realworld`, D_j is the second degradation again, at the LQ size."""
        if options.pipeline != 'realworld':
            return super().negative_degradation(options)

        def degrade(images):
            kernels = self.kernel2.repeat(images.size(0) // self.kernel2.size(0), 1, 1)
            return self.degrade.degrade_again(images, kernels, Draws(self.choices, self.rng))

        return degrade

    # ----- data ------------------------------------------------------------------------------

    @torch.no_grad()
    def feed_data(self, data):
        """A training batch of RealESRGANDataset (GT and kernels) becomes a degraded, cropped pair
        through the pool; any other batch (validation) is a paired one, as SRModel reads it."""
        if 'kernel1' not in data:
            return super().feed_data(data)
        gt = data['gt'].to(self.device)
        kernel1, self.kernel2, sinc = (data[key].to(self.device) for key in ('kernel1', 'kernel2', 'sinc_kernel'))
        draws = Draws(self.choices, self.rng)
        lq = self.degrade(self.sharpen(gt), kernel1, self.kernel2, sinc, draws)
        (gt, ), lq = paired_random_crop([gt], lq, self.options.gt_size, self.options.scale, draws)
        if self.pool is not None:
            lq, gt = self.pool(lq, gt, self.rng)
        self.lq, self.gt = lq.contiguous(), gt
        self.gt_usm = self.sharpen(gt)

    def target(self, loss, step):
        sharpened = {'pixel': self.options.l1_gt_usm, 'perceptual': self.options.percep_gt_usm}[loss]
        return self.gt_usm if sharpened and hasattr(self, 'gt_usm') else step.gt

    # ----- training step ---------------------------------------------------------------------

    def optimize_parameters(self, current_iter):
        if self.net_d is None:
            return super().optimize_parameters(current_iter)
        self.net_d.requires_grad_(False)
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            super().optimize_parameters(current_iter)  # the student's step, l_g_gan among its losses
        else:  # the discriminator alone; the EMA still moves every iteration, as in BasicSR
            if self.qat:
                self.qat.before_step(current_iter)  # the student's step does it in KDModel
            with torch.no_grad():
                self.output = self.as_trained(self.net_g)(self.lq)
            self.log_dict = OrderedDict()
            if self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)
            if self.qat:
                self.qat.after_step()  # its observers saw this pass
        self.net_d.requires_grad_(True)
        self.log_dict.update(self.reduce_loss_dict(self.discriminator_step(current_iter)))

    def compute_losses(self, step):
        losses = super().compute_losses(step)
        if self.net_d is not None:
            losses['l_g_gan'] = self.cri_gan(self.net_d(step.output), True, is_disc=False)
        return losses

    def discriminator_step(self, current_iter):
        """One step of the discriminator: the GT (sharpened with gan_gt_usm) as real, the student's
        output as fake; each loss checked before its backward pass (as BasicSR, one pass each)."""
        self.optimizer_d.zero_grad()
        real = self.gt_usm if self.options.gan_gt_usm else self.gt
        losses = OrderedDict()
        for name, images, is_real in (('real', real, True), ('fake', self.output.detach().clone(), False)):
            prediction = self.net_d(images)
            loss = self.cri_gan(prediction, is_real, is_disc=True)
            self.stop_unless_finite({f'l_d_{name}': loss}, current_iter)
            loss.backward()
            losses[f'l_d_{name}'], losses[f'out_d_{name}'] = loss, prediction.detach().mean()
        self.optimizer_d.step()
        return losses

    # ----- checkpoints -----------------------------------------------------------------------

    def replicated_networks(self):
        networks = super().replicated_networks()
        if self.net_d is not None:
            networks['discriminator'] = self.get_bare_model(self.net_d)
        return networks

    def save(self, epoch, current_iter):
        self.rank_pools = self.gather_per_rank(self.pool.state_dict() if self.pool is not None else None)
        super().save(epoch, current_iter)

    def save_extra_networks(self, current_iter):
        super().save_extra_networks(current_iter)
        if self.net_d is not None:
            self.save_network(self.net_d, 'net_d', current_iter)

    def training_state_extras(self):
        return {**super().training_state_extras(), 'pair_pools': self.rank_pools}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.net_d is not None:
            path = self.load_saved_network(self.net_d, 'net_d', resume_state, 'needs the discriminator')
            get_root_logger().info(f'Resume: the discriminator from {path}')
        pools = resume_state.get('pair_pools')
        if self.pool is not None and pools:
            rank = self.opt.get('rank', 0)
            self.pool.load_state_dict(pools[rank if len(pools) > rank else 0], self.device)
