"""Output handling shared by every preparation: refuse to overwrite, or report finished work."""
import os

import cv2

from dckd.lmdb_writer import ImageLmdbWriter
from dckd.partial_output import PartialOutput


class FolderWriter(PartialOutput):
    """PNG files `<key>.png` in a folder, written into `<path>.partial` and renamed when complete."""

    def __init__(self, path, overwrite=False):
        super().__init__(path, overwrite)
        self.count = 0
        os.makedirs(self.partial)

    def put(self, key, img):
        if not cv2.imwrite(os.path.join(self.partial, f'{key}.png'), img):
            raise RuntimeError(f'could not write {key}.png into {self.path}')
        self.count += 1

    def close(self):
        self.publish()
        return self.count


def open_writer(path, overwrite):
    """An LMDB writer for `*.lmdb` paths, a PNG folder writer otherwise."""
    return ImageLmdbWriter(path, overwrite) if path.endswith('.lmdb') else FolderWriter(path, overwrite)


def already_prepared(paths, overwrite):
    """True when every output exists (and `overwrite` is off): the caller only re-checks them.

    Some but not all outputs present means an earlier run was cut short or the paths clash with
    other data: that is an error naming them, never a silent rebuild.
    """
    present = [p for p in paths if os.path.exists(p)]
    if overwrite or not present:
        return False
    if len(present) < len(paths):
        missing = [p for p in paths if p not in present]
        raise FileExistsError(f'{present} exist but {missing} do not; remove the former or pass --overwrite.')
    return True
