"""dckd-quantize: a student in 8 bits, calibrated on its run's training patches, checked on
photographs (scikit-image's, as the demo uses them): the INT8 output stays near the FP32 one, the
artifact read back in a new process gives the same output to the bit, dckd-evaluate scores it as
the in-process INT8 model scores, and bad input stops with one message before any work."""
import copy
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from dckd import quantize
from dckd.demo.data import prepare_demo_data
from dckd.evaluate import cli as evaluate_cli
from dckd.evaluate.benchmarks import load_pairs
from dckd.evaluate.metrics import convention
from dckd.evaluate.models import Int8Model, NetworkModel, Restorer, model_from_spec
from dckd.evaluate.table import evaluate
from dckd_arch import quantized
from dckd_arch.padding import Deployable
from conftest import PROJECT_ROOT

pytest.importorskip('torchao')
SCALE = 4
STUDENT = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2, 'upscale': SCALE,
           'res_scale': 1, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]}  # the demo's student, 2 blocks
# INT8 against FP32 on the same photograph: uint8 activations step by 1/255 of each tensor's range,
# so the output may move by a few such steps; 35 dB is a mean error of 1.8 grey levels
MIN_PSNR_TO_FP32 = 35.0


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """The demo's LMDBs of scikit-image photographs, a student checkpoint and its options file."""
    root = tmp_path_factory.mktemp('quantize')
    prepare_demo_data(str(root / 'data'), __import__('logging').getLogger('test'))
    torch.manual_seed(0)
    torch.save({'params': build_network(STUDENT).state_dict()}, root / 'student.pth')
    with open(os.path.join(PROJECT_ROOT, 'options', 'demo', 'demo_scratch_x4.yml')) as f:
        opt = yaml.safe_load(f)
    data = root / 'data'
    opt['network_g'] = dict(STUDENT)
    opt['datasets']['train'].update(dataroot_gt=str(data / 'train_gt.lmdb'), dataroot_lq=str(data / 'train_lq_x4.lmdb'))
    opt['datasets']['val'].update(dataroot_gt=str(data / 'val_gt.lmdb'), dataroot_lq=str(data / 'val_lq_x4.lmdb'))
    with open(root / 'student.yml', 'w') as f:
        yaml.safe_dump(opt, f)
    return {'root': root, 'model': f'{root / "student.yml"}:{root / "student.pth"}',
            'held_out': f'held_out={data / "val_gt.lmdb"},{data / "val_lq_x4.lmdb"}', 'opt': opt}


def quantize_main(run, out, *extra):
    quantize.main(['--model', run['model'], '--calib', '6', '--repeats', '1', '--latency-size', '32', '--out', str(out),
                   *extra])


@pytest.fixture(scope='module')
def x86_artifact(run):
    out = run['root'] / 'student.int8.pth'
    quantize_main(run, out)
    return out


def held_out_lq(run):
    pairs = load_pairs(*run['held_out'].split('=')[1].split(','))
    return pairs[0][1], pairs


# ----- calibration ------------------------------------------------------------------------------------

def test_calibration_draws_training_patches_with_the_runs_crops(run):
    opt = run['opt']
    patches = quantize.calibration_inputs(opt, SCALE, 5, seed=0)
    lq_size = opt['datasets']['train']['gt_size'] // SCALE
    assert [tuple(p.shape) for p in patches] == [(1, 3, lq_size, lq_size)] * 5
    again, other = quantize.calibration_inputs(opt, SCALE, 5, seed=0), quantize.calibration_inputs(opt, SCALE, 5, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(patches, again))
    assert not all(torch.equal(a, b) for a, b in zip(patches, other))
    assert len({tuple(p.flatten()[:64].tolist()) for p in patches}) == 5  # five different patches


# ----- x86 (torchao PT2E, inductor's int8 kernels) ----------------------------------------------------

