"""Published SwinIR checkpoints load as they are as teachers; the s64 files need img_size 64."""
import os

import pytest
import torch
import yaml

from dckd_utils.schema import OptionError
from dckd_models import KDModel
from conftest import PROJECT_ROOT, reference_layout
from test_models import make_opt


def swinir_teacher_options():
    with open(os.path.join(PROJECT_ROOT, 'options', 'train', 'swinir', 'dckd_swinir_x4.yml')) as f:
        return yaml.safe_load(f)['network_t']


def published_file(tmp_path, listing):
    """A {'params': ...} file in the exact published layout (random values)."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) for k, shape in reference_layout(listing).items()}
    path = tmp_path / '001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth'
    torch.save({'params': state}, path)
    return str(path), state


def kd_options(tmp_path, teacher_path):
    opt = make_opt(tmp_path, teacher=swinir_teacher_options(), terms=('kd', ))
    opt['scale'] = opt['network_g']['upscale'] = 4
    opt['datasets']['train']['gt_size'] = 192
    opt['path'].update(pretrain_network_t=teacher_path, param_key_t='params')
    return opt


def test_the_official_s48w8_checkpoint_loads_strictly_as_the_teacher(tmp_path):
    path, state = published_file(tmp_path, 'swinir_m_x4.tsv')
    model = KDModel(kd_options(tmp_path, path))
    # learned weights; the file's random relative_position_index buffers are floats cast to int here
    assert all(torch.equal(v, state[k]) for k, v in model.net_t.named_parameters())


def test_a_df2k_s64w8_checkpoint_does_not_fit_img_size_48(tmp_path):
    path, _ = published_file(tmp_path, 'swinir_m_x4_s64.tsv')
    with pytest.raises(OptionError, match=r'does not fit network_t \(SwinIR\): other shapes: .*attn_mask'):
        KDModel(kd_options(tmp_path, path))
