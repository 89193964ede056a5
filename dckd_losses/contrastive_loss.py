"""Dynamic contrastive regularization (DCR): pull towards the teacher, push from the negatives."""
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY
from dckd.registry import register

PAPER_LEVEL_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


@register(LOSS_REGISTRY)
class DynamicContrastiveLoss(nn.Module):
    """sum_i w_i * d(a_i, p_i) / (sum_j d(a_i, n_ij) + eps), with d the mean absolute difference.

    Takes encoder features, not images, so one encoder pass can serve this loss and the DMM.

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
        if not len(anchor) == len(positive) == len(negatives) == len(self.level_weights):
            raise ValueError(f'DynamicContrastiveLoss has {len(self.level_weights)} level weights but got '
                             f'{len(anchor)}/{len(positive)}/{len(negatives)} anchor/positive/negative levels')
        loss = 0
        for weight, a, p, n in zip(self.level_weights, anchor, positive, negatives):
            to_positive = (a - p).abs().mean()
            to_negatives = (a.unsqueeze(0) - n).abs().mean(dim=(1, 2, 3, 4)).sum()
            loss = loss + weight * to_positive / (to_negatives + self.eps)
        return self.loss_weight * loss