def torchao_x86_alone(training=False):
    """torchao's X86InductorQuantizer with its default settings, without what dckd adds to it."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=training))


def converted_by(quantizer, net, patches):
    """`net` through PT2E with `quantizer`, calibrated on `patches`, converted (the reference graph)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(quantized.capture(Deployable(net, None, SCALE), None), quantizer)
    with torch.no_grad():
        for patch in patches:
            prepared(patch)
    return convert_pt2e(prepared)


def test_x86_upsamplers_run_in_int8_and_give_the_plain_quantizers_integers(run):
    """X86InductorQuantizer alone leaves an upsampler's convolution output in float, as the pixel
    shuffle after it is not an op it quantizes: dckd's moves the rounding before the shuffle, which
    only moves values. Same observers' ranges, same output to the bit; every pixel shuffle now reads
    8-bit values. Where nothing quantizes a pixel shuffle's output (SRVGGNetCompact adds it to the
    upsampled input), no rounding is added."""
    plain = torchao_x86_alone()
    patches = quantize.calibration_inputs(run['opt'], SCALE, 4, seed=0)
    lq = torch.from_numpy(held_out_lq(run)[0].transpose(2, 0, 1)[None].copy()).float() / 255.
    compact = {'type': 'SRVGGNetCompact_basicsr', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 2,
               'upscale': SCALE, 'act_type': 'prelu'}
    for network, shuffles_in_int8 in ((STUDENT, 2), (compact, 0)):
        torch.manual_seed(0)
        net = build_network(network).eval()
        ours, theirs = (converted_by(q, net, patches) for q in (quantized.quantizer('x86'), plain))
        with torch.no_grad():
            assert torch.equal(ours(lq), theirs(lq)), network['type']
        for graph, expected in ((ours, shuffles_in_int8), (theirs, 0)):
            shuffles = [n for n in graph.graph.nodes if n.target is torch.ops.aten.pixel_shuffle.default]
            assert len(shuffles) == (2 if network['type'] == 'EDSR' else 1)
            reading_int8 = [n for n in shuffles if 'dequantize' in str(n.args[0].target)]
            assert len(reading_int8) == expected, network['type']


@pytest.mark.slow
def test_x86_int8_output_stays_near_fp32_on_photographs(run, x86_artifact):
    lq, _ = held_out_lq(run)
    fp32 = NetworkModel('fp32', STUDENT, str(run['root'] / 'student.pth'))
    int8 = Int8Model('int8', str(x86_artifact))
    assert int8.scale == SCALE and int8.parameters == fp32.parameters
    fp32_out, int8_out = fp32.restore(lq), int8.restore(lq)
    assert int8_out.shape == fp32_out.shape == (lq.shape[0] * SCALE, lq.shape[1] * SCALE, 3)
    assert calculate_psnr(int8_out, fp32_out, crop_border=0) >= MIN_PSNR_TO_FP32
    assert not np.array_equal(int8_out, fp32_out)  # it is quantized


@pytest.mark.slow
def test_the_artifact_read_in_a_new_process_gives_the_same_output_to_the_bit(run, x86_artifact, tmp_path):
    lq, _ = held_out_lq(run)
    cv2.imwrite(str(tmp_path / 'lq.png'), lq)
    script = ('import sys, cv2, numpy as np, dckd_models\n'
              'from dckd.evaluate.models import Int8Model\n'
              'np.save(sys.argv[3], Int8Model("int8", sys.argv[1]).restore(cv2.imread(sys.argv[2])))\n')
    done = subprocess.run([sys.executable, '-c', script, str(x86_artifact), str(tmp_path / 'lq.png'),
                           str(tmp_path / 'out.npy')], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / 'out.npy'), Int8Model('int8', str(x86_artifact)).restore(lq))


class Calibrated(Restorer):
    def __init__(self, graph):
        super().__init__('in process')
        self.graph = graph

    @torch.no_grad()
    def _forward(self, lq):
        return self.graph(lq)


