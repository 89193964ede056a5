"""The demo's own steps that CI can afford: its data (real scikit-image photographs), its table and
its pictures."""
import logging
import os
import shutil

from dckd.demo.data import HELD_OUT_IMAGES, TRAIN_IMAGES, prepare_demo_data
from dckd.demo.run import results_table
from dckd_data.image_files import check_pairs, lmdb_shapes


def test_demo_data_are_paired_x4_lmdbs_with_held_out_photographs(tmp_path):
    prepare_demo_data(str(tmp_path), logging.getLogger('test'))
    train_gt, train_lq = lmdb_shapes(str(tmp_path / 'train_gt.lmdb')), lmdb_shapes(str(tmp_path / 'train_lq_x4.lmdb'))
    assert check_pairs(train_gt, train_lq, 4, 'demo train') == len(train_gt) > 100
    assert set(train_gt.values()) == {(96, 96, 3)}
    val_gt = lmdb_shapes(str(tmp_path / 'val_gt.lmdb'))
    assert sorted(val_gt) == sorted(HELD_OUT_IMAGES)
    assert not set(HELD_OUT_IMAGES) & set(TRAIN_IMAGES)
    assert all(key.rsplit('_s', 1)[0] in TRAIN_IMAGES for key in train_gt)
    prepare_demo_data(str(tmp_path), logging.getLogger('test'))  # a second run reuses them


def test_demo_table_lists_every_model_with_its_time():
    table = results_table([('bicubic', 0, 30.741, 0.82981, None), ('DCKD', 40300, 31.004, 0.83901, 173.2)],
                          'VQGAN note')
    assert '| bicubic | - | 30.74 | 0.8298 | - |' in table
    assert '| DCKD | 40.3k | 31.00 | 0.8390 | 173 s |' in table
    assert table.rstrip().endswith('VQGAN note')


def student_log(iterations, psnr_start):
    """A train_*.log as BasicSR writes it: a loss line every 100 iterations, each followed by a validation."""
    lines = []
    for step, iteration in enumerate(iterations):
        lines += [f'2026-12-03 11:00:{step:02d},000 INFO: [demo_..][epoch:  1, iter:     {iteration}, lr:(1.000e-03,)] '
                  f'[eta: 0:00:10, time (data): 0.060 (0.004)] l_pix: {0.05 - step * 0.01:.4e} l_kd: 2.0e-02',
                  f'2026-12-03 11:00:{step:02d},500 INFO: Validation skimage_held_out',
                  f'\t # psnr: {psnr_start + step:.4f}\tBest: {psnr_start + step:.4f} @ {iteration} iter',
                  f'\t # ssim: 0.8000\tBest: 0.8000 @ {iteration} iter']
    return '\n'.join(lines) + '\n'


def test_the_demo_draws_its_comparison_and_curves_and_keeps_earlier_results(tmp_path, monkeypatch):
    """The demo's last step, on its real data and option files, with networks of the demo's
    architectures (random weights, as training would have left them) and logs of their runs."""
    import cv2
    import torch
    import yaml
    from basicsr.archs import build_network
    from dckd.demo import run
    from conftest import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    shutil.copytree(os.path.join(PROJECT_ROOT, 'options', 'demo'), tmp_path / 'options' / 'demo')
    prepare_demo_data('datasets/demo', logging.getLogger('test'))
    for index, (_, name) in enumerate(run.STEPS):
        with open(f'options/demo/{name}.yml') as f:
            network = build_network(yaml.safe_load(f)['network_g'])
        os.makedirs(f'experiments/{name}/models')
        torch.save({'params': network.state_dict()}, run.CHECKPOINT.format(name))
        (tmp_path / 'experiments' / name / f'train_{name}_20261203_110000.log').write_text(
            student_log((100, 200, 300), 28.0 + index))
    (tmp_path / run.COMPARISON).write_text('an earlier run')
    run.keep_earlier(run.COMPARISON)
    archived = [f for f in os.listdir('experiments') if f.startswith('demo_comparison_archived_')]
    assert len(archived) == 1 and (tmp_path / 'experiments' / archived[0]).read_text() == 'an earlier run'

    run.draw_figures(HELD_OUT_IMAGES)
    comparison = cv2.imread(run.COMPARISON)
    # two rows of (144 + 22) px and a 4 px gap; per row the overview (chelsea's GT is 448 x 300, rocket's
    # 640 x 424: 248 and 251 px wide at 166 px high), then 6 models and the GT, each 144 + 4 wide
    assert comparison.shape == (2 * 166 + 4, 251 + 7 * 148, 3)
    assert os.path.getsize(run.COMPARISON) < 300 * 1024
    curves_png = cv2.imread(run.CURVES)
    assert curves_png.shape == (520 + 300, 900, 3)  # validation PSNR, then the loss panels of the 3 students
