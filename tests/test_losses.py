"""Loss values against small cases computed by hand."""
import math

import pytest
import torch

from dckd_losses import DistributionMappingLoss, DynamicContrastiveLoss


def filled(value, shape=(1, 1, 1, 2)):
    return torch.full(shape, float(value))


def test_contrastive_ratio_with_several_negatives_and_level_weights():
    # level 1: anchor 0, positive 0.1 -> d(a,p) = 0.1; negatives 0.2, 0.4, 0.6 -> sum 1.2
    # level 2: anchor [0, 1], positive [1, 1] -> d = 0.5; negatives [0, 0] and [2, 2] -> 0.5 + 1.5
    anchor = [filled(0), torch.tensor([[[[0., 1.]]]])]
    positive = [filled(0.1), filled(1)]
    negatives = [torch.stack([filled(0.2), filled(0.4), filled(0.6)]), torch.stack([filled(0), filled(2)])]
    loss = DynamicContrastiveLoss(loss_weight=0.1, level_weights=[0.5, 2.0], eps=0)
    expected = 0.1 * (0.5 * 0.1 / 1.2 + 2.0 * 0.5 / 2.0)
    assert loss(anchor, positive, negatives).item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_epsilon_is_added_to_the_denominator_only():
    loss = DynamicContrastiveLoss(loss_weight=1.0, level_weights=[1.0], eps=0.3)
    value = loss([filled(0)], [filled(0.2)], [filled(0.5).unsqueeze(0)])
    assert value.item() == pytest.approx(0.2 / (0.5 + 0.3), rel=1e-6)


def test_contrastive_default_weights_are_the_papers():
    assert DynamicContrastiveLoss().level_weights == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def test_contrastive_gradient_reaches_the_anchor_only():
    anchor = torch.zeros(1, 1, 1, 2, requires_grad=True)
    positive = torch.full((1, 1, 1, 2), 0.1)
    negatives = torch.full((2, 1, 1, 1, 2), 0.5)
    DynamicContrastiveLoss(1.0, [1.0], 0)([anchor], [positive], [negatives]).backward()
    # L = d_ap / d_an with d_ap = mean|a - p|, d_an = sum_j mean|a - n_j|, per element of a (2 of them):
    # dL/da = (-0.5 * d_an - d_ap * (-0.5 * 2)) / d_an^2 = (-0.5 * 1.0 + 0.1) / 1.0
    assert torch.allclose(anchor.grad, torch.full_like(anchor, -0.4))


def test_contrastive_gradient_with_negatives_on_both_sides_of_the_anchor():
    # a = [0, 0], p = [0.2, -0.2] -> d_ap = 0.2, sign(a - p) = [-1, +1]
    # n_1 = [1, 1], n_2 = [-1, 3] -> d_an = 1 + 2 = 3, sum_j sign(a - n_j) = [-1 + 1, -1 - 1] = [0, -2]
    # dL/da_k = sign(a - p)_k / (2 * 3) - 0.2 / (2 * 9) * [0, -2]_k = [-1/6, 1/6 + 0.4/18]
    anchor = torch.zeros(1, 1, 1, 2, requires_grad=True)
    positive = torch.tensor([[[[0.2, -0.2]]]])
    negatives = torch.tensor([[[[[1., 1.]]]], [[[[-1., 3.]]]]])
    DynamicContrastiveLoss(1.0, [1.0], 0)([anchor], [positive], [negatives]).backward()
    assert anchor.grad.flatten().tolist() == pytest.approx([-1 / 6, 1 / 6 + 0.4 / 18], rel=1e-6)


@pytest.mark.parametrize('target_dtype', [torch.float32, torch.bfloat16])
def test_lean_contrastive_equals_plain_autograd_in_value_and_gradient(target_dtype):
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 8, 8), (3, 6, 4, 4)]
    anchor = [torch.randn(s, generator=generator, requires_grad=True) for s in shapes]
    positive = [torch.randn(s, generator=generator).to(target_dtype) for s in shapes]
    negatives = [torch.randn((5, ) + s, generator=generator).to(target_dtype) for s in shapes]
    loss = DynamicContrastiveLoss(loss_weight=0.1, level_weights=[0.25, 1.0])
    lean = loss(anchor, positive, negatives)
    lean_grads = torch.autograd.grad(lean, anchor)
    plain = loss.straightforward(anchor, positive, negatives)
    plain_grads = torch.autograd.grad(plain, anchor)
    assert lean.dtype == torch.float32
    assert lean.item() == pytest.approx(plain.item(), rel=1e-6)
    for lean_grad, plain_grad in zip(lean_grads, plain_grads):
        assert torch.allclose(lean_grad, plain_grad, rtol=1e-5, atol=1e-9)


def test_contrastive_targets_that_require_gradients_are_an_error():
    with pytest.raises(ValueError, match='targets'):
        DynamicContrastiveLoss(1.0, [1.0])([filled(0)], [filled(1).requires_grad_()], [filled(2).unsqueeze(0)])


def test_contrastive_level_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match='5 level weights'):
        DynamicContrastiveLoss()([filled(0)], [filled(0)], [filled(0).unsqueeze(0)])


# DMM: one token, two one-dimensional codes e = [0, 1]; teacher z = 0, student z = 1
CODEBOOK = torch.tensor([[0.], [1.]])
TEACHER = torch.zeros(1, 1, 1, 1)
STUDENT = torch.ones(1, 1, 1, 1)


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_distribution_mapping_paper_form():
    c_t = softmax([-0., -1.])  # -||0 - e_k||^2
    c_s = softmax([-1., -0.])  # -||1 - e_k||^2
    expected = -sum(t * math.log(s) for t, s in zip(c_t, c_s))  # about 1.0443
    loss = DistributionMappingLoss(loss_weight=1.0)
    assert loss(STUDENT, TEACHER, CODEBOOK).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.0443, abs=1e-4)


def test_distribution_mapping_released_double_softmax():
    c_t = softmax([-0., -1.])
    c_s = softmax([-1., -0.])
    twice = softmax(c_s)  # F.cross_entropy applies log-softmax to the probabilities again
    expected = -sum(t * math.log(s) for t, s in zip(c_t, twice))
    loss = DistributionMappingLoss(loss_weight=1.0, mode='released')
    assert loss(STUDENT, TEACHER, CODEBOOK).item() == pytest.approx(expected, rel=1e-6)
    assert expected != pytest.approx(DistributionMappingLoss(1.0)(STUDENT, TEACHER, CODEBOOK).item(), rel=1e-3)


def test_distribution_mapping_averages_over_tokens_and_applies_the_weight():
    student = torch.tensor([[[[1., 0.]]]])  # two tokens: z = 1 and z = 0
    teacher = torch.zeros(1, 1, 1, 2)
    c_t = softmax([0., -1.])
    per_token = [-sum(t * math.log(s) for t, s in zip(c_t, softmax(logits))) for logits in ([-1., 0.], [0., -1.])]
    loss = DistributionMappingLoss(loss_weight=0.001)
    assert loss(student, teacher, CODEBOOK).item() == pytest.approx(0.001 * sum(per_token) / 2, rel=1e-6)


def test_unknown_distribution_mode_is_named():
    with pytest.raises(ValueError, match="DistributionMappingLoss: mode must be.*'softmax'"):
        DistributionMappingLoss(mode='softmax')
