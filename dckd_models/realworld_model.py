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

from basicsr.utils.registry import MODEL_REGISTRY
from dckd_data.realworld_degradation import Draws, RealESRGANDegradation, TrainingPairPool, paired_random_crop, \
    sharpener
from dckd_utils.registry import register
from .discriminator import WithDiscriminator
from .kd_model import KDModel
from .options import DEGRADATION


@register(MODEL_REGISTRY)
class RealWorldKDModel(WithDiscriminator, KDModel):
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
        self.init_discriminator()
        self.net_d_iters, self.net_d_init_iters = opt.train.net_d_iters, opt.train.net_d_init_iters
        super().init_training_settings()

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
        real = self.gt_usm if self.options.gan_gt_usm else self.gt
        self.log_dict.update(self.reduce_loss_dict(self.discriminator_step(real, self.output, current_iter)))

    def compute_losses(self, step):
        losses = super().compute_losses(step)
        if self.net_d is not None:
            losses['l_g_gan'] = self.cri_gan(self.net_d(step.output), True, is_disc=False)
        return losses

    # ----- checkpoints -----------------------------------------------------------------------

    def save(self, epoch, current_iter):
        self.rank_pools = self.gather_per_rank(self.pool.state_dict() if self.pool is not None else None)
        super().save(epoch, current_iter)

    def training_state_extras(self):
        return {**super().training_state_extras(), 'pair_pools': self.rank_pools}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        pools = resume_state.get('pair_pools')
        if self.pool is not None and pools:
            rank = self.opt.get('rank', 0)
            self.pool.load_state_dict(pools[rank if len(pools) > rank else 0], self.device)
