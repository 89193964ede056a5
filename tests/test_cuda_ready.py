"""CUDA readiness without a GPU: every path a CUDA run takes keeps its tensors on the device.

The networks, the batch and the model's generator are put where a CUDA run puts them
(`num_gpu: 1`, `.to('cuda')`, `torch.Generator(device='cuda')`, `--device cuda`) on a CUDA device
made of the CPU (tests/fake_cuda.py): tensors that are on it hold CPU data and refuse, as CUDA
does, any operation that mixes them with a CPU tensor of one or more dimensions, and any random
draw from a generator of the other device. Everything runs for real: forward, backward, Adam, EMA
and history updates, `.item()`, validation metrics.

- Training steps, two each, of models built as dckd-train builds them: DCKDModel with every term
  on (Logits KD, LCR, FAKD, FitNets with its adapters, DUKD with zoom-in and zoom-out, DCR with all
  three degradations and the history model updated every step, DMM over the VQGAN's levels); the
  other loss and cost options (bfloat16 mode, the released DMM, history from the student, VQGAN
  activations kept) with Restormer's progressive patches, in KDModel; BasicSR's SRModel;
  RealWorldKDModel (Real-ESRGAN's degradation, crop and pool, DCR's negatives from the same
  degradations, the discriminator's step).
- Validation of a windowed student (padded to whole windows), the teacher check, `dckd-evaluate`
  whole and in tiles, `dckd-profile --device cuda`.
- The mutation check: a tensor a term creates, moved to the CPU, fails the training step.

What it cannot see: CUDA kernels and their numerics (TF32, cuDNN, bfloat16: autocast casts
nothing on the fake device), CUDA random streams (draws come from CPU generators), memory use,
streams and asynchronous errors, torch.compile (`compile_frozen`), fused attention kernels, NCCL,
checkpoints saved from and loaded onto CUDA, data loader workers, and branches on a tensor's
`device.type == 'cuda'` (the fake tensors say `meta`; the models' `self.device` is `cuda`, so
theirs are taken). Those are for `benchmarks/gpu_check.sh` on a GPU.
"""
import inspect
import os

import cv2
import numpy as np
import pytest
import torch

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.models import build_model
from dckd_models.resumable import make_resumable
from dckd_models.teacher_check import TeacherWorseThanBaseline, check_teacher
from fake_cuda import DeviceMismatch, FakeCudaTensor, fake_cuda
from test_models import SCALE, batch, make_opt, save_params

FAKD = {'type': 'L1Loss', 'loss_weight': 10.0, 'student_taps': ['conv_first', 'body.0'],
        'teacher_taps': ['conv_first', 'body.1']}
