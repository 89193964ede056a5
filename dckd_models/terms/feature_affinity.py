"""FAKD (He et al., "FAKD: Feature-Affinity Based Knowledge Distillation for Efficient Image
Super-Resolution", ICIP 2020): the student's spatial affinities of intermediate features follow
the teacher's."""
from dckd_utils.registry import register
from ..taps import as_tokens
from . import TERM_REGISTRY, PairedTaps

EPS = 1e-8  # added to each position's feature norm, as the authors' code does


def spatial_affinity(features):
    """(B, N, N) cosine similarity between the feature vectors of every two of the N positions:
    `features` is (B, C, H, W) (N = H*W) or transformer tokens (B, N, C)."""
    flat = as_tokens(features).transpose(1, 2)  # (B, C, N)
    normalized = flat / (flat.norm(dim=1, keepdim=True) + EPS)
    return normalized.transpose(1, 2) @ normalized


@register(TERM_REGISTRY)
class FeatureAffinity(PairedTaps):
    """`train.feature_opt` -> l_fakd = sum over tap pairs of loss(A(student tap), A(teacher tap)),
    A the spatial affinity; `student_taps[i]` is paired with `teacher_taps[i]` (module names as in
    `named_modules()`, e.g. RCAN's body.2, SwinIR's layers.1), which must work at the same
    resolution (checked when the model is built). The authors' released code sums these losses
    into a new tensor, which cuts the graph and trains nothing; here they stay in it."""
    options = ('feature_opt', )

    def __init__(self, components, model):
        super().__init__(components, model)
        self.check_positions(model.tapped_shapes())

    def losses(self, step):
        total = 0
        for student_tap, teacher_tap in self.tap_pairs():
            student = spatial_affinity(step.features['student'][student_tap].float())
            teacher = spatial_affinity(step.features['teacher'][teacher_tap].float())
            total = total + self.criterion(student, teacher)
        return {'l_fakd': total}
