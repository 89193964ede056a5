"""VQGANModel: a VQGAN trained on the user's own images, as the feature space of DCKD's DCR and DMM.

`network_g` is a VQGAN (dckd_arch/vqgan_arch.py) learning to reconstruct HR patches
(HRImageDataset) with the losses taming-transformers trains it with, where this machine allows
them: `pixel_opt` (L1), the codebook and commitment terms (`train.codebook_weight`, the VQGAN's
`beta`) → l_codebook, `perceptual_opt` when VGG19's ImageNet weights are here (`dckd-fetch
vgg19`; skipped with a log line otherwise) and, from `train.disc_start`, a patch discriminator
(`network_d`, `gan_opt`, `optim_d`) whose term is weighed as taming weighs it: `gan_opt.loss_weight`
(taming's disc_weight) times the ratio of the gradient norms of the reconstruction terms and of the
GAN term at the decoder's last layer (logged as gan_weight), so that neither drowns the other.

Validation scores the reconstructions (`val.metrics`) and reports the codebook's usage over the
held-out images (codes used, perplexity), warning when it has collapsed: the usual failure, a
codebook whose assignments carry little for DMM. The run ends with models/vqgan_encoder.pth, the
encoder and codebook that `path.pretrain_network_vqgan` takes (any net_g checkpoint of the run
loads there too), and a summary line in the log.
"""
import os
from collections import OrderedDict

import torch

from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_arch.padding import pad_to_multiple
from dckd_arch.vqgan_arch import codebook_usage, encoder_state_dict
from dckd_utils.registry import register
from dckd_utils.schema import config
from .discriminator import WithDiscriminator
from .options import vgg19_places, vgg19_weights, vqgan_downsampling
from .restoration_model import RestorationModel

COLLAPSED = 0.1  # fewer codes used than this share of those the held-out tokens could use: a collapse


def usage_report(used, perplexity, tokens, n_embed, what):
    """(the log line on a codebook's usage, `used` codes of `n_embed` by `tokens` tokens, whether it
    has collapsed)."""
    possible = min(n_embed, tokens)
    line = f'Codebook on {what}: {used} of {n_embed} codes used, perplexity {perplexity:.1f}'
    collapsed = used < COLLAPSED * possible
    if collapsed:
        line += (f'. COLLAPSED: its {tokens} tokens could use {possible} codes; DMM\'s assignments then carry '
                 'little. Lower the learning rate, or raise train.codebook_weight or network_g.beta, and train again.')
    return line, collapsed