HINT = {'type': 'MSELoss', 'loss_weight': 1.0, 'student_taps': ['body.0'], 'teacher_taps': ['body.1']}
DUKD = {'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 2, 'zoom_out': True, 'prob': 0.5}
EVERY_DEGRADATION = {'num': 3, 'probs': {'noise': 1.0, 'blur': 1.0, 'resize': 1.0}}
EVERY_STEP = {'source': 'ema', 'attenuation': 0.1, 'steps': [1], 'milestones': []}
SWINIR = dict(type='SwinIR', upscale=SCALE, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
              embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle')


def every_term(tmp_path, model_type='DCKDModel', **overrides):
    """Options with every term on, on CUDA (`num_gpu: 1`); `overrides`: train options."""
    train = dict(feature_opt=dict(FAKD), hint_opt=dict(HINT), upcycling_opt=dict(DUKD),
                 negatives=dict(EVERY_DEGRADATION), history=dict(EVERY_STEP), frozen_chunk=2)
    opt = make_opt(tmp_path, terms=('kd', 'dcl', 'ce', 'lcr'), **dict(train, **overrides))
    opt['model_type'], opt['num_gpu'] = model_type, 1
    return opt


def built(opt):
    """The model as dckd-train builds it: BasicSR's build_model, made resumable."""
    return make_resumable(build_model(opt))


CONFIGURATIONS = {
    'DCKDModel, every term': lambda tmp_path: every_term(tmp_path),
    'KDModel, bfloat16, released DMM, history from the student, VQGAN activations kept, progressive patches':
        lambda tmp_path: every_term(
            tmp_path, 'KDModel', precision='bfloat16', vqgan_recompute=False,
            history=dict(EVERY_STEP, source='student'),
            distribution_opt={'type': 'DistributionMappingLoss', 'loss_weight': 0.001, 'mode': 'released'},
            progressive={'milestones': [1], 'gt_sizes': [24, 32], 'batch_sizes': [1, 2]}),
}


def on_fake_device(tensor):
    return isinstance(tensor, FakeCudaTensor)


def network_tensors(model):
    """Every parameter and buffer of every network of `model`, by name."""
    return {f'{attr}.{name}': tensor for attr, net in vars(model).items() if isinstance(net, torch.nn.Module)
            for name, tensor in [*net.named_parameters(), *net.named_buffers()]}


def two_steps(model):
    """Two training steps on a CPU batch (fed as the data loader feeds it); returns the student's
    weights before, as CPU tensors."""
    before = {k: v.detach().cpu().clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}
    for current_iter in (1, 2):
        model.feed_data(batch(seed=current_iter))
        model.optimize_parameters(current_iter)
    return before


@pytest.mark.parametrize('configuration', list(CONFIGURATIONS))
def test_training_steps_of_kd_models_stay_on_the_device(tmp_path, configuration):
    opt = CONFIGURATIONS[configuration](tmp_path)
    with fake_cuda():
        model = built(opt)
        misplaced = [name for name, tensor in network_tensors(model).items() if not on_fake_device(tensor)]
        assert not misplaced, f'left on the CPU: {misplaced[:5]}'
        assert not on_fake_device(torch.zeros(1))  # the check can tell the devices apart
        before = two_steps(model)
        assert on_fake_device(model.output) and on_fake_device(model.lq)
        after = model.get_bare_model(model.net_g).state_dict()
        assert any(not torch.equal(after[k].cpu(), v) for k, v in before.items())  # the student trained
        adapters = model.net_adapters.state_dict()
        assert all(on_fake_device(v) for v in adapters.values())
    expected = {'l_pix', 'l_kd', 'l_lcr', 'l_fakd', 'l_hint', 'l_zoom_in', 'l_zoom_out_pix', 'l_zoom_out_kd',
                'l_dcl', 'l_ce'}
    assert set(model.log_dict) == expected
    assert all(np.isfinite(value) for value in model.log_dict.values())


def test_a_realworld_dckd_gan_step_stays_on_the_device(tmp_path):
    """RealWorldKDModel: the second-order degradation (JPEG, sharpening, noise, kernels), the crop,
    the pool, DCR's negatives from the same degradations, the teacher read from its model file and
    the discriminator's step, on the device (BasicSR's RealESRGANModel needs CUDA; this must not
    need the CPU either)."""
    from test_realworld_training import realworld_options, workspace as make_workspace
    opt = realworld_options(make_workspace.__wrapped__(_Folders(tmp_path)), 'cuda', total_iter=10)
    del opt['train']['perceptual_opt']  # VGG19's file: tests/test_realworld_training.py trains with it
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1, gt_size=48, queue_size=2)
    opt['train']['net_d_init_iters'] = 1  # the first iteration trains the discriminator alone
    opt['path'].update(models=str(tmp_path / 'models'), training_states=str(tmp_path / 'states'))
    generator = torch.Generator().manual_seed(0)
    kernels = torch.rand(2, 21, 21, generator=generator)
    with fake_cuda():
        model = built(opt)
        assert all(on_fake_device(tensor) for tensor in network_tensors(model).values())
        before = {k: v.detach().cpu().clone() for k, v in model.net_d.state_dict().items()}
        student = {k: v.detach().cpu().clone() for k, v in model.net_g.state_dict().items()}
        for current_iter in (1, 2, 3):
            model.feed_data({'gt': torch.rand(2, 3, 80, 80, generator=generator), 'gt_path': ['a', 'b'],
                             'kernel1': kernels / kernels.sum((1, 2), keepdim=True), 'kernel2': kernels / 441,
                             'sinc_kernel': torch.eye(21)[None].expand(2, 21, 21) / 21})
            model.optimize_parameters(current_iter)
            if current_iter == 1:
                assert set(model.log_dict) == {'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
                assert all(torch.equal(v.cpu(), student[k]) for k, v in model.net_g.state_dict().items())
        assert on_fake_device(model.lq) and on_fake_device(model.pool.lq)
        assert any(not torch.equal(v.cpu(), student[k]) for k, v in model.net_g.state_dict().items())
        assert model.lq.shape[-1] == 12 and model.gt.shape[-1] == 48
        assert any(not torch.equal(v.cpu(), before[k]) for k, v in model.net_d.state_dict().items())
    assert {'l_pix', 'l_kd', 'l_dcl', 'l_ce', 'l_g_gan', 'l_d_real', 'l_d_fake'} <= set(model.log_dict)
    assert all(np.isfinite(value) for value in model.log_dict.values())


class _Folders:
    """tmp_path_factory's mktemp over one folder (to build a module fixture's files here)."""

    def __init__(self, root):
        self.root = root

    def mktemp(self, name):
        path = self.root / name
        path.mkdir()
        return path


def test_a_training_step_of_basicsr_srmodel_stays_on_the_device(tmp_path):
    opt = make_opt(tmp_path, terms=())
    opt.update(model_type='SRModel', num_gpu=1)
    for key in ('network_t', 'network_vqgan'):
        del opt[key]
    for key in ('history', 'negatives'):
        del opt['train'][key]
    with fake_cuda():
        model = built(opt)
        assert all(on_fake_device(tensor) for tensor in network_tensors(model).values())
        before = two_steps(model)
        after = model.net_g.state_dict()
        assert any(not torch.equal(after[k].cpu(), v) for k, v in before.items())
    assert np.isfinite(model.log_dict['l_pix'])


# ----- the mutation check: a tensor a term creates, moved to the CPU, is caught ------------------------

def mutated(function, old, new):
    """`function` recompiled from its source with `old` replaced by `new` (in its own module)."""
    source = inspect.getsource(function)
    assert source.count(old) == 1, f'{old!r} is not in {function.__qualname__} once'
    namespace = dict(vars(inspect.getmodule(function)))
    exec(compile(inspect.cleandoc('\n' + source.replace(old, new)) if source.startswith(' ') else
                 source.replace(old, new), inspect.getsourcefile(function), 'exec'), namespace)
    return namespace[function.__name__]


MUTATIONS = {
    # DUKD's choice of zoom-in tiles drawn on the CPU generator's device instead of the batch's
    'zoom-in tiles drawn on the CPU': ('dckd_models.terms.upcycling', 'zoom_in_tiles',
                                       'device=generator.device', "device='cpu'"),
    # LCR's transforms drawn on the CPU
    'LCR transforms drawn on the CPU': ('dckd_models.label_consistency', 'draw_transforms',
                                        'device=generator.device', "device='cpu'"),
    # the blur kernels' offsets made on the CPU
    'blur offsets made on the CPU': ('dckd_models.negatives', 'NegativeDegrader.gaussian_blur',
                                     'device=device, dtype=images.dtype', 'dtype=images.dtype'),
}


@pytest.mark.parametrize('mutation', list(MUTATIONS))
def test_a_tensor_a_term_creates_on_the_cpu_fails_the_check(tmp_path, monkeypatch, mutation):
    import importlib
    module_name, qualname, old, new = MUTATIONS[mutation]
    module = importlib.import_module(module_name)
    owner, name = (module, qualname) if '.' not in qualname else (getattr(module, qualname.split('.')[0]),
                                                                  qualname.split('.')[1])
    monkeypatch.setattr(owner, name, mutated(getattr(owner, name), old, new))
    if owner is module and module_name.endswith('label_consistency'):
        import dckd_models.terms.upcycling as upcycling
        monkeypatch.setattr(upcycling.lcr, name, getattr(module, name))
    with fake_cuda():
        model = built(every_term(tmp_path))
        with pytest.raises(DeviceMismatch):
            two_steps(model)  # unmutated, the same steps pass (test_training_steps_of_kd_models...)


# ----- inference paths: validation, teacher check, dckd-evaluate with tiles, dckd-profile -------------

def image_pairs(folder, sizes):
    """GT and x2 bicubic LQ PNG folders of random-texture images with these LQ (height, width)."""
    rng = np.random.default_rng(0)
    for sub in ('gt', 'lq'):
        os.makedirs(folder / sub, exist_ok=True)
    for index, (height, width) in enumerate(sizes):
        gt = cv2.GaussianBlur(rng.integers(0, 256, (height * SCALE, width * SCALE, 3), dtype=np.uint8), (5, 5), 1)
        cv2.imwrite(str(folder / 'gt' / f'{index}.png'), gt)
        cv2.imwrite(str(folder / 'lq' / f'{index}.png'), cv2.resize(gt, (width, height), interpolation=cv2.INTER_AREA))
    return str(folder / 'gt'), str(folder / 'lq')


ODD_SIZES = [(26, 19), (21, 30)]  # not whole 4x4 windows; larger than a tile of 8


def windowed_student_model(tmp_path):
    opt = make_opt(tmp_path, student=dict(SWINIR), terms=('kd', ))
    opt.update(model_type='DCKDModel', num_gpu=1,
               val={'val_freq': 1, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}})
    return opt


def test_validation_of_a_windowed_student_and_the_teacher_check_run_on_the_device(tmp_path):
    gt, lq = image_pairs(tmp_path / 'val', ODD_SIZES)
    dataset = PairedImageDataset({'name': 'odd', 'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'disk'},
                                  'phase': 'val', 'scale': SCALE})
    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    with fake_cuda():
        model = built(windowed_student_model(tmp_path))
        assert model.device.type == 'cuda'
        assert all(on_fake_device(tensor) for tensor in network_tensors(model).values())
        model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
        with pytest.raises(TeacherWorseThanBaseline, match=r'Teacher check on odd \(2 images'):  # random weights
            check_teacher(model.net_t, ((item['lq'], item['gt']) for item in dataset), SCALE, model.device, 'odd')
    psnr = model.metric_results['psnr']
    assert np.isfinite(psnr) and psnr > 0


def test_dckd_evaluate_whole_and_tiled_and_dckd_profile_run_on_the_device(tmp_path, capsys):
    from dckd.evaluate.cli import main as evaluate
    from dckd.profile import main as profile
    import yaml

    gt, lq = image_pairs(tmp_path / 'bench', ODD_SIZES)
    options = tmp_path / 'student.yml'
    options.write_text(yaml.safe_dump({'scale': SCALE, 'network_g': dict(SWINIR)}))
    checkpoint = save_params(dict(SWINIR), tmp_path / 'student.pth')
    model = f'student={options}:{checkpoint}'
    with fake_cuda():
        evaluate(['--scale', str(SCALE), '--benchmark', f'odd={gt},{lq}', '--model', model,
                  '--out', str(tmp_path / 'whole')])
        evaluate(['--scale', str(SCALE), '--benchmark', f'odd={gt},{lq}', '--model', model, '--tile', '8',
                  '--overlap', '4', '--out', str(tmp_path / 'tiled')])
        profile(['--scale', str(SCALE), '--model', model, '--device', 'cuda', '--precision', 'float32',
                 '--output-size', '32x24', '--warmup', '0', '--runs', '1'])
    assert 'cuda float32 (ms)' in capsys.readouterr().out
    whole, tiled = ((tmp_path / f'{name}.csv').read_text().splitlines()[1].split(',') for name in ('whole', 'tiled'))
    assert all(np.isfinite(float(value)) and float(value) > 0 for value in whole[2:] + tiled[2:])  # PSNR, SSIM

