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
    # one step first: before it the history model is the student, H(x) = S(x), and |a - n| sits at
    # its kink, where float rounding of the frozen passes flips the gradient's signs
    model.optimize_parameters(1)
    output_t = model.net_t(model.lq).detach()
    term = model.term(DynamicContrastiveKD)
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
