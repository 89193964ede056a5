"""DCKDModel: the model type of dckd's options files."""
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_utils.registry import register
from .kd_model import KDModel


@register(MODEL_REGISTRY)
class DCKDModel(KDModel):
    """KDModel under the paper's name: every term, DCKD's DCR and DMM included
    (dckd_models/terms/dynamic_contrastive.py), runs in KDModel; option files name DCKDModel."""