@pytest.mark.slow
def test_dckd_evaluate_scores_the_artifact_as_the_calibrated_model_in_process(run, x86_artifact, tmp_path):
    """The graph calibrated here, on the same patches, converted and compiled without a file,
    against dckd-evaluate reading the artifact."""
    opt = run['opt']
    net = NetworkModel('fp32', STUDENT, str(run['root'] / 'student.pth')).net
    prepared = quantized.prepare(net, quantized.recipe(STUDENT, SCALE, 'x86'))
    with torch.no_grad():
        for patch in quantize.calibration_inputs(opt, SCALE, 6, seed=0):
            prepared(patch)
    in_process = Calibrated(quantized.Compiled(quantized.convert(prepared)))
    _, pairs = held_out_lq(run)
    expected = evaluate(in_process, pairs, *convention('sr', SCALE))
    results = evaluate_cli.run(evaluate_cli.build_parser().parse_args(
        ['--scale', str(SCALE), '--device', 'cpu', '--benchmark', run['held_out'], '--model', f'int8={x86_artifact}']))
    assert results[0][2]['held_out'] == expected


# ----- onnx (onnxruntime's static quantization, QDQ) --------------------------------------------------

@pytest.mark.slow
def test_onnx_int8_runs_in_onnxruntime_near_fp32_and_is_evaluated_like_any_model(run, tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'student.int8.onnx'
    quantize_main(run, out, '--backend', 'onnx', '--benchmark', run['held_out'])
    table = [line.split(' | ') for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert table[0][:2] == ['| model', 'held_out PSNR / SSIM'] and [row[0] for row in table[1:]] == [
        '| FP32, eager', '| FP32, compiled', '| INT8, onnx']
    lq, pairs = held_out_lq(run)
    fp32 = NetworkModel('fp32', STUDENT, str(run['root'] / 'student.pth'))
    int8 = model_from_spec(f'int8={out}', SCALE)
    assert int8.scale == SCALE and int8.parameters == fp32.parameters
    assert calculate_psnr(int8.restore(lq), fp32.restore(lq), crop_border=0) >= MIN_PSNR_TO_FP32
    import onnx
    types = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= types  # QDQ
    assert np.isfinite(evaluate(int8, pairs, *convention('sr', SCALE))[0])


# ----- bad input: one message, nothing written --------------------------------------------------------

def no_datasets_train(run, tmp_path):
    opt = dict(run['opt'], datasets={'val': run['opt']['datasets']['val']})
    with open(tmp_path / 'no_train.yml', 'w') as f:
        yaml.safe_dump(opt, f)
    return ['--model', f'{tmp_path / "no_train.yml"}:{run["root"] / "student.pth"}']


def relative_training_data(run, tmp_path):
    """The run's options with its data paths relative to the folder it trained in, used elsewhere."""
    opt = copy.deepcopy(run['opt'])
    opt['datasets']['train'].update(dataroot_gt='data/train_gt.lmdb', dataroot_lq='data/train_lq_x4.lmdb')
    with open(tmp_path / 'relative.yml', 'w') as f:
        yaml.safe_dump(opt, f)
    return ['--model', f'{tmp_path / "relative.yml"}:{run["root"] / "student.pth"}']


BAD_ARGUMENTS = [  # (what the user did, extra arguments or a function of (run, tmp_path) giving them, message)
    ('the backend for another file type', ['--backend', 'onnx'], 'backend onnx writes a .onnx file'),
    ('per-tensor weights on x86', ['--per-tensor'], 'backend x86 quantizes weights per output channel only'),
    ('no calibration input', ['--calib', '0'], '--calib: give at least 1'),
    ('a folder of calibration images that is not there', ['--calib-images', 'nowhere'], '--calib-images nowhere: no such'),
    ('an options file without datasets.train', no_datasets_train, 'no datasets.train to calibrate on'),
    ('training data that is not there', lambda run, tmp_path: relative_training_data(run, tmp_path),
     'datasets.train.dataroot_gt data/train_gt.lmdb: not found from'),
    ('a checkpoint that is not there', lambda run, tmp_path: ['--model', f'{run["root"] / "student.yml"}:missing.pth'],
     'checkpoint not found: missing.pth'),
    ('a benchmark that is not prepared', ['--benchmark', 'Set5'], 'dckd-prepare benchmark'),
]


@pytest.mark.parametrize('change, message', [(c, m) for _, c, m in BAD_ARGUMENTS], ids=[w for w, _, _ in BAD_ARGUMENTS])
def test_bad_arguments_stop_with_one_message_before_any_work(run, tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    extra = change(run, tmp_path) if callable(change) else change
    out = tmp_path / 'student.int8.pth'
    argv = ['--model', run['model'], '--benchmark', run['held_out'], '--out', str(out)]
    with pytest.raises(SystemExit) as stopped:
        quantize.main(argv + extra)
    assert message in str(stopped.value)
    assert os.listdir(tmp_path) == [name for name in os.listdir(tmp_path) if name.endswith('.yml')]  # nothing written


def test_a_missing_backend_package_is_named_with_its_install_line(run, tmp_path, monkeypatch):
    real = quantized.importlib.util.find_spec
    monkeypatch.setattr(quantized.importlib.util, 'find_spec', lambda name: None if name == 'torchao' else real(name))
    with pytest.raises(SystemExit) as stopped:
        quantize.main(['--model', run['model'], '--out', str(tmp_path / 'x.pth')])
    assert 'needs the torchao package' in str(stopped.value) and 'pip install torchao==0.18.0' in str(stopped.value)
    assert os.listdir(tmp_path) == []


def test_an_existing_artifact_is_not_replaced_without_force(run, tmp_path):
    out = tmp_path / 'mine.pth'
    out.write_bytes(b'the user\'s file')
    with pytest.raises(SystemExit, match='exists; pass --force'):
        quantize.main(['--model', run['model'], '--out', str(out)])
    assert out.read_bytes() == b'the user\'s file'


@pytest.mark.slow
def test_damaged_foreign_and_mismatched_artifacts_give_one_message(run, x86_artifact, tmp_path):
    data = x86_artifact.read_bytes()
    (tmp_path / 'truncated.pth').write_bytes(data[:len(data) // 2])
    torch.save({'params': build_network(STUDENT).state_dict()}, tmp_path / 'checkpoint.pth')
    content = torch.load(x86_artifact, weights_only=True)
    content['state'].pop(next(iter(content['state'])))
    content['versions'] = {'torch': '2.0.0', 'torchao': '0.1'}
    torch.save(content, tmp_path / 'other_torch.pth')
    # a QAT run's artifact of torchao's X86InductorQuantizer alone, as dckd made them before its upsamplers
    # ran in int8: entries of the same names hold other shapes
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    graph = quantized.capture(Deployable(build_network(STUDENT).eval(), None, SCALE), None, batches=True)
    prepared = prepare_qat_pt2e(graph, torchao_x86_alone(training=True))
    prepared(quantize.calibration_inputs(run['opt'], SCALE, 2, seed=0)[0].repeat(2, 1, 1, 1))
    torch.save(quantized.artifact(quantized.recipe(STUDENT, SCALE, 'x86', training=True), prepared, 1),
               tmp_path / 'other_graph.pth')
    (tmp_path / 'truncated.onnx').write_bytes(b'\x08\x07not onnx')
    expected = {'truncated.pth': 'not a readable INT8 artifact (damaged or truncated?)',
                'checkpoint.pth': 'is not an INT8 artifact of dckd-quantize',
                'other_torch.pth': 'made with torch 2.0.0, torchao 0.1, this is torch',
                'other_graph.pth': 'does not match the one captured here (size mismatch for activation_post_process_',
                'truncated.onnx': 'not a readable ONNX model (damaged or truncated?)'}
    for name, message in expected.items():
        with pytest.raises(SystemExit) as stopped:
            model_from_spec(f'int8={tmp_path / name}', SCALE)
        assert message in str(stopped.value) and str(stopped.value).startswith('--model int8='), name


def test_an_artifact_holds_no_code_and_loads_weights_only(run, tmp_path):
    """What the artifact holds: plain values and tensors, so torch.load(weights_only=True) reads it."""
    net = build_network(STUDENT).eval()
    prepared = quantized.prepare(net, quantized.recipe(STUDENT, SCALE, 'x86'))
    with torch.no_grad():
        prepared(torch.rand(1, 3, 20, 24))
    torch.save(quantized.artifact(quantized.recipe(STUDENT, SCALE, 'x86'), prepared, 7), tmp_path / 'a.pth')
    content = torch.load(tmp_path / 'a.pth', weights_only=True)
    assert json.loads(json.dumps({k: v for k, v in content.items() if k != 'state'}))  # plain values only
    assert content['network_g'] == STUDENT and content['backend'] == 'x86' and content['parameters'] == 7
    observers = [key for key in content['state'] if key.endswith('.min_val')]
    assert observers and all(torch.isfinite(content['state'][key]).all() for key in observers)  # calibrated ranges


# ----- xnnpack (ExecuTorch's quantizer; executorch is an optional extra) ------------------------------

@pytest.mark.slow
def test_xnnpack_quantizes_weights_per_channel_or_per_tensor(run, tmp_path):
    pytest.importorskip('executorch')
    lq, _ = held_out_lq(run)
    fp32 = NetworkModel('fp32', STUDENT, str(run['root'] / 'student.pth')).restore(lq)
    shapes = {}
    for granularity in ('channel', 'tensor'):
        out = tmp_path / f'per_{granularity}.pth'
        quantize_main(run, out, '--backend', 'xnnpack', *(['--per-tensor'] if granularity == 'tensor' else []))
        assert calculate_psnr(model_from_spec(f'int8={out}', SCALE).restore(lq), fp32, crop_border=0) >= MIN_PSNR_TO_FP32
        pte = quantized.Pte(str(out.with_suffix('.pte')))(torch.from_numpy(lq[None].transpose(0, 3, 1, 2) / 255.).float())
        graph = model_from_spec(f'int8={out}', SCALE).graph(torch.from_numpy(lq[None].transpose(0, 3, 1, 2) / 255.).float())
        assert pte.shape == graph.shape and (pte - graph).abs().max() < 4 / 255  # XNNPACK's kernels, a few steps off
        state = torch.load(out, weights_only=True)['state']
        conv_first = [key for key in state if key.endswith('.min_val') and state[key].dim() == 1]
        shapes[granularity] = len(conv_first)
    assert shapes['channel'] > 0 and shapes['tensor'] == 0  # per-channel ranges only where asked for


def test_the_8_bit_page_shows_every_message_of_the_bad_arguments():
    with open(os.path.join(PROJECT_ROOT, 'docs', 'quantization.md')) as f:
        page = f.read()
    assert [what for what, _, message in BAD_ARGUMENTS if message not in page] == []


@pytest.mark.slow
def test_dckd_profile_times_an_artifact_on_the_cpu_beside_its_fp32_network(run, x86_artifact, tmp_path):
    from dckd import profile
    out = tmp_path / 'profile'
    profile.main(['--scale', str(SCALE), '--output-size', '64x48', '--device', 'cpu', '--precision', 'float32',
                  '--runs', '2', '--model', f'fp32={run["model"]}', '--model', f'int8={x86_artifact}', '--out', str(out)])
    with open(f'{out}.csv') as f:
        rows = {row['model']: row for row in __import__('csv').DictReader(f)}
    assert rows['int8']['MACs (G)'] == rows['fp32']['MACs (G)'] and float(rows['fp32']['MACs (G)']) > 0  # one network
    assert float(rows['int8']['cpu int8 (ms)']) > 0 and rows['fp32']['cpu int8 (ms)'] == ''
    assert float(rows['fp32']['cpu float32 (ms)']) > 0 and rows['int8']['cpu float32 (ms)'] == ''
