"""Writing images into LMDBs that BasicSR's LMDB backend reads (PNG bytes + meta_info.txt)."""
import os

import cv2
import lmdb
from tqdm import tqdm


def write_image_lmdb(lmdb_path, items, count=None, compress_level=1):
    """Write (key, BGR uint8 image) pairs to `lmdb_path` (must end with .lmdb and not exist).

    meta_info.txt gets one `<key>.png (h,w,c) <compress_level>` line per image, BasicSR's format.
    """
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'LMDB folder names end with .lmdb: {lmdb_path}')
    if os.path.exists(lmdb_path):
        raise FileExistsError(f'{lmdb_path} exists; remove it or choose another output.')
    encoded = []
    for key, img in tqdm(items, total=count, unit='image', desc=f'encode {os.path.basename(lmdb_path)}'):
        ok, png = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
        if not ok:
            raise RuntimeError(f'could not encode image {key}')
        shape = img.shape if img.ndim == 3 else img.shape + (1, )
        encoded.append((key, png.tobytes(), shape))
    total = sum(len(data) for _, data, _ in encoded)
    os.makedirs(os.path.dirname(os.path.abspath(lmdb_path)), exist_ok=True)
    env = lmdb.open(lmdb_path, map_size=max(total * 2, 1 << 24))
    with env.begin(write=True) as txn:
        for key, data, _ in encoded:
            txn.put(key.encode('ascii'), data)
    env.close()
    with open(os.path.join(lmdb_path, 'meta_info.txt'), 'w') as meta:
        meta.writelines(f'{key}.png ({h},{w},{c}) {compress_level}\n' for key, _, (h, w, c) in encoded)
    return len(encoded)
