"""The fused DCR/DMM computation equals the straightforward reference: values and gradients, with
every cost option that must not change them."""
import pytest
import torch

from dckd_models import DCKDModel
from dckd_models.reference_step import reference_feature_losses
from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD
from conftest import DEVICES
from test_models import batch, make_opt

COST_OPTIONS = {
    'default': {},
    'chunks of one image': {'frozen_chunk': 1},
    'chunks straddling negatives': {'frozen_chunk': 3},
    'VQGAN activations kept': {'vqgan_recompute': False},
}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('options', COST_OPTIONS.values(), ids=COST_OPTIONS.keys())
@pytest.mark.parametrize('terms', [('kd', 'dcl', 'ce'), ('kd', 'dcl'), ('kd', 'ce')], ids=['both', 'dcr', 'dmm'])
def test_fused_losses_and_gradients_equal_the_reference(tmp_path, terms, options, device, float32_exact):
    opt = make_opt(tmp_path, terms=terms, negatives={'num': 3}, **options)
    opt['num_gpu'] = int(device == 'cuda')
    model = DCKDModel(opt)
    model.feed_data(batch())
    model.optimize_parameters(1)
    term = model.term(DynamicContrastiveKD)
    # the history model away from the student, as training moves it: after one step it is nearly the
    # student, H(x) ~ S(x), and |a - n| lies within float rounding of its kink, where the frozen
    # passes' summation order (chunks of one image, one thread: 1.5e-4 on one CPU) flips gradient signs
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in term.net_history.parameters() if term.cri_dcl else ():
            weight.add_(0.1 * weight.abs().mean() * torch.randn(weight.shape, generator=noise).to(weight))
    output_t = model.net_t(model.lq).detach()
    negatives = term.history_negatives(model.lq) if term.cri_dcl else None
    results = []
    for compute in (term.feature_losses, lambda *a: reference_feature_losses(term, *a)):
        output = model.net_g(model.lq).detach().requires_grad_(True)
        losses = compute(output, output_t, negatives)
        gradient, = torch.autograd.grad(sum(losses.values()), output)
        results.append((losses, gradient))
    (fused, fused_grad), (reference, reference_grad) = results
    expected = {name for term, name in (('dcl', 'l_dcl'), ('ce', 'l_ce')) if term in terms}
    assert set(fused) == set(reference) == expected
    for key in fused:
        assert fused[key].item() == pytest.approx(reference[key].item(), rel=1e-5)
    # relative to the gradient's size: batching the frozen passes changes float summation order only
    assert ((fused_grad - reference_grad).norm() / reference_grad.norm()).item() < 1e-5
