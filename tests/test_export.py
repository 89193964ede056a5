"""dckd-export: the EMA student as ONNX (dynamic height and width) and as a torch.export program,
run with onnxruntime / torch.export.load on inputs of other sizes and compared with the network as
dckd-evaluate runs it (padded to whole windows and cropped back), within 1e-4."""
import os

import numpy as np
import pytest
import torch
import yaml

from basicsr.archs import build_network
from dckd import export
from dckd.evaluate.models import NetworkModel

onnxruntime = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

NETWORKS = {
    'SwinIR x2': (dict(type='SwinIR', upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1., depths=[2],
                       embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle'), 2),
    'RCAN x4': (dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=2, squeeze_factor=4,
                     upscale=4), 4),
    'NAFNet x1': (dict(type='NAFNet', img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1],
                       dec_blk_nums=[1, 1]), 1),
}


def trained_student(tmp_path, network, scale):
    """An options file and a BasicSR checkpoint with different 'params' and 'params_ema'."""
    torch.manual_seed(0)
    online, ema = build_network(dict(network)), build_network(dict(network))
    checkpoint = tmp_path / 'net_g_latest.pth'
    torch.save({'params': online.state_dict(), 'params_ema': ema.state_dict()}, checkpoint)
    options = tmp_path / 'test.yml'
    options.write_text(yaml.safe_dump({'scale': scale, 'network_g': network,
                                       'path': {'pretrain_network_g': str(checkpoint)}}))
    return str(options), str(checkpoint)


@pytest.mark.parametrize('name', NETWORKS)
def test_the_onnx_file_runs_any_size_as_the_network_does(tmp_path, name, capsys):
    network, scale = NETWORKS[name]
    options, checkpoint = trained_student(tmp_path, network, scale)
    out = str(tmp_path / 'student.onnx')
    export.main(['--model', options, '--out', out])
    assert 'largest difference from PyTorch on a 37x29 input' in capsys.readouterr().out
    evaluated = NetworkModel('student', network, checkpoint)  # params_ema, padded as evaluated
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    for size in ((16, 16), (19, 33), (41, 22)):
        images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        got = session.run(None, {'lq': images.numpy()})[0]
        expected = evaluated._forward(images).numpy()
        assert got.shape == (1, 3, size[0] * scale, size[1] * scale)
        assert np.abs(got - expected).max() <= 1e-4


def test_a_torch_export_program_runs_any_size(tmp_path):
    network, scale = NETWORKS['SwinIR x2']
    options, checkpoint = trained_student(tmp_path, network, scale)
    out = str(tmp_path / 'student.pt2')
    export.main(['--model', options, '--out', out])
    program = torch.export.load(out).module()
    evaluated = NetworkModel('student', network, checkpoint)
    for size in ((23, 18), (40, 33)):
        images = torch.rand(1, 3, *size)
        with torch.no_grad():
            assert (program(images) - evaluated._forward(images)).abs().max() <= 1e-4


def test_existing_files_and_unknown_formats_are_refused(tmp_path):
    network, scale = NETWORKS['RCAN x4']
    options, _ = trained_student(tmp_path, network, scale)
    (tmp_path / 'exists.onnx').write_text('mine')
    with pytest.raises(SystemExit, match='exists.onnx exists; pass --force'):
        export.main(['--model', options, '--out', str(tmp_path / 'exists.onnx')])
    assert (tmp_path / 'exists.onnx').read_text() == 'mine'
    with pytest.raises(SystemExit, match=r'end it in .onnx \(ONNX\) or .pt2'):
        export.main(['--model', options, '--out', str(tmp_path / 'student.tflite')])
    assert not os.path.exists(tmp_path / 'student.tflite')
