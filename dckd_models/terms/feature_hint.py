"""FitNets' hints (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015): a learned
regressor maps the student's features at a tapped module onto the teacher's."""
from torch import nn

from dckd_utils.registry import register
from ..taps import as_tokens, channels
from . import TERM_REGISTRY, PairedTaps


@register(TERM_REGISTRY)
class FeatureHint(PairedTaps):
    """`train.hint_opt` -> l_hint = sum over tap pairs i of loss(r_i(student tap i), teacher tap i).

    r_i is FitNets' convolutional regressor: its kernel makes the student's spatial size the
    teacher's, so with pairs at the same resolution (checked when the model is built) it is a 1x1
    convolution, a linear map of the channels at every position, from the student's channel count
    to the teacher's. Feature maps (B, C, H, W) and SwinIR's tokens (B, N, C) are compared as
    tokens, so a CNN student can take hints from a transformer teacher. The regressors are adapters
    (see Term.adapters): trained with the student in optim_g, saved and resumed with it, and
    dropped from the deployed student. FitNets trains the hint first and the task after; here
    both train together from the first iteration, one stage like every other term. FitNets' loss
    is L2: `type: MSELoss`."""
    options = ('hint_opt', )

    def __init__(self, components, model):
        super().__init__(components, model)
        shapes = model.tapped_shapes()
        self.check_positions(shapes)
        self.regressors = {f'hint_{index}': nn.Linear(channels(shapes['student'][student_tap]),
                                                      channels(shapes['teacher'][teacher_tap]))
                           for index, (student_tap, teacher_tap) in enumerate(self.tap_pairs())}

    def adapters(self):
        return self.regressors

    def losses(self, step):
        total = 0
        for regressor, (student_tap, teacher_tap) in zip(self.regressors.values(), self.tap_pairs()):
            student = regressor(as_tokens(step.features['student'][student_tap].float()))
            total = total + self.criterion(student, as_tokens(step.features['teacher'][teacher_tap].float()))
        return {'l_hint': total}
