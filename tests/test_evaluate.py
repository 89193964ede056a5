"""dckd-evaluate and the figures: published bicubic numbers, agreement with an independent metric
implementation, the table files, self-ensemble, and figure sizes."""
import csv
import os

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from basicsr.archs import build_network
from dckd.evaluate.cli import build_parser, run
from dckd.evaluate.metrics import psnr_ssim
from dckd.evaluate.benchmarks import load_pairs
from dckd.evaluate.models import BicubicModel, NetworkModel, model_from_spec, self_ensemble
from dckd.figures import comparison, curves
from dckd.prepare import sr
from conftest import benchmark_images, edsr


@pytest.fixture(scope='module')
def prepared_set5(tmp_path_factory):
    root = tmp_path_factory.mktemp('benchmarks')
    sr.prepare_benchmark(os.path.dirname(benchmark_images('Set5')[0]), str(root), 'Set5')
    return root


def evaluate_cli(*argv):
    return run(build_parser().parse_args(list(argv)))


def test_bicubic_on_set5_x4_matches_the_published_28_42_db(prepared_set5, tmp_path):
    results = evaluate_cli('--scale', '4', '--root', str(prepared_set5), '--benchmark', 'Set5', '--model', 'bicubic',
                           '--out', str(tmp_path / 'bicubic_x4'))
    psnr, ssim = results[0][2]['Set5']
    assert psnr == pytest.approx(28.42, abs=0.05)
    assert ssim == pytest.approx(0.8104, abs=0.003)  # published bicubic SSIM for Set5 x4


def test_bicubic_on_set5_x2_matches_the_published_33_66_db(prepared_set5):
    results = evaluate_cli('--scale', '2', '--root', str(prepared_set5), '--benchmark', 'Set5', '--model', 'bicubic')
    assert results[0][2]['Set5'][0] == pytest.approx(33.66, abs=0.05)


def y_channel(bgr):
    """ITU-R BT.601 luma of an 8-bit image, in [16, 235], written out independently of BasicSR."""
    b, g, r = (bgr[..., i].astype(np.float64) / 255. for i in range(3))
    return 16. + 65.481 * r + 128.553 * g + 24.966 * b


def test_metrics_agree_with_scikit_image_on_the_y_channel(prepared_set5):
    scale = 4
    for name in ('baby', 'butterfly', 'woman'):
        gt = cv2.imread(str(prepared_set5 / 'Set5/GTmod12' / f'{name}.png'))
        out = BicubicModel(scale).restore(cv2.imread(str(prepared_set5 / f'Set5/LRbicx{scale}' / f'{name}.png')))
        ours_psnr, ours_ssim = psnr_ssim(out, gt, y_channel=True, border=scale)
        crop = (slice(scale, -scale), slice(scale, -scale))
        ref_y, out_y = y_channel(gt)[crop], y_channel(out)[crop]
        assert ours_psnr == pytest.approx(peak_signal_noise_ratio(ref_y, out_y, data_range=255), abs=0.01)
        reference_ssim = structural_similarity(ref_y, out_y, data_range=255, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False)
        assert ours_ssim == pytest.approx(reference_ssim, abs=2e-3)


def test_rgb_convention_for_deblurring_uses_every_channel():
    gt = np.full((32, 32, 3), 100, np.uint8)
    out = gt.copy()
    out[..., 0] += 10  # blue only: affects Y a little and RGB a lot
    rgb_psnr, _ = psnr_ssim(out, gt, y_channel=False, border=0)
    assert rgb_psnr == pytest.approx(10 * np.log10(255**2 / (100 / 3)), abs=1e-6)


def test_tables_are_written_as_markdown_and_csv_and_never_overwritten(prepared_set5, tmp_path):
    out = str(tmp_path / 'table')
    results = evaluate_cli('--scale', '4', '--root', str(prepared_set5), '--benchmark', 'Set5', '--model', 'bicubic',
                           '--out', out)
    markdown = open(out + '.md').read()
    psnr, ssim = results[0][2]['Set5']
    assert '| model | params | Set5 PSNR / SSIM |' in markdown and f'| bicubic | - | {psnr:.2f} / {ssim:.4f} |' in markdown
    row = list(csv.DictReader(open(out + '.csv')))[0]
    assert row['model'] == 'bicubic' and float(row['Set5_psnr']) == pytest.approx(psnr, abs=1e-4)
    with pytest.raises(SystemExit, match='exists'):
        evaluate_cli('--scale', '4', '--root', str(prepared_set5), '--benchmark', 'Set5', '--model', 'bicubic',
                     '--out', out)


