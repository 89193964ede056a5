"""DCKD (AAAI 2025): dynamic contrastive regularization (DCR) and distribution mapping (DMM) in the
feature space of a frozen VQGAN encoder."""
import copy

import torch

from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from dckd_utils.registry import register
from dckd_utils.schema import config
from dckd_losses.contrastive_loss import NegativeSums
from ..frozen import freeze, load_vqgan
from ..history import HistorySchedule, move_towards
from . import TERM_REGISTRY, Term


@register(TERM_REGISTRY)
class DynamicContrastiveKD(Term):
    """Each optional:

    - `train.contrastive_opt` (DynamicContrastiveLoss, l_dcl): anchor S(x), positive T(x),
      negatives H(x) and H(D_j(x)) from the history model H (`train.history`) and the
      degradations of `train.negatives`, all in the feature space of `network_vqgan`;
    - `train.distribution_opt` (DistributionMappingLoss, l_ce): codebook assignments of S(x)
      against T(x).

    One grad-enabled encoder pass over S(x) serves both; teacher, history model and VQGAN run
    without gradients. Without `path.pretrain_network_vqgan` the encoder is randomly initialised
    (and the log says so). The VQGAN and the history model are the model's `net_vqgan` and
    `net_history`; the history model is saved as `net_history_<iter>.pth` with every checkpoint
    and restored on resume.

    Cost options (none changes the losses beyond float rounding; see benchmarks/README.md):
    - `train.frozen_chunk`: images per no-grad pass of the history model and of the VQGAN over
      the negatives (default: the batch size);
    - `train.vqgan_recompute`: recompute the anchor's VQGAN activations in backward instead of
      keeping them (less memory for one more anchor forward; default true);
    - with `train.precision: bfloat16` the VQGAN itself is held in bfloat16 (autocast would
      keep its GroupNorms in float32) and its features enter the losses as float32.
    """
    options = ('contrastive_opt', 'distribution_opt')

    def __init__(self, components, model):
        self.model, train = model, model.options.train
        self.cri_dcl, self.cri_ce = (build_loss(config(components[o])) if components[o] else None
                                     for o in self.options)
        self.net_vqgan = model.net_vqgan = model.build_frozen('network_vqgan', self.load_vqgan)
        source = model.frozen_sources.get('network_vqgan')  # absent while deferred to resume_training
        if source is not None and source['path'] is None:
            get_root_logger().warning('No path.pretrain_network_vqgan: the VQGAN encoder is RANDOMLY INITIALISED; '
                                      "DCR and DMM then work in a random feature space, not the paper's.")
        self.vqgan_dtype = torch.bfloat16 if model.mixed_precision else torch.float32
        self.net_vqgan.to(self.vqgan_dtype)  # a checkpoint deferred to resume is cast on loading
        self.net_vqgan.encoder.recompute_activations = train.vqgan_recompute
        self.frozen_chunk = train.frozen_chunk
        if self.cri_dcl:
            history = train.history
            self.history_schedule = HistorySchedule(history.steps, history.milestones)
            self.history_source, self.history_attenuation = history.source, history.attenuation
            self.net_history = model.net_history = freeze(copy.deepcopy(self.history_source_net()))
            self.num_negatives, self.degrade = train.negatives.num, model.negative_degradation(train.negatives)

    def load_vqgan(self, net, source):
        load_vqgan(net, source)
        get_root_logger().info(f'Loaded VQGAN encoder from {source["path"]}')

    def history_source_net(self):
        model = self.model
        return model.net_g_ema if self.history_source == 'ema' else model.get_bare_model(model.net_g)

    # ----- step --------------------------------------------------------------------------------

    def losses(self, step):
        negatives = self.history_negatives(step.lq) if self.cri_dcl else None
        return self.feature_losses(step.output, step.teacher(), negatives)

    def feature_losses(self, output, output_t, negatives):
        """l_dcl and l_ce from one grad-enabled encoder pass over the student output and no-grad
        passes over the teacher output and, `frozen_chunk` images at a time, the negatives (N*B
        images, or None without DCR), whose features are reduced to NegativeSums and dropped."""
        losses = {}
        anchor_features, anchor_latent = self.net_vqgan(output.to(self.vqgan_dtype))
        with torch.no_grad():
            positive_features, positive_latent = self.net_vqgan(output_t.to(self.vqgan_dtype))
        if self.cri_dcl:
            anchor = [f.float() for f in anchor_features]
            sums, chunk = NegativeSums(anchor), self.frozen_chunk or len(output)
            for index, images in enumerate(negatives.to(self.vqgan_dtype).split(chunk)):
                with torch.no_grad():
                    features, _ = self.net_vqgan(images)
                sums.add(features, first_image=index * chunk)
            losses['l_dcl'] = self.cri_dcl(anchor, positive_features, sums)
        if self.cri_ce:
            codebook = self.net_vqgan.codebook.float()
            losses['l_ce'] = self.cri_ce(anchor_latent.float(), positive_latent.float(), codebook)
        return losses

    @torch.no_grad()
    def history_negatives(self, lq):
        """H(x) followed by num-1 copies of H(D_j(x)), each D_j drawn per sample: (N*B, C, H', W')."""
        inputs = [lq]
        if self.num_negatives > 1:
            inputs.append(self.degrade(lq.repeat(self.num_negatives - 1, 1, 1, 1)))
        chunks = torch.cat(inputs).split(self.frozen_chunk or len(lq))
        with self.model.autocast():
            history = self.model.as_trained(self.net_history)
            return torch.cat([history(images) for images in chunks])

    def after_step(self, current_iter):
        if self.cri_dcl and self.history_schedule.updates_at(current_iter):
            move_towards(self.net_history, self.history_source_net(), self.history_attenuation)

    # ----- networks and checkpoints ------------------------------------------------------------

    def frozen_networks(self):
        return [self.net_vqgan] + ([self.net_history] if self.cri_dcl else [])

    def replicated_networks(self):
        return {'history': self.net_history} if self.cri_dcl else {}

    def save(self, current_iter):
        if self.cri_dcl:
            self.model.save_network(self.net_history, 'net_history', current_iter)

    def resume(self, resume_state):
        if self.cri_dcl:
            self.model.load_saved_network(self.net_history, 'net_history', resume_state, 'DCKD needs the history model')
