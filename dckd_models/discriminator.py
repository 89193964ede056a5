"""A discriminator trained beside the network: RealWorldKDModel's GAN stage, VQGANModel's patch
discriminator. `network_d` is built (and loaded from `path.pretrain_network_d`), `train.optim_d`
steps it after the network's optimizer (the order of BasicSR's SRGANModel, which the training
state's optimizer list keeps), `train.gan_opt` scores it, and it is checked across ranks, saved
with every checkpoint and restored on resume."""
from collections import OrderedDict

from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from dckd_utils.schema import config
from .frozen import build, checkpoint_source, load_into
from .options import is_rewritten_by_resume


class WithDiscriminator:
    """Goes before RestorationModel in the bases; `init_discriminator()` in init_training_settings,
    before the optimizers are set up. Without `network_d`, `net_d` is None and nothing changes."""

    def init_discriminator(self):
        options = self.options
        self.net_d = self.build_discriminator() if options.network_d else None
        if self.net_d is not None:
            self.cri_gan = build_loss(config(options.train.gan_opt)).to(self.device)

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
        super().setup_optimizers()
        if self.net_d is not None:
            optim_d = self.options.train.optim_d
            self.optimizer_d = self.get_optimizer(optim_d.type, self.net_d.parameters(), **optim_d.arguments)
            self.optimizers.append(self.optimizer_d)

    def discriminator_step(self, real, fake, current_iter):
        """One step of the discriminator on `real` and `fake` images; each loss checked before its
        backward pass (as BasicSR, one pass each). Returns its log entries."""
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad()
        losses = OrderedDict()
        for name, images, is_real in (('real', real, True), ('fake', fake.detach().clone(), False)):
            prediction = self.net_d(images)
            loss = self.cri_gan(prediction, is_real, is_disc=True)
            self.stop_unless_finite({f'l_d_{name}': loss}, current_iter)
            loss.backward()
            losses[f'l_d_{name}'], losses[f'out_d_{name}'] = loss, prediction.detach().mean()
        self.optimizer_d.step()
        return losses

    def replicated_networks(self):
        networks = super().replicated_networks()
        if self.net_d is not None:
            networks['discriminator'] = self.get_bare_model(self.net_d)
        return networks

    def save_extra_networks(self, current_iter):
        super().save_extra_networks(current_iter)
        if self.net_d is not None:
            self.save_network(self.net_d, 'net_d', current_iter)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.net_d is not None:
            path = self.load_saved_network(self.net_d, 'net_d', resume_state, 'needs the discriminator')
            get_root_logger().info(f'Resume: the discriminator from {path}')
