"""Label consistency (LCR), as in every released DCKD config: loss(S(x), A^-1(T(A(x))))."""
from dckd_utils.registry import register
from .. import label_consistency as lcr
from . import TERM_REGISTRY, Term


@register(TERM_REGISTRY)
class LabelConsistency(Term):
    """`train.lcr_opt` -> l_lcr; each transform of A with probability `prob` per sample. The teacher
    labels A(x) in the same pass as x."""
    options = ('lcr_opt', )

    def add_inputs(self, step, generator):
        chosen = step.drawn['lcr'] = lcr.draw_transforms(step.lq.shape[0], self.component.prob, generator)
        step.inputs['teacher']['lcr'] = lcr.apply_transforms(step.lq, chosen)

    def losses(self, step):
        return {'l_lcr': self.criterion(step.output, lcr.invert_transforms(step.teacher('lcr'), step.drawn['lcr']))}
