"""Registration: our names are in BasicSR's registries, come from our modules, and clash loudly."""
import pytest
import torch

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY, Registry
from dckd_utils.registry import register

OURS = {
    ARCH_REGISTRY: {'VQGANEncoder': 'dckd_arch.vqgan_arch', 'VQGAN': 'dckd_arch.vqgan_arch',
                    'PatchDiscriminator': 'dckd_arch.vqgan_arch', 'NAFNet': 'dckd_arch.nafnet_arch',
                    'Restormer': 'dckd_arch.restormer_arch', 'PretrainedModel': 'dckd_arch.pretrained_arch'},
    LOSS_REGISTRY: {'DynamicContrastiveLoss': 'dckd_losses.contrastive_loss',
                    'DistributionMappingLoss': 'dckd_losses.distribution_loss'},
    MODEL_REGISTRY: {'KDModel': 'dckd_models.kd_model', 'DCKDModel': 'dckd_models.dckd_model',
                     'RealWorldKDModel': 'dckd_models.realworld_model', 'VQGANModel': 'dckd_models.vqgan_model'},
    DATASET_REGISTRY: {'PaddedPairedImageDataset': 'dckd_data.padded_paired_dataset',
                       'HRImageDataset': 'dckd_data.hr_image_dataset'},
}


@pytest.mark.parametrize('registry', list(OURS), ids=lambda r: r._name)
def test_every_dckd_name_is_registered_from_a_dckd_module(registry):
    entries = dict(iter(registry))
    for name, module in OURS[registry].items():
        assert entries[name].__module__ == module


def test_basicsr_entries_are_still_basicsr_own():
    # our registration adds names; it must not replace BasicSR's (those still come from basicsr.*)
    for registry, ours in OURS.items():
        for name, obj in iter(registry):
            if name not in ours:
                assert obj.__module__.startswith('basicsr.'), (name, obj.__module__)
    assert 'SRModel' in MODEL_REGISTRY and 'L1Loss' in LOSS_REGISTRY and 'SwinIR' in ARCH_REGISTRY


def test_a_foreign_class_under_one_of_our_names_is_a_clear_error():
    registry = Registry('model')

    class DCKDModel:  # noqa: N801  (stands for a fork's own DCKDModel)
        pass

    registry.register(DCKDModel)

    class Ours:
        pass

    Ours.__name__ = Ours.__qualname__ = 'DCKDModel'
    with pytest.raises(RuntimeError, match=r"'DCKDModel'.*already taken by .*test_registry"):
        register(registry)(Ours)


def test_registering_the_same_class_twice_is_not_a_clash():
    registry = Registry('loss')

    @register(registry)
    class SomethingLoss(torch.nn.Module):
        pass

    assert register(registry)(SomethingLoss) is SomethingLoss
    assert dict(iter(registry)) == {'SomethingLoss': SomethingLoss}
