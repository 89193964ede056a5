"""The demo's own steps that CI can afford: its data (real scikit-image photographs) and its table."""
import logging

from dckd.demo.data import HELD_OUT_IMAGES, TRAIN_IMAGES, prepare_demo_data
from dckd.demo.run import results_table
from dckd.prepare.images import check_pairs, lmdb_shapes


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
