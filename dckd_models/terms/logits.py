"""Logits KD: a loss between the student's and the teacher's outputs on the same input."""
from dckd_utils.registry import register
from . import TERM_REGISTRY, Term


@register(TERM_REGISTRY)
class LogitsKD(Term):
    """`train.kd_opt` -> l_kd = loss(S(x), T(x))."""
    options = ('kd_opt', )

    def losses(self, step):
        return {'l_kd': self.criterion(step.output, step.teacher())}
