"""Resume continues the same run: N + N iterations through `train.py --auto_resume` equal 2N straight.

Under the conditions users train under: several real images (Set5 crops where ../shared is there),
random crops, flips and rotations, validation between iterations, a student with stochastic depth
(SwinIR, drawing from torch's global generator), DCKD's degradations and label consistency, 0 and 2
data workers, prefetch none and cpu, an enlarged dataset, and two gloo processes. Compared bit for
bit: student, EMA, history model, optimizer and scheduler states and the losses logged after the
resume point; from a checkpoint in the middle of an epoch and from one at its last iteration.
"""
import os
import re

import numpy as np
import pytest
import torch
import yaml

from in_process import dckd_train, dckd_train_in_a_new_process, dckd_train_on_ranks
from test_pipeline import dckd_options, hr_images, paired_lmdbs, workspace  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow
BATCH = 2


def several_images():
    """Three 64x64 photographs (Set5 crops), or three different textures without ../shared."""
    images = hr_images()
    if len(images) >= 3:
        return images
    y, x = np.mgrid[0:64, 0:64]
    return {f'texture{k}': np.stack([127 + 120 * np.sin(x / (2 + k + c)) * np.cos(y / (3 + k)) for c in range(3)],
                                    -1).astype(np.uint8) for k in range(3)}


@pytest.fixture(scope='module')
def sub_images(tmp_path_factory):
    """12 training pairs: 32x32 GT sub-images of three images, x2 LQ."""
    return paired_lmdbs(str(tmp_path_factory.mktemp('resume_data')), 'train', patch=32, images=several_images())


def options(workspace, train_set, name, total_iter, workers, prefetch, ratio):  # noqa: F811
    opt = dckd_options(workspace, name, total_iter=total_iter, checkpoint_freq=1, train_set=train_set)
    opt['datasets']['train'].update(gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=workers,
                                    batch_size_per_gpu=BATCH, prefetch_mode=prefetch, dataset_enlarge_ratio=ratio)
    opt['val']['val_freq'] = 2
    opt['network_g'] = {'type': 'SwinIR', 'upscale': 2, 'in_chans': 3, 'img_size': 8, 'window_size': 4,
                        'img_range': 1., 'depths': [2], 'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 2,
                        'upsampler': 'pixelshuffle', 'drop_path_rate': 0.3}  # stochastic depth: torch's generator
    return opt


def train(tmp_path, opt, *extra, ranks=1):
    """dckd-train on `opt` in `tmp_path`, on one thread a process. A run that resumes gets a process of
    its own (so it shares nothing in memory with the run it resumes), as does one with BasicSR's CPU
    prefetcher and each rank of a run of several (tests/in_process.py says why); the others run in
    this process."""
    path = tmp_path / f'{opt["name"]}_{opt["train"]["total_iter"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    if ranks == 1:
        alone = '--auto_resume' in extra or opt['datasets']['train'].get('prefetch_mode') == 'cpu'
        result = (dckd_train_in_a_new_process if alone else dckd_train)(['-opt', path, *extra], tmp_path, threads=1)
    else:
        result = dckd_train_on_ranks(['-opt', path, *extra], tmp_path, ranks)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def logged_losses(experiment):
    """{iteration: 'l_pix: ... l_kd: ...'} from every log of an experiment (a resumed run has two)."""
    losses = {}
    for log in sorted(f for f in os.listdir(experiment) if f.endswith('.log')):
        for line in (experiment / log).read_text().splitlines():
            match = re.search(r'iter:\s*([\d,]+),.*\]\s+(l_\w+: .*)$', line)
            if match:
                losses[int(match.group(1).replace(',', ''))] = match.group(2)
    return losses


