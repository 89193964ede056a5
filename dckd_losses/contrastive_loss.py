"""Dynamic contrastive regularization (DCR): pull towards the teacher, push from the negatives."""
import torch
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY
from dckd.registry import register

PAPER_LEVEL_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class _ContrastiveRatio(torch.autograd.Function):
    """mean|a - p| / (sum_j mean|a - n_j| + eps) for one level, without any (N, B, ...)-sized
    temporary: autograd would build and keep |a - n| for all N negatives at once, the largest
    tensors of a DCKD step. With M = a.numel(), num and den the two sums,

        d ratio / d a = sign(a - p) / (M den) - num / (M den^2) * sum_j sign(a - n_j),

    so backward only needs a, p, the negatives (all alive anyway) and two scalars, and builds the
    sign sum one negative at a time. Positive and negatives are constants (frozen networks).
    Mixed dtypes are fine: bfloat16 targets are promoted to the anchor's float32 per negative.
    """

    @staticmethod
    def forward(ctx, anchor, positive, negatives, eps):
        to_positive = (anchor - positive).abs().mean()
        to_negatives = torch.stack([(anchor - negative).abs().mean() for negative in negatives]).sum()
        denominator = to_negatives + eps
        ctx.save_for_backward(anchor, positive, negatives, to_positive, denominator)
        return to_positive / denominator

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ratio):
        anchor, positive, negatives, to_positive, denominator = ctx.saved_tensors
        sign_sum = torch.zeros_like(anchor)
        difference = torch.empty_like(anchor)
        for negative in negatives:
            sign_sum.add_(torch.sub(anchor, negative, out=difference).sign_())
        scale = grad_ratio / (anchor.numel() * denominator)
        grad_anchor = torch.sub(anchor, positive, out=difference).sign_().mul_(scale)
        grad_anchor.sub_(sign_sum.mul_(scale * to_positive / denominator))
        return grad_anchor, None, None, None


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
            raise ValueError(f'contrastive_opt.eps must be >= 0, got {eps}')
        self.loss_weight = loss_weight
        self.level_weights = tuple(float(w) for w in level_weights)
        self.eps = eps

    def forward(self, anchor, positive, negatives):
        """anchor, positive: per-level (B, C, H, W); negatives: per-level (N, B, C, H, W)."""
        return self._weighted_sum(_ContrastiveRatio.apply, anchor, positive, negatives)

    def straightforward(self, anchor, positive, negatives):
        """forward's value and gradient through plain autograd: the reference the lean one is tested
        and benchmarked against."""
        return self._weighted_sum(_straightforward_ratio, anchor, positive, negatives)

    def _weighted_sum(self, ratio, anchor, positive, negatives):
        if not len(anchor) == len(positive) == len(negatives) == len(self.level_weights):
            raise ValueError(f'DynamicContrastiveLoss has {len(self.level_weights)} level weights but got '
                             f'{len(anchor)}/{len(positive)}/{len(negatives)} anchor/positive/negative levels')
        if any(t.requires_grad for t in (*positive, *negatives)):
            raise ValueError('DynamicContrastiveLoss: positive and negative features are targets; compute them '
                             'without gradients (torch.no_grad or frozen networks).')
        loss = 0
        for weight, a, p, n in zip(self.level_weights, anchor, positive, negatives):
            loss = loss + weight * ratio(a, p, n, self.eps)
        return self.loss_weight * loss
