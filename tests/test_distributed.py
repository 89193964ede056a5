"""Two processes on CPU (gloo), each a rank as torchrun ... --launcher pytorch starts it (the launcher
itself, its signals and a rank's death are in test_faults.py)."""
import os

import numpy as np
import pytest
import torch
import yaml

from in_process import dckd_train, dckd_train_on_ranks
from test_pipeline import dckd_options, hr_images, paired_lmdbs, workspace  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def four_images():
    """Four 64x64 photographs (flips of the real ones where needed), so two ranks x one image
    equal one process x two images."""
    images = list(hr_images().values())
    while len(images) < 4:
        images.append(np.ascontiguousarray(images[len(images) % len(images)][:, ::-1]))
    return {f'img{i}': img for i, img in enumerate(images[:4])}


def logits_kd_options(workspace, name, train_set, batch):  # noqa: F811
    opt = dckd_options(workspace, name, total_iter=4, checkpoint_freq=4, val=False, train_set=train_set)
    for key in ('contrastive_opt', 'distribution_opt', 'lcr_opt', 'history', 'negatives'):
        del opt['train'][key]
    del opt['network_vqgan'], opt['path']['pretrain_network_vqgan']
    opt['datasets']['train'].update(gt_size=64, batch_size_per_gpu=batch)  # whole images, no random crops
    return opt


FEATURE_TERM = {'type': 'L1Loss', 'loss_weight': 1.0, 'student_taps': ['body.0'], 'teacher_taps': ['body.0']}
HINT_TERM = dict(FEATURE_TERM, type='MSELoss')  # adapters: rank 0's start, gradients averaged


@pytest.mark.parametrize('terms', [{}, {'feature_opt': FEATURE_TERM, 'hint_opt': HINT_TERM}],
                         ids=['Logits KD', 'Logits KD, FAKD and hints'])
def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(workspace, tmp_path, terms):  # noqa: F811
    train_set = paired_lmdbs(str(tmp_path / 'data'), 'train', patch=None, images=four_images())
    runs = {'ddp': logits_kd_options(workspace, 'ddp', train_set, batch=1),
            'single': logits_kd_options(workspace, 'single', train_set, batch=2)}
    for opt in runs.values():
        # SGD, whose steps scale with the gradients (Adam's do not): ranks that summed their gradients
        # instead of averaging them would show here
        opt['train'].update(terms, optim_g={'type': 'SGD', 'lr': 0.05})
    paths = {}
    for name, opt in runs.items():
        paths[name] = tmp_path / f'{name}.yml'
        paths[name].write_text(yaml.safe_dump(opt))
    ddp = dckd_train_on_ranks(['-opt', paths['ddp']], tmp_path, ranks=2)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = dckd_train(['-opt', paths['single']], tmp_path, threads=1)  # in this process, as the ranks: one thread
    assert single.returncode == 0, single.stderr[-3000:]

    log = next(f for f in os.listdir(tmp_path / 'experiments/ddp') if f.endswith('.log'))
    text = (tmp_path / 'experiments/ddp' / log).read_text()
    replicated = 'student, EMA, adapters' if terms else 'student, EMA'
    assert f'{replicated} weights identical on all 2 ranks.' in text and 'World size (gpu number): 2' in text
    files = {'net_g_4.pth': ('params', 'params_ema'), **({'net_adapters_4.pth': ('params', )} if terms else {})}
    for file, keys in files.items():
        a = torch.load(tmp_path / 'experiments/ddp/models' / file, weights_only=True)
        b = torch.load(tmp_path / 'experiments/single/models' / file, weights_only=True)
        for key in keys:
            for name, value in a[key].items():
                assert torch.allclose(value, b[key][name], rtol=1e-4, atol=1e-6), (file, key, name)


def test_dckd_under_two_ranks_keeps_student_ema_and_history_identical(workspace, tmp_path):  # noqa: F811
    opt = dckd_options(workspace, 'ddp_dckd', total_iter=2, checkpoint_freq=2, val=False)
    path = tmp_path / 'ddp_dckd.yml'
    path.write_text(yaml.safe_dump(opt))
    result = dckd_train_on_ranks(['-opt', path], tmp_path, ranks=2)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / 'experiments/ddp_dckd'
    text = (folder / next(f for f in os.listdir(folder) if f.endswith('.log'))).read_text()
    assert 'student, EMA, history weights identical on all 2 ranks.' in text
    assert sorted(os.listdir(folder / 'models')) == ['net_g_2.pth', 'net_g_latest.pth', 'net_history_2.pth',
                                                    'net_history_latest.pth']  # written once, by rank 0
