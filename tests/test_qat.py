"""Quantization-aware distillation (`train.quantization`): the student trains as its fake-quantized
twin, whose weights are the student's own; validation never moves a range; the EMA's twin measures
its own weights; a run resumes exactly across the iteration where QAT starts and within QAT; a
resume with other quantization options is refused naming the option; the run's INT8 artifact
computes what its fake-quantized twin emulated."""

import pytest
import torch

from basicsr.archs import build_network
from dckd_arch import quantized
from dckd_models import DCKDModel
from dckd_utils.schema import OptionError
from in_process import dckd_train
from conftest import DEVICES
from test_models import batch, make_opt
from test_pipeline import workspace  # noqa: F401  (fixture)
from test_resume import assert_same_run, options, sub_images, train  # noqa: F401  (fixture)

pytest.importorskip('torchao')


def qat_model(tmp_path, device='cpu', **quantization):
    torch.manual_seed(0)
    opt = make_opt(tmp_path, quantization=quantization)
    opt['train']['history']['steps'] = [1]
    opt['num_gpu'] = int(device == 'cuda')
    return DCKDModel(opt)


def quantizer_state(graph):
    return {k: v.clone() for k, v in quantized.fake_quantizers(graph).state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_twin_trains_the_students_own_weights_from_start_iter(tmp_path):
    model = qat_model(tmp_path, start_iter=2)
    model.feed_data(batch(1))
    model.optimize_parameters(1)
    assert not model.qat.active  # iteration 1 is before start_iter
    model.optimize_parameters(2)
    student, twin = model.net_g, model.qat.graph('student')
    weights = {id(p) for p in student.parameters()}
    assert {id(p) for p in twin.parameters()} == weights  # the optimizer's tensors
    before = [p.detach().clone() for p in student.parameters()]
    model.optimize_parameters(3)
    assert any(not torch.equal(a, p) for a, p in zip(before, student.parameters()))
    with torch.no_grad():  # the twin is the student, quantized: near it, not it
        float_output, fake_output = student(model.lq), twin(model.lq)
    assert 0 < (float_output - fake_output).abs().max() < 0.1
    assert set(quantizer_state(model.qat.graph('history'))) == set(quantizer_state(twin))  # negatives quantized too


@pytest.mark.parametrize('device', DEVICES)
def test_a_quantization_aware_step_runs_on_the_models_device(tmp_path, device):
    """The twins are captured on the device (the fake CUDA device cannot trace torch.export: a real
    GPU runs this in benchmarks/gpu_check.sh)."""
    model = qat_model(tmp_path, device, start_iter=1)
    data = batch(1)
    model.feed_data(data)
    model.optimize_parameters(1)
    model.feed_data(data)
    model.test()
    assert model.output.device.type == device
    for role in ('student', 'ema', 'history'):
        assert {t.device.type for t in quantized.fake_quantizers(model.qat.graph(role)).state_dict().values()} == {device}
    assert all(torch.isfinite(torch.tensor(v)) for v in model.log_dict.values())


def test_ranges_move_until_freeze_iter_and_never_in_validation(tmp_path):
    model = qat_model(tmp_path, start_iter=1, freeze_iter=3)
    model.feed_data(batch(1))
    model.optimize_parameters(1)
    student = model.qat.graph('student')
    moved = quantizer_state(student)
    model.feed_data(batch(2))
    model.optimize_parameters(2)
    assert not same_state(moved, quantizer_state(student))  # observers learn on a new batch
    for iteration in (3, 4):  # frozen from 3 on: fake quantization with fixed ranges
        frozen = quantizer_state(student)
        model.feed_data(batch(iteration))
        model.optimize_parameters(iteration)
        changed = {k.rsplit('.', 1)[-1] for k in frozen if not torch.equal(frozen[k], quantizer_state(student)[k])}
        assert changed == ({'observer_enabled'} if iteration == 3 else set()), changed
    model.feed_data(batch(9))
    ema = model.qat.scored()
    kept = quantizer_state(ema), quantizer_state(student)
    model.test()
    model.test()
    assert same_state(kept[0], quantizer_state(ema)) and same_state(kept[1], quantizer_state(student))


@pytest.mark.parametrize('backend', ['x86', 'xnnpack'])
def test_activation_ranges_are_the_extremes_of_every_batch_observed(tmp_path, backend):
    """The twin of either PT2E backend: an activation's range is the minimum and maximum over all
    batches so far, not a moving average that batches of narrower values pull back in
    (docs/quantization.md: moving averages sank the 64-channel study's INT8 students). Seen where
    EDSR's input less its mean is first quantized: x86 after the scaling by img_range (1 here), xnnpack
    before it."""
    if backend == 'xnnpack':
        pytest.importorskip('executorch')
    opt = make_opt(tmp_path)
    twin = quantized.prepare(build_network(dict(opt['network_g'])),
                             quantized.recipe(opt['network_g'], opt['scale'], backend, training=True))
    levels = (0.5, 0.95, 0.05, 0.5, 0.5, 0.5)  # the widest batches early, then narrow ones
    for level in levels:
        twin(torch.full((2, 3, 8, 8), level))
    quantizers = quantized.fake_quantizers(twin)
    shifted = next(node for node in twin.graph.nodes if node.target in quantizers
                   and node.args[0].target in (torch.ops.aten.sub.Tensor, torch.ops.aten.mul.Tensor))
    network = opt['network_g']
    assert network['img_range'] == 1
    seen = torch.tensor(levels).view(-1, 1) - torch.tensor(network['rgb_mean']).view(1, 3)
    observer = quantizers[shifted.target].activation_post_process
    assert (observer.min_val.item(), observer.max_val.item()) == pytest.approx((seen.min().item(), seen.max().item()))


def test_the_ema_twin_takes_the_students_activation_ranges_and_measures_its_own_weights(tmp_path):
    model = qat_model(tmp_path, start_iter=1)
    for iteration in (1, 2):
        model.feed_data(batch(iteration))
        model.optimize_parameters(iteration)
    ema, student = model.qat.scored(), model.qat.graph('student')
    weights = {node.target: node.args[0].target for node in ema.graph.nodes
               if node.op == 'call_module' and node.args[0].op == 'get_attr'}
    assert weights, 'the graph has weight quantizers'
    for name, quantizer in quantized.fake_quantizers(ema).items():
        observer = quantizer.activation_post_process
        if name in weights:  # per output channel: the EMA weights' own extremes
            weight = ema.get_parameter(weights[name])
            assert torch.equal(observer.min_val, weight.detach().amin(dim=(1, 2, 3)))
            assert torch.equal(observer.max_val, weight.detach().amax(dim=(1, 2, 3)))
        else:
            assert torch.equal(observer.min_val, quantized.fake_quantizers(student)[name].activation_post_process.min_val)
    assert model.net_g_ema is not model.net_g and ema is not student


def qat_options(workspace, sub_images, name, total):  # noqa: F811
    opt = options(workspace, sub_images, name, total, 0, None, 1)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2,
                        'res_scale': 1, 'img_range': 1., 'rgb_mean': [0.5, 0.5, 0.5]}
    opt['train']['quantization'] = {'start_iter': 3, 'freeze_iter': 5}
    return opt


