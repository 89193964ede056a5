"""PairedImageDataset that pads pairs smaller than the training patch instead of failing.

Rain13K holds images smaller than Restormer's largest progressive patch (384); Restormer's own
loader reflect-pads them, BasicSR's raises. Validation and test behave exactly as BasicSR's.
"""
import numpy as np

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from dckd_utils.registry import register


def pad_to(img, height, width):
    """Reflect-pad an HWC image at the bottom/right up to at least height x width."""
    pad_h, pad_w = max(0, height - img.shape[0]), max(0, width - img.shape[1])
    if not (pad_h or pad_w):
        return img
    return np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode='reflect')


@register(DATASET_REGISTRY)
class PaddedPairedImageDataset(PairedImageDataset):
    """Options as BasicSR's PairedImageDataset (no `color: y`, mean/std in training)."""

    def __getitem__(self, index):
        if self.opt['phase'] != 'train':
            return super().__getitem__(index)
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        scale, gt_size = self.opt['scale'], self.opt['gt_size']
        paths = self.paths[index]
        img_gt = imfrombytes(self.file_client.get(paths['gt_path'], 'gt'), float32=True)
        img_lq = imfrombytes(self.file_client.get(paths['lq_path'], 'lq'), float32=True)
        img_gt = pad_to(img_gt, gt_size, gt_size)
        img_lq = pad_to(img_lq, gt_size // scale, gt_size // scale)
        img_gt, img_lq = paired_random_crop(img_gt, img_lq, gt_size, scale, paths['gt_path'])
        img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': paths['lq_path'], 'gt_path': paths['gt_path']}
