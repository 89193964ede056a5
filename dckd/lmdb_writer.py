"""Writing images into LMDBs that BasicSR's LMDB backend reads (PNG bytes + meta_info.txt)."""
import os

import cv2
import lmdb

from dckd.partial_output import PartialOutput


class ImageLmdbWriter(PartialOutput):
    """Streams (key, BGR uint8 image) pairs into `<path>`, which must end with .lmdb.

    Writes into `<path>.partial` and renames it on `close()`, so an interrupted run never leaves
    something that looks finished. An existing `<path>` is refused unless `overwrite` is set (it
    is then replaced only once the new one is complete). meta_info.txt gets one
    `<key>.png (h,w,c) <compress_level>` line per image, BasicSR's format.
    """

    def __init__(self, path, overwrite=False, compress_level=1, commit_every=256):
        if not path.endswith('.lmdb'):
            raise ValueError(f'LMDB folder names end with .lmdb: {path}')
        super().__init__(path, overwrite)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.env = lmdb.open(self.partial, map_size=1 << 30)
        self.compress_level, self.commit_every = compress_level, commit_every
        self.pending, self.meta_lines, self.keys = [], [], set()

    def put(self, key, img):
        if key in self.keys:
            raise KeyError(f'duplicate key {key} in {self.path}')
        ok, png = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, self.compress_level])
        if not ok:
            raise RuntimeError(f'could not encode image {key} for {self.path}')
        height, width = img.shape[:2]
        channels = img.shape[2] if img.ndim == 3 else 1
        self.keys.add(key)
        self.pending.append((key.encode('ascii'), png.tobytes()))
        self.meta_lines.append(f'{key}.png ({height},{width},{channels}) {self.compress_level}\n')
        if len(self.pending) >= self.commit_every:
            self._commit()

    def _commit(self):
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, data in self.pending:
                        txn.put(key, data)
                break
            except lmdb.MapFullError:  # grow the map and write the batch again
                self.env.set_mapsize(self.env.info()['map_size'] * 2)
        self.pending = []

    def close(self):
        self._commit()
        self.env.close()
        with open(os.path.join(self.partial, 'meta_info.txt'), 'w') as meta:
            meta.writelines(self.meta_lines)
        self.publish()
        return len(self.meta_lines)

    def abandon(self):
        self.env.close()


def write_image_lmdb(path, items, overwrite=False):
    """Write an iterable of (key, image) to `path`; returns the number of images."""
    with ImageLmdbWriter(path, overwrite) as writer:
        for key, img in items:
            writer.put(key, img)
    return len(writer.meta_lines)