@pytest.mark.slow
def test_a_qat_dckd_run_resumes_exactly_across_start_iter_and_within_qat(workspace, sub_images, tmp_path):  # noqa: F811
    straight = train(tmp_path, qat_options(workspace, sub_images, 'straight', 6))
    printed = straight.stderr + straight.stdout
    assert 'Quantization-aware training from iteration 3' in printed
    assert 'Quantization-aware training: ranges frozen from iteration 5' in printed
    models = tmp_path / 'experiments' / 'straight' / 'models'
    assert not (models / 'net_g_quantization_2.pth').exists() and (models / 'net_g_quantization_3.pth').exists()
    for name, stop in (('across_start', 2), ('within_qat', 4)):
        train(tmp_path, qat_options(workspace, sub_images, name, stop))
        resumed = train(tmp_path, qat_options(workspace, sub_images, name, 6), '--auto_resume')
        assert_same_run(tmp_path, 'straight', name, 6, stop)
        a, b = (torch.load(tmp_path / 'experiments' / run / 'models' / 'net_g_quantization_6.pth', weights_only=True)
                for run in ('straight', name))
        for role in ('student', 'history'):
            assert same_state(a[role], b[role]), (name, role)
        if stop == 4:
            assert 'Resume: the fake quantizers from' in resumed.stderr + resumed.stdout
    # the run ends with its INT8 artifact: the EMA student in integers, near its float weights
    graph, content = quantized.load_artifact(str(models / 'net_g_int8.pth'))
    assert content['training'] and content['backend'] == 'x86'
    ema = build_network(dict(content['network_g']))
    ema.load_state_dict(torch.load(models / 'net_g_6.pth', weights_only=True)['params_ema'])
    lq = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (graph(lq) - ema.eval()(lq)).abs()
    assert 0 < difference.mean() < 2 / 255


