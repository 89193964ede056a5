"""Distribution mapping module (DMM): align soft codebook assignments of teacher and student."""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY
from dckd_utils.codebook import codebook_logits
from dckd_utils.registry import register

MODES = ('paper', 'released')


@register(LOSS_REGISTRY)
class DistributionMappingLoss(nn.Module):
    """-sum_k C_T,k log C_S,k averaged over tokens, C = softmax(-||z - e_k||^2).

    Args:
        loss_weight: lambda_ce (paper: 0.001).
        mode: 'paper' (default) is the formula above. 'released' reproduces the authors' code,
            which passes the student's probabilities C_S to `F.cross_entropy` as logits, i.e.
            -sum_k C_T,k log softmax(C_S)_k ("double softmax"); its numbers were produced so.
    """

    def __init__(self, loss_weight=0.001, mode='paper'):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"DistributionMappingLoss: mode must be one of {MODES}, got '{mode}'")
        self.loss_weight = loss_weight
        self.mode = mode

    def forward(self, student_latent, teacher_latent, codebook):
        student_logits = codebook_logits(student_latent, codebook)
        with torch.no_grad():
            teacher_probs = codebook_logits(teacher_latent, codebook).softmax(dim=1)
        if self.mode == 'released':
            student_logits = student_logits.softmax(dim=1)
        return self.loss_weight * F.cross_entropy(student_logits, teacher_probs)