@register(MODEL_REGISTRY)
class VQGANModel(WithDiscriminator, RestorationModel):
    """See the module doc."""

    trains_vqgan = True  # the option checks' sign of this model

    def init_training_settings(self):
        train = self.options.train
        self.net_g.train()
        self.cri_pix = build_loss(config(train.pixel_opt)).to(self.device)
        self.cri_perceptual = None
        if train.perceptual_opt and vgg19_weights() is None:
            get_root_logger().info(f"perceptual_opt: skipped, VGG19's ImageNet weights are not here ({vgg19_places()[0]}; "
                                   'dckd-fetch vgg19 gets them): the VQGAN trains without l_percep.')
        elif train.perceptual_opt:
            self.cri_perceptual = build_loss(config(train.perceptual_opt)).to(self.device)
        self.codebook_weight, self.disc_start = train.codebook_weight, train.disc_start
        self.n_embed = self.get_bare_model(self.net_g).n_embed
        self.factor = vqgan_downsampling(self.options.network_g)
        self.init_discriminator()
        self.setup_optimizers()
        self.setup_schedulers()

    def feed_data(self, data):
        self.gt = data['gt'].to(self.device)
        self.lq = self.gt  # BasicSR's validation and visuals read lq

    # ----- training step ---------------------------------------------------------------------

    def optimize_parameters(self, current_iter):
        gan = self.net_d is not None and current_iter >= self.disc_start
        if self.net_d is not None:
            self.net_d.requires_grad_(False)
        self.optimizer_g.zero_grad()
        with self.autocast():
            output, codebook_loss, _ = self.net_g(self.gt, with_codes=True)
        self.output = output.float()
        losses = OrderedDict(l_pix=self.cri_pix(self.output, self.gt),
                             l_codebook=self.codebook_weight * codebook_loss.float())
        if self.cri_perceptual:
            percep, style = self.cri_perceptual(self.output, self.gt)
            losses.update((name, value) for name, value in (('l_percep', percep), ('l_style', style))
                          if value is not None)
        if gan:
            l_g_gan = self.cri_gan(self.net_d(self.output), True, is_disc=False)
            reconstruction = sum(value for name, value in losses.items() if name != 'l_codebook')
            adaptive = self.adaptive_gan_weight(reconstruction, l_g_gan)
            losses['l_g_gan'] = adaptive * l_g_gan
        self.stop_unless_finite(losses, current_iter)
        sum(losses.values()).backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if gan:
            self.log_dict['gan_weight'] = float(adaptive) * self.cri_gan.loss_weight
            self.log_dict.update(self.reduce_loss_dict(self.discriminator_step(self.gt, self.output, current_iter)))

    def adaptive_gan_weight(self, reconstruction, l_g_gan):
        """taming's balance of the GAN term: ||grad of the reconstruction terms|| / ||grad of the
        unweighted GAN term|| at the decoder's last layer, clamped to [0, 1e4], no gradient; the GAN
        term is then this times `gan_opt.loss_weight` (already in `l_g_gan`) times the GAN loss."""
        if not self.cri_gan.loss_weight:
            return torch.zeros((), device=self.device)
        last = self.get_bare_model(self.net_g).decoder.conv_out.weight
        reconstruction_grad = torch.autograd.grad(reconstruction, last, retain_graph=True)[0]
        gan_grad = torch.autograd.grad(l_g_gan, last, retain_graph=True)[0] / self.cri_gan.loss_weight
        return (reconstruction_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0, 1e4).detach()

    # ----- validation ------------------------------------------------------------------------

    def test(self):
        """The reconstruction of the whole image, padded to a multiple of the downsampling factor
        and cropped back; its codes are kept for the usage report."""
        net = self.get_bare_model(self.net_g)
        net.eval()
        with torch.no_grad():
            output, _, codes = net(pad_to_multiple(self.lq, self.factor), with_codes=True)
        net.train()
        self.output = output[..., :self.lq.shape[-2], :self.lq.shape[-1]]
        self.validation_codes.append(codes.flatten().cpu())

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.validation_codes = []
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        name, codes = dataloader.dataset.opt['name'], torch.cat(self.validation_codes)
        used, perplexity = codebook_usage(codes, self.n_embed)
        line, collapsed = usage_report(used, perplexity, codes.numel(), self.n_embed, name)
        (get_root_logger().warning if collapsed else get_root_logger().info)(line)
        if tb_logger:
            tb_logger.add_scalar(f'codebook/{name}/codes_used', used, current_iter)
            tb_logger.add_scalar(f'codebook/{name}/perplexity', perplexity, current_iter)
        self.last_report = (line, getattr(self, 'metric_results', {}))

    # ----- the end of the run ----------------------------------------------------------------

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        if current_iter == -1 and self.opt['rank'] == 0:  # BasicSR's final save: training is over
            self.write_encoder()

    def write_encoder(self):
        path = os.path.join(self.opt['path']['models'], 'vqgan_encoder.pth')
        state = encoder_state_dict(self.get_bare_model(self.net_g).state_dict())
        self.write_checkpoint_file({'params': {k: v.cpu() for k, v in state.items()}}, path, -1)
        summary = f'VQGAN encoder and codebook written to {path}: path.pretrain_network_vqgan takes it.'
        if getattr(self, 'last_report', None):
            line, metrics = self.last_report
            scores = ', '.join(f'{metric} {value:.4f}' for metric, value in metrics.items())
            summary += f' Last validation: {scores}{"; " if scores else ""}{line}.'
        get_root_logger().info(summary)