@pytest.mark.slow
def test_two_gloo_ranks_keep_weights_and_fake_quantizers_identical(workspace, sub_images, tmp_path):  # noqa: F811
    """Under DDP each rank observes its own batch; the gradients are averaged and rank 0's ranges
    shared after every step, so every checkpoint finds the replicas identical (the run stops if not)."""
    result = train(tmp_path, qat_options(workspace, sub_images, 'ddp', 4), ranks=2)
    printed = result.stderr + result.stdout
    assert 'World size (gpu number): 2' in printed
    assert ('student, EMA, history, student fake quantizers, history fake quantizers weights identical on all 2 '
            'ranks.') in printed
    models = tmp_path / 'experiments' / 'ddp' / 'models'
    assert (models / 'net_g_int8.pth').exists()
    observed = torch.load(models / 'net_g_quantization_4.pth', weights_only=True)['student']
    ranges = [v for k, v in observed.items() if k.endswith('activation_post_process.min_val')]
    assert ranges and all(torch.isfinite(v).all() for v in ranges)  # the twin ran: its observers saw the data


@pytest.mark.slow
def test_a_resume_with_other_quantization_options_names_the_option(workspace, sub_images, tmp_path):  # noqa: F811
    train(tmp_path, qat_options(workspace, sub_images, 'changed', 4))
    opt = qat_options(workspace, sub_images, 'changed', 6)
    opt['train']['quantization']['freeze_iter'] = 6
    path = tmp_path / 'changed.yml'
    import yaml
    path.write_text(yaml.safe_dump(opt))
    result = dckd_train(['-opt', path, '--auto_resume'], tmp_path)
    assert result.returncode != 0
    assert 'train.quantization.freeze_iter was 5 in the run being resumed and is 6 now' in result.stderr


def test_a_realworld_gan_step_trains_the_fake_quantized_student(tmp_path):
    """RealWorldKDModel under QAT: the discriminator's first, lone iteration and then the GAN steps
    (l_g_gan on the twin's output), with DCR's real-world negatives from the history model's twin."""
    from basicsr.models import build_model
    from test_cuda_ready import _Folders
    from test_realworld_training import realworld_options, workspace as make_workspace
    opt = realworld_options(make_workspace.__wrapped__(_Folders(tmp_path)), 'qat', total_iter=10)
    del opt['train']['perceptual_opt']  # VGG19's file: tests/test_realworld_training.py trains with it
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=0, gt_size=48, queue_size=2)
    opt['train'].update(net_d_init_iters=1, quantization={'start_iter': 1})
    opt['path'].update(models=str(tmp_path / 'models'), training_states=str(tmp_path / 'states'))
    generator = torch.Generator().manual_seed(0)
    kernels = torch.rand(2, 21, 21, generator=generator)
    model = build_model(opt)
    student = [p.detach().clone() for p in model.net_g.parameters()]
    for current_iter in (1, 2, 3):
        model.feed_data({'gt': torch.rand(2, 3, 80, 80, generator=generator), 'gt_path': ['a', 'b'],
                         'kernel1': kernels / kernels.sum((1, 2), keepdim=True), 'kernel2': kernels / 441,
                         'sinc_kernel': torch.eye(21)[None].expand(2, 21, 21) / 21})
        model.optimize_parameters(current_iter)
        assert model.qat.active
        if current_iter == 1:  # the discriminator alone: the student did not move
            assert all(torch.equal(a, p) for a, p in zip(student, model.net_g.parameters()))
    assert {'l_g_gan', 'l_kd', 'l_dcl', 'l_d_real'} <= set(model.log_dict)
    assert any(not torch.equal(a, p) for a, p in zip(student, model.net_g.parameters()))
    assert set(quantized.fake_quantizers(model.qat.graph('history')).state_dict())  # negatives quantized


class Branching(torch.nn.Module):
    """A block whose forward branches on its input's values: one graph cannot hold it."""

    def forward(self, features):
        if features.mean() > 0.5:
            features = 1 - features
        return features


class DataDependent(torch.nn.Module):
    """A student with a Branching block deep in its body."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.Sequential(Branching()))
        self.shuffle = torch.nn.PixelShuffle(2)

    def forward(self, images):
        return self.shuffle(self.body(images))


def test_check_names_a_student_the_quantizer_cannot_capture(tmp_path):
    from basicsr.archs import build_network
    from dckd_models.options import parse_training_options
    from dckd_models.preflight import _quantization
    from dckd_utils.schema import config
    parsed = parse_training_options(make_opt(tmp_path, quantization={}), check_files=False)
    with pytest.raises(OptionError, match=r'(?s)train.quantization: network_g \(EDSR\) cannot be fake-quantized: the '
                                          r'network cannot be captured as one graph for quantization \(torch.export\) '
                                          r'in module body.1.0 \(Branching\): .*test_qat.py.*in forward.*'
                                          r'features.mean\(\) > 0.5'):  # the module, and the file, line and code
        _quantization(parsed, DataDependent())
    line = _quantization(parsed, build_network(config(parsed.network_g)))
    assert line.startswith('quantize  from iteration 0, backend x86:') and 'fake quantizers in the student' in line