def test_an_unprepared_benchmark_is_named_before_any_model_is_loaded(tmp_path):
    with pytest.raises(FileNotFoundError, match='dckd-prepare benchmark'):
        evaluate_cli('--scale', '4', '--root', str(tmp_path), '--benchmark', 'Urban100', '--model', 'x=nowhere.yml')


def dihedral_outputs_by_hand(image):
    """The 8 rotations/flips of a (H, W) array, numpy's rot90 and flips, independent of the code."""
    rotations = [np.rot90(image, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def test_self_ensemble_averages_the_eight_transforms_mapped_back():
    n = 6
    ramp = np.tile(np.arange(n, dtype=np.float32), (n, 1))  # depends on the column: not equivariant
    image = torch.rand(1, 1, n, n)
    forward = lambda x: x + torch.from_numpy(ramp.copy())  # noqa: E731
    # for an input transformed by g, the output mapped back is image + g^-1(ramp): the mean over the
    # group of g(ramp) (every g^-1 is again in the group)
    expected = image + torch.from_numpy(np.mean(dihedral_outputs_by_hand(ramp), axis=0).copy())
    assert torch.allclose(self_ensemble(forward, image), expected, atol=1e-6)
    assert torch.allclose(self_ensemble(lambda x: x * 2, image), image * 2)


def test_windowed_networks_are_padded_to_the_window(tmp_path):
    swinir = dict(type='SwinIR', upscale=2, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle')
    torch.save({'params_ema': build_network(swinir).state_dict()}, tmp_path / 'swinir.pth')
    model = NetworkModel('SwinIR', swinir, str(tmp_path / 'swinir.pth'), self_ensemble=True)
    assert model.restore(np.zeros((13, 10, 3), np.uint8)).shape == (26, 20, 3)


def test_comparison_figure_has_the_expected_size(prepared_set5, tmp_path):
    torch.save({'params': build_network(edsr(8, 1, 4)).state_dict()}, tmp_path / 'student.pth')
    options = tmp_path / 'student.yml'
    options.write_text(f'network_g: {edsr(8, 1, 4)}\n'.replace("'", ''))
    out = tmp_path / 'figure.png'
    comparison.main(['--scale', '4', '--root', str(prepared_set5), '--benchmark', 'Set5', '--image', 'bird',
                     '--model', 'bicubic', '--model', f'Student={options}:{tmp_path / "student.pth"}', '--panel', '120',
                     '--out', str(out)])
    figure = cv2.imread(str(out))
    # bird GTmod12 is 288 x 288: overview (120 + 22) square, then GT + 2 models, each 120 wide + 4 gap
    assert figure.shape == (142, 142 + 3 * 124, 3)
    with pytest.raises(SystemExit, match='exists'):
        comparison.main(['--benchmark', 'Set5', '--image', 'bird', '--model', 'bicubic', '--out', str(out)])


def test_nearest_shows_the_lr_input_each_pixel_a_scale_by_scale_block():
    lq = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = model_from_spec('nearest', scale=2).restore(lq)
    assert out.shape == (4, 6, 3)
    for y, x in np.ndindex(4, 6):
        assert (out[y, x] == lq[y // 2, x // 2]).all()


def test_comparison_has_one_row_per_image_and_the_gt_last(prepared_set5, tmp_path):
    out = tmp_path / 'rows.png'
    comparison.main(['--scale', '4', '--root', str(prepared_set5), '--benchmark', 'Set5', '--image', 'bird',
                     '--image', 'baby', '--model', 'nearest', '--model', 'bicubic', '--crop', '12,24,40',
                     '--panel', '80', '--out', str(out)])
    figure = cv2.imread(str(out))
    # two square images: per row an overview (80 + 22) square, then nearest, bicubic and GT, each 80 + 4 gap
    assert figure.shape == (2 * 102 + 4, 102 + 3 * 84, 3)
    pairs = {key: (lq, gt) for key, lq, gt in load_pairs(str(prepared_set5 / 'Set5' / 'GTmod12'),
                                                       str(prepared_set5 / 'Set5' / 'LRbicx4'))}
    for row, image in enumerate(('bird', 'baby')):
        lq, gt = pairs[image]
        top = row * 106
        gt_panel = cv2.resize(gt[24:64, 12:52], (80, 80), interpolation=cv2.INTER_NEAREST)
        assert (figure[top:top + 80, -80:] == gt_panel).all()  # the last panel: the GT's crop
        lr_panel = cv2.resize(lq[6:16, 3:13].repeat(4, 0).repeat(4, 1), (80, 80), interpolation=cv2.INTER_NEAREST)
        assert (figure[top:top + 80, 106:186] == lr_panel).all()  # the first: the LR input's


def test_automatic_crop_lands_where_the_models_disagree():
    gt = np.full((64, 64, 3), 100, np.uint8)
    a, b = gt.copy(), gt.copy()
    b[40:56, 8:24] = 200
    assert comparison.most_different_crop([gt, a, b], 16) == (8, 40)


BASICSR_LOG = '''2026-11-24 14:00:01,000 INFO: [run..][epoch:  0, iter:     100, lr:(1.000e-03,)] l_pix: 1e-2
2026-11-24 14:00:02,000 INFO: [run..][epoch:  0, iter:     200, lr:(1.000e-03,)] l_pix: 1e-2
2026-11-24 14:00:03,000 INFO: Validation Set5
\t # psnr: 30.5000\tBest: 30.5000 @ 200 iter
\t # ssim: 0.8500\tBest: 0.8500 @ 200 iter

2026-11-24 14:00:04,000 INFO: [run..][epoch:  1, iter:     400, lr:(1.000e-03,)] l_pix: 1e-2
2026-11-24 14:00:05,000 INFO: Validation Set5
\t # psnr: 31.2500\tBest: 31.2500 @ 400 iter
\t # ssim: 0.8600\tBest: 0.8600 @ 400 iter
'''


def test_training_curves_from_basicsr_logs_and_from_tensorboard_events(tmp_path):
    logged = tmp_path / 'experiments' / 'from_logs'
    os.makedirs(logged)
    (logged / 'train_from_logs_20261124_140000.log').write_text(BASICSR_LOG)
    assert curves.load_curve(str(logged), None, 'psnr') == {200: 30.5, 400: 31.25}
    assert curves.load_curve(str(logged), 'Set5', 'ssim') == {200: 0.85, 400: 0.86}

    from torch.utils.tensorboard import SummaryWriter
    with_events = tmp_path / 'experiments' / 'from_events'
    os.makedirs(with_events)
    writer = SummaryWriter(str(tmp_path / 'tb_logger' / 'from_events'))
    for step, value in ((500, 29.0), (1000, 30.0)):
        writer.add_scalar('metrics/Set5/psnr', value, step)
    writer.close()
    assert curves.load_curve(str(with_events), 'Set5', 'psnr') == {500: 29.0, 1000: 30.0}

    out = tmp_path / 'curves.png'
    curves.main([str(logged), str(with_events), '--metric', 'psnr', '--out', str(out)])
    assert cv2.imread(str(out)).shape == (520, 900, 3)


DCKD_LOG = '''2026-11-24 14:00:01,000 INFO: [run..][epoch:  0, iter:     100, lr:(1.000e-03,)] [eta: 0:01:00, \
time (data): 0.070 (0.005)] l_pix: 3.5e-02 l_kd: 2.0e-02 l_dcl: 4.1e-02 l_ce: 9.0e-04
2026-11-24 14:00:02,000 INFO: [run..][epoch:  1, iter:   1,200, lr:(1.000e-03,)] [eta: 0:00:30, \
time (data): 0.070 (0.005)] l_pix: 2.5e-02 l_kd: 1.5e-02 l_dcl: 4.0e-02 l_ce: 8.0e-04
2026-11-24 14:00:03,000 INFO: Validation Set5
\t # psnr: 30.5000\tBest: 30.5000 @ 1200 iter
'''


def test_loss_terms_from_basicsr_logs_and_events_and_their_panels(tmp_path):
    logged = tmp_path / 'experiments' / 'dckd_run'
    os.makedirs(logged)
    (logged / 'train_dckd_run_20261124_140000.log').write_text(DCKD_LOG)
    assert curves.load_losses(str(logged)) == {'l_pix': {100: 0.035, 1200: 0.025}, 'l_kd': {100: 0.02, 1200: 0.015},
                                               'l_dcl': {100: 0.041, 1200: 0.04}, 'l_ce': {100: 9e-4, 1200: 8e-4}}

    from torch.utils.tensorboard import SummaryWriter
    with_events = tmp_path / 'experiments' / 'logits_run'
    os.makedirs(with_events)
    writer = SummaryWriter(str(tmp_path / 'tb_logger' / 'logits_run'))
    for step, value in ((100, 0.03), (200, 0.02)):
        writer.add_scalar('losses/l_pix', value, step)
        writer.add_scalar('metrics/Set5/psnr', 29 + value, step)
    writer.close()
    assert curves.load_losses(str(with_events)) == {'l_pix': {100: pytest.approx(0.03), 200: pytest.approx(0.02)}}

    out = tmp_path / 'with_losses.png'
    curves.main([f'DCKD={logged}', f'Logits KD={with_events}', '--losses', '--out', str(out)])
    assert cv2.imread(str(out)).shape == (520 + 300, 900, 3)  # the metric, then one row of loss panels
    assert curves.labelled_folder(f'Logits KD={with_events}') == ('Logits KD', str(with_events))
    assert curves.labelled_folder(str(logged)) == ('dckd_run', str(logged))


def test_a_teacher_is_evaluated_from_the_training_options_with_at_network_t(tmp_path):
    teacher, student = edsr(16, 1, 2), edsr(8, 1, 2)
    torch.save({'params': build_network(teacher).state_dict()}, tmp_path / 'teacher.pth')
    options = tmp_path / 'train.yml'
    import yaml
    options.write_text(yaml.safe_dump({'network_g': student, 'network_t': teacher,
                                       'path': {'pretrain_network_t': str(tmp_path / 'teacher.pth')}}))
    from dckd.evaluate.models import model_from_spec
    model = model_from_spec(f'Teacher={options}@network_t', scale=2)
    expected = sum(v.numel() for v in torch.load(tmp_path / 'teacher.pth', weights_only=True)['params'].values())
    assert model.parameters == expected
    with pytest.raises(ValueError, match='pretrain_network_g'):
        model_from_spec(f'Student={options}', scale=2)


@pytest.fixture(scope='module')
def photographs(tmp_path_factory):
    """Low-quality photographs without ground truth: two scikit-image photographs, shrunk to LR size."""
    import skimage.data
    folder = tmp_path_factory.mktemp('photos')
    for name, size in (('astronaut', (72, 72)), ('chelsea', (112, 75))):
        image = cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f'{name}.png'), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return folder


def test_niqe_gives_the_official_matlab_value_for_baboon():
    """BasicSR documents the official MATLAB code's NIQE of baboon (Set14's) as 5.7296."""
    from dckd.evaluate.metrics import niqe
    baboon = [path for path in benchmark_images('Set14') if os.path.basename(path).startswith('baboon')]
    assert niqe(cv2.imread(baboon[0]), border=0) == pytest.approx(5.7296, abs=5e-4)


def test_photographs_without_ground_truth_are_scored_by_niqe(photographs, tmp_path):
    from basicsr.metrics import calculate_niqe
    results = evaluate_cli('--scale', '4', '--photos', f'phone={photographs}', '--model', 'nearest',
                           '--out', str(tmp_path / 'photos'))
    expected = np.mean([calculate_niqe(np.repeat(np.repeat(cv2.imread(str(p)), 4, 0), 4, 1), 4, convert_to='y')
                        for p in sorted(photographs.iterdir())])  # the LR photographs, each pixel 4 x 4
    assert results[0][2]['phone'][0] == pytest.approx(expected)
    table = (tmp_path / 'photos.md').read_text()
    assert '| model | params | phone NIQE |' in table and f'| LR | - | {expected:.3f} |' in table
    assert 'NIQE (no reference, lower is better), Y channel, border 4' in table
    with pytest.raises(SystemExit, match='give --benchmark'):
        evaluate_cli('--scale', '4', '--model', 'nearest')


def test_a_comparison_on_photographs_shows_every_model_with_its_niqe_and_no_gt(photographs, tmp_path):
    out = tmp_path / 'photos.png'
    comparison.main(['--scale', '4', '--photos', f'phone={photographs}', '--image', 'astronaut', '--model', 'nearest',
                     '--model', 'bicubic', '--crop', '0,0,64', '--panel', '80', '--out', str(out)])
    figure = cv2.imread(str(out))
    # astronaut is 72 x 72 (288 x 288 enlarged): a square overview of (80 + 22), then 2 models of 80 + 4
    assert figure.shape == (102, 102 + 2 * 84, 3)
    lq = cv2.imread(str(photographs / 'astronaut.png'))
    lr_panel = cv2.resize(lq[:16, :16].repeat(4, 0).repeat(4, 1), (80, 80), interpolation=cv2.INTER_NEAREST)
    assert (figure[:80, 106:186] == lr_panel).all()  # the first panel: the LR input's crop; the last no GT