def assert_same_run(tmp_path, straight, resumed, last, resumed_from, history=True, adapters=False):
    def load(name, file):
        return torch.load(tmp_path / 'experiments' / name / file, weights_only=True)

    files = [(f'models/net_g_{last}.pth', ('params', 'params_ema'))]
    files += [(f'models/net_history_{last}.pth', ('params', ))] if history else []
    files += [(f'models/net_adapters_{last}.pth', ('params', ))] if adapters else []
    for file, keys in files:
        a, b = load(straight, file), load(resumed, file)
        for key in keys:
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), (file, key)
    a, b = load(straight, f'training_states/{last}.state'), load(resumed, f'training_states/{last}.state')
    for state_a, state_b in zip(a['optimizers'][0]['state'].values(), b['optimizers'][0]['state'].values()):
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert a['schedulers'] == b['schedulers'] and a['epoch'] == b['epoch']
    for rank_a, rank_b in zip(a['random_states'], b['random_states']):
        assert all(torch.equal(rank_a[k], rank_b[k]) for k in rank_a if k != 'global')
    straight_losses, resumed_losses = logged_losses(tmp_path / 'experiments' / straight), logged_losses(
        tmp_path / 'experiments' / resumed)
    after = [i for i in straight_losses if i > resumed_from]
    assert after and all(resumed_losses[i] == straight_losses[i] for i in after)


# per case: data workers, prefetch mode, dataset_enlarge_ratio; 12 pairs / batch 2 = 6 batches an epoch (x ratio)
CASES = {'no workers': (0, None, 1), '2 workers, cpu prefetch, enlarged x2': (2, 'cpu', 2)}


@pytest.mark.parametrize('workers, prefetch, ratio', CASES.values(), ids=CASES.keys())
def test_resumed_runs_equal_the_uninterrupted_one(workspace, sub_images, tmp_path, workers, prefetch, ratio):  # noqa: F811
    per_epoch = 12 * ratio // BATCH
    mid, end, total = per_epoch // 2 + 1, per_epoch, per_epoch + 3  # the last two: into the next epoch
    train(tmp_path, options(workspace, sub_images, 'straight', total, workers, prefetch, ratio))
    for name, stop in (('from_mid_epoch', mid), ('from_epoch_end', end)):
        train(tmp_path, options(workspace, sub_images, name, stop, workers, prefetch, ratio))
        resumed = train(tmp_path, options(workspace, sub_images, name, total, workers, prefetch, ratio),
                        '--auto_resume')
        printed = resumed.stderr + resumed.stdout
        # BasicSR resumes the epoch the state was saved in (0); the stream goes on where it stood
        assert 'Resuming training from epoch: 0' in printed
        assert f'Resume: the data stream continues at batch {stop % per_epoch} of epoch {stop // per_epoch}' in printed
        assert_same_run(tmp_path, 'straight', name, total, stop)


def models(opt, model):
    """The DCKD run as BasicSR's SRModel (no teacher) or as KDModel with Logits KD."""
    for key in ('contrastive_opt', 'distribution_opt', 'history', 'negatives') + (('kd_opt', 'lcr_opt')
                                                                                    if model == 'SRModel' else ()):
        del opt['train'][key]
    del opt['network_vqgan'], opt['path']['pretrain_network_vqgan']
    if model == 'SRModel':
        del opt['network_t'], opt['path']['pretrain_network_t']
    opt['model_type'] = model
    return opt


@pytest.mark.parametrize('model', ['SRModel', 'KDModel'])
def test_other_models_resume_exactly_too(workspace, sub_images, tmp_path, model):  # noqa: F811
    def run(name, total):
        return models(options(workspace, sub_images, name, total, 0, None, 1), model)

    train(tmp_path, run('straight', 8))
    train(tmp_path, run('split', 4))
    train(tmp_path, run('split', 8), '--auto_resume')
    assert_same_run(tmp_path, 'straight', 'split', 8, 4, history=False)


