"""Dynamic contrastive regularization (DCR): pull towards the teacher, push from the negatives."""
import torch
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY
from dckd_utils.registry import register

PAPER_LEVEL_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class NegativeSums:
    """What DCR needs of the negatives, per level: sum_j mean|a - n_j| and sum_j sign(a - n_j).

    The ratio's gradient needs nothing else of them (see _ContrastiveRatio), so negatives can be
    added a few images at a time and dropped: the N x B negative features never exist together.
    Images are numbered as in the (N * B) negative batch: image k is negative k // B of sample k % B.
    """

    def __init__(self, anchor):
        self.anchor = [a.detach() for a in anchor]
        self.distances = [a.new_zeros(()) for a in self.anchor]
        self.signs = [torch.zeros_like(a) for a in self.anchor]

    @torch.no_grad()
    def add(self, features, first_image):
        """features: per level (k, C, H, W) for negative images first_image .. first_image + k - 1."""
        for level, (anchor, negative) in enumerate(zip(self.anchor, features)):
            samples = torch.arange(first_image, first_image + len(negative), device=anchor.device) % len(anchor)
            difference = anchor[samples] - negative  # promotes bfloat16 negatives to the anchor's float32
            self.distances[level] += difference.abs().sum() / anchor.numel()
            self.signs[level].index_add_(0, samples, difference.sign_())

    @classmethod
    def of(cls, anchor, negatives):
        """From whole per-level negatives (N, B, C, H, W)."""
        sums = cls(anchor)
        sums.add([n.flatten(0, 1) for n in negatives], 0)
        return sums


class _ContrastiveRatio(torch.autograd.Function):
    """mean|a - p| / (sum_j mean|a - n_j| + eps) for one level, from NegativeSums. With M = a.numel()
    and num, den the two sums,

        d ratio / d a = sign(a - p) / (M den) - num / (M den^2) * sum_j sign(a - n_j),

    so backward keeps a, p and one B-sized sign sum, where autograd would keep |a - n| for all N
    negatives at once, the largest tensors of a DCKD step. Positive and negatives are constants.
    """

    @staticmethod
    def forward(ctx, anchor, positive, distance_sum, sign_sum, eps):
        to_positive = (anchor - positive).abs().mean()
        denominator = distance_sum + eps
        ctx.save_for_backward(anchor, positive, sign_sum, to_positive, denominator)
        return to_positive / denominator

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ratio):
        anchor, positive, sign_sum, to_positive, denominator = ctx.saved_tensors
        scale = grad_ratio / (anchor.numel() * denominator)
        grad_anchor = (anchor - positive).sign_().mul_(scale)
        grad_anchor.sub_(sign_sum * (scale * to_positive / denominator))
        return grad_anchor, None, None, None, None


def _straightforward_ratio(anchor, positive, negatives, eps):
    """The same ratio left to autograd, as the released code computes it (the reference path)."""
    to_positive = (anchor - positive).abs().mean()
    to_negatives = (anchor.unsqueeze(0) - negatives).abs().mean(dim=(1, 2, 3, 4)).sum()
    return to_positive / (to_negatives + eps)


@register(LOSS_REGISTRY)
class DynamicContrastiveLoss(nn.Module):
    """sum_i w_i * d(a_i, p_i) / (sum_j d(a_i, n_ij) + eps), with d the mean absolute difference.

    Takes encoder features, not images, so one encoder pass can serve this loss and the DMM.
    Positive and negatives are targets: no gradient flows into them.

    Args:
        loss_weight: lambda_dcl (paper: 0.1).
        level_weights: one weight per feature level (paper: 1/32, 1/16, 1/8, 1/4, 1).
        eps: added to the denominator (released code: 1e-7).
    """

    def __init__(self, loss_weight=0.1, level_weights=PAPER_LEVEL_WEIGHTS, eps=1e-7):
        super().__init__()
        if eps < 0:
            raise ValueError(f'DynamicContrastiveLoss: eps must be >= 0, got {eps}')
        self.loss_weight = loss_weight
        self.level_weights = tuple(float(w) for w in level_weights)
        self.eps = eps

    def forward(self, anchor, positive, negatives):
        """anchor, positive: per-level (B, C, H, W); negatives: per-level (N, B, C, H, W), or the
        NegativeSums of them."""
        if not isinstance(negatives, NegativeSums):
            self._check(anchor, positive, negatives)
            negatives = NegativeSums.of(anchor, negatives)
        self._check(anchor, positive, negatives.signs)
        ratios = [
            _ContrastiveRatio.apply(a, p, distance, signs, self.eps)
            for a, p, distance, signs in zip(anchor, positive, negatives.distances, negatives.signs)
        ]
        return self._weighted_sum(ratios)

    def straightforward(self, anchor, positive, negatives):
        """forward's value and gradient through plain autograd: the reference the lean one is tested
        and benchmarked against."""
        self._check(anchor, positive, negatives)
        ratios = [_straightforward_ratio(a, p, n, self.eps) for a, p, n in zip(anchor, positive, negatives)]
        return self._weighted_sum(ratios)

    def _check(self, anchor, positive, negatives):
        if not len(anchor) == len(positive) == len(negatives) == len(self.level_weights):
            raise ValueError(f'DynamicContrastiveLoss has {len(self.level_weights)} level weights but got '
                             f'{len(anchor)}/{len(positive)}/{len(negatives)} anchor/positive/negative levels')
        if any(t.requires_grad for t in (*positive, *negatives)):
            raise ValueError('DynamicContrastiveLoss: positive and negative features are targets; compute them '
                             'without gradients (torch.no_grad or frozen networks).')

    def _weighted_sum(self, ratios):
        return self.loss_weight * sum(weight * ratio for weight, ratio in zip(self.level_weights, ratios))
