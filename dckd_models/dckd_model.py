"""DCKDModel: KDModel plus dynamic contrastive regularization (DCR) and distribution mapping (DMM)."""
import copy
import os

import torch

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from dckd.registry import register
from dckd_losses.contrastive_loss import NegativeSums
from .frozen import freeze, load_vqgan
from .history import HistorySchedule, move_towards
from .kd_model import KDModel, build_optional_loss
from .negatives import NegativeDegrader


@register(MODEL_REGISTRY)
class DCKDModel(KDModel):
    """Adds, each optional:

    - `train.contrastive_opt` (DynamicContrastiveLoss, l_dcl): anchor S(x), positive T(x),
      negatives H(x) and H(D_j(x)) from the history model H (`train.history`) and the
      degradations of `train.negatives`, all in the feature space of `network_vqgan`;
    - `train.distribution_opt` (DistributionMappingLoss, l_ce): codebook assignments of S(x)
      against T(x).

    One grad-enabled encoder pass over S(x) serves both terms; teacher, history model and VQGAN
    run without gradients. Without `path.pretrain_network_vqgan` the encoder is randomly
    initialised (and the log says so). The history model is saved as `net_history_<iter>.pth`
    with every checkpoint and restored on resume.

    Cost options (none changes the losses beyond float rounding; see benchmarks/README.md):
    - `train.frozen_chunk`: images per no-grad pass of the history model and of the VQGAN over
      the negatives (default: the batch size);
    - `train.vqgan_recompute`: recompute the anchor's VQGAN activations in backward instead of
      keeping them (less memory for one more anchor forward; default true);
    - with `train.precision: bfloat16` the VQGAN itself is held in bfloat16 (autocast would
      keep its GroupNorms in float32) and its features enter the losses as float32.
    """

    def init_training_settings(self):
        train = self.options.train
        self.cri_dcl = build_optional_loss(train.contrastive_opt)
        self.cri_ce = build_optional_loss(train.distribution_opt)
        super().init_training_settings()
        if self.cri_dcl or self.cri_ce:
            self.net_vqgan = self.build_frozen('network_vqgan', self.load_vqgan)
            source = self.frozen_sources.get('network_vqgan')  # absent while deferred to resume_training
            if source is not None and source['path'] is None:
                get_root_logger().warning('No path.pretrain_network_vqgan: the VQGAN encoder is RANDOMLY INITIALISED; '
                                          "DCR and DMM then work in a random feature space, not the paper's.")
            self.vqgan_dtype = torch.bfloat16 if self.mixed_precision else torch.float32
            self.net_vqgan.to(self.vqgan_dtype)  # a checkpoint deferred to resume is cast on loading
            self.net_vqgan.encoder.recompute_activations = train.vqgan_recompute
        self.frozen_chunk = train.frozen_chunk
        if self.cri_dcl:
            history = train.history
            self.history_schedule = HistorySchedule(history.steps, history.milestones)
            self.history_source, self.history_attenuation = history.source, history.attenuation
            self.net_history = freeze(copy.deepcopy(self.history_source_net()))
            self.num_negatives, self.degrade = train.negatives.num, NegativeDegrader(train.negatives, self.rng)

    def load_vqgan(self, net, source):
        load_vqgan(net, source)
        get_root_logger().info(f'Loaded VQGAN encoder from {source["path"]}')

    def history_source_net(self):
        return self.net_g_ema if self.history_source == 'ema' else self.get_bare_model(self.net_g)

    # ----- training step ---------------------------------------------------------------------

    def compute_losses(self, step):
        losses = super().compute_losses(step)
        if self.cri_dcl or self.cri_ce:
            negatives = self.history_negatives() if self.cri_dcl else None
            losses.update(self.feature_losses(step.output, step.teacher(), negatives))
        return losses

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
    def history_negatives(self):
        """H(x) followed by num-1 copies of H(D_j(x)), each D_j drawn per sample: (N*B, C, H', W')."""
        inputs = [self.lq]
        if self.num_negatives > 1:
            inputs.append(self.degrade(self.lq.repeat(self.num_negatives - 1, 1, 1, 1)))
        chunks = torch.cat(inputs).split(self.frozen_chunk or len(self.lq))
        with self.autocast():
            return torch.cat([self.net_history(images) for images in chunks])

    def after_step(self, current_iter):
        if self.cri_dcl and self.history_schedule.updates_at(current_iter):
            move_towards(self.net_history, self.history_source_net(), self.history_attenuation)

    # ----- checkpoints -----------------------------------------------------------------------

    def frozen_networks(self):
        networks = super().frozen_networks()
        networks += [self.net_vqgan] if hasattr(self, 'net_vqgan') else []
        return networks + ([self.net_history] if self.cri_dcl else [])

    def replicated_networks(self):
        networks = super().replicated_networks()
        if self.cri_dcl:
            networks['history'] = self.net_history
        return networks

    def save_extra_networks(self, current_iter):
        if self.cri_dcl:
            self.save_network(self.net_history, 'net_history', current_iter)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.cri_dcl:
            path = os.path.join(self.opt['path']['models'], f'net_history_{resume_state["iter"]}.pth')
            if not os.path.isfile(path):
                raise FileNotFoundError(f'resuming DCKD needs the history model saved with the state: {path} is missing.')
            self.load_network(self.net_history, path, strict=True, param_key='params')