def test_terms_with_taps_adapters_and_random_draws_resume_exactly(workspace, sub_images, tmp_path):  # noqa: F811
    """FAKD (forward hooks), FitNets' hints (adapters trained with the student) and DUKD (tiles and
    transforms drawn from the model's generator)."""
    def run(name, total):
        opt = models(options(workspace, sub_images, name, total, 0, None, 1), 'KDModel')
        opt['train']['feature_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'student_taps': ['conv_first'],
                                       'teacher_taps': ['conv_first']}
        opt['train']['hint_opt'] = {'type': 'MSELoss', 'loss_weight': 1.0, 'student_taps': ['layers.0'],
                                    'teacher_taps': ['body.1']}  # SwinIR tokens, EDSR maps
        opt['train']['upcycling_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 1, 'zoom_out': True,
                                         'prob': 0.5}
        return opt

    train(tmp_path, run('straight', 8))
    train(tmp_path, run('split', 4))
    train(tmp_path, run('split', 8), '--auto_resume')
    assert_same_run(tmp_path, 'straight', 'split', 8, 4, history=False, adapters=True)
    logged = logged_losses(tmp_path / 'experiments' / 'split')[8]
    assert 'l_fakd' in logged and 'l_hint' in logged


def test_two_gloo_ranks_resume_exactly(workspace, sub_images, tmp_path):  # noqa: F811
    """Each rank restores its own random states (its degradations differ from the other rank's)."""
    per_epoch = 12 // (2 * BATCH)
    train(tmp_path, options(workspace, sub_images, 'straight', per_epoch + 2, 0, None, 1), ranks=2)
    train(tmp_path, options(workspace, sub_images, 'split', 2, 0, None, 1), ranks=2)
    train(tmp_path, options(workspace, sub_images, 'split', per_epoch + 2, 0, None, 1), '--auto_resume', ranks=2)
    assert_same_run(tmp_path, 'straight', 'split', per_epoch + 2, 2)
    state = torch.load(tmp_path / 'experiments/split/training_states/2.state', weights_only=True)
    assert len(state['random_states']) == 2
    assert not torch.equal(state['random_states'][0]['model'], state['random_states'][1]['model'])


def test_the_eta_of_the_last_iteration_is_zero(workspace, sub_images, tmp_path):  # noqa: F811
    train(tmp_path, options(workspace, sub_images, 'eta', 3, 0, None, 1))
    experiment = tmp_path / 'experiments' / 'eta'
    text = (experiment / next(f for f in os.listdir(experiment) if f.endswith('.log'))).read_text()
    last = next(line for line in text.splitlines() if re.search(r'iter:\s*3,', line))
    assert '[eta: 0:00:00,' in last and '-1 day' not in text


def test_an_older_training_state_resumes_with_one_warning(workspace, sub_images, tmp_path):  # noqa: F811
    """A state as dckd 0.1 wrote it (the model's generator under 'rng', no stream, no global states)."""
    train(tmp_path, options(workspace, sub_images, 'old', 4, 0, None, 1))
    path = tmp_path / 'experiments/old/training_states/4.state'
    state = torch.load(path, weights_only=True)
    state['rng'] = state.pop('random_states')[0]['model']
    del state['data_stream']
    torch.save(state, path)
    resumed = train(tmp_path, options(workspace, sub_images, 'old', 6, 0, None, 1), '--auto_resume')
    warnings = [line for line in (resumed.stderr + resumed.stdout).splitlines() if 'WARNING' in line]
    assert len(warnings) == 1 and 'the data stream restarts epoch 0 from its first batch' in warnings[0], warnings
    assert (tmp_path / 'experiments/old/models/net_g_6.pth').exists()


def test_a_resume_with_other_stream_options_names_them(workspace, sub_images, tmp_path):  # noqa: F811
    train(tmp_path, options(workspace, sub_images, 'changed', 2, 0, None, 1))
    opt = options(workspace, sub_images, 'changed', 4, 0, None, 1)
    opt['datasets']['train'].update(batch_size_per_gpu=3, use_rot=False)
    resumed = train(tmp_path, opt, '--auto_resume')
    printed = resumed.stderr + resumed.stdout
    assert 'Resume: batch_size_per_gpu was 2 and is 3 now' in printed
    assert 'Resume: use_rot was True and is False now' in printed
