"""HR images alone, for a network that learns to reconstruct them (VQGANModel)."""
import random

from basicsr.data.single_image_dataset import SingleImageDataset
from basicsr.data.transforms import augment
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from dckd_utils.registry import register


@register(DATASET_REGISTRY)
class HRImageDataset(SingleImageDataset):
    """BasicSR's SingleImageDataset reading `dataroot_gt` (a folder, the list of `meta_info_file`,
    or an LMDB); in training a random `gt_size` patch of each image, flipped and rotated with
    `use_hflip` and `use_rot`, in validation the whole image. A sample holds the image as 'gt' and
    its path as 'gt_path' and 'lq_path' (BasicSR's validation names images by 'lq_path')."""

    def __init__(self, opt):
        super().__init__({**opt, 'dataroot_lq': opt['dataroot_gt']})
        self.opt = opt

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        path = self.paths[index]
        img = imfrombytes(self.file_client.get(path, 'lq'), float32=True)
        if self.opt['phase'] == 'train':
            size, (height, width) = self.opt['gt_size'], img.shape[:2]
            if min(height, width) < size:
                raise ValueError(f'datasets.train: {path} is {width}x{height}, smaller than gt_size {size}: remove it '
                                 'or lower gt_size.')
            top, left = random.randint(0, height - size), random.randint(0, width - size)
            img = augment(img[top:top + size, left:left + size], self.opt['use_hflip'], self.opt['use_rot'])
        return {'gt': img2tensor(img, bgr2rgb=True, float32=True), 'gt_path': path, 'lq_path': path}
