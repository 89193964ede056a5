"""The process's global random states (Python, NumPy, torch CPU and CUDA): captured, restored, kept.

Training draws from them outside dckd's own generators (a student's stochastic depth uses torch's;
BasicSR's augmentations use Python's), so exact resume saves and restores them, and code that must
not disturb them (validation, a sample's augmentation) runs inside `preserved()`.
"""
import contextlib
import random

import numpy as np
import torch


def capture():
    """This process's global random states, as values `torch.load(weights_only=True)` reads back."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        'python': random.getstate(),
        'numpy': (name, keys.tolist(), position, has_gauss, cached_gaussian),
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore(states):
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = states['numpy']
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states['torch'].cpu())
    if states['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states['cuda']])


@contextlib.contextmanager
def preserved():
    """Whatever runs inside leaves every global random state as it found it."""
    states = capture()
    try:
        yield
    finally:
        restore(states)


@contextlib.contextmanager
def seeded_python_and_numpy(*key):
    """Python's and NumPy's global generators seeded from `key` (integers) while inside, then put
    back as they were: what runs inside draws the same numbers for the same key, wherever it runs.
    Torch's generators are left alone (another thread may be drawing from them)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    words = np.random.SeedSequence([int(k) for k in key]).generate_state(4)
    random.seed(int.from_bytes(words.tobytes(), 'little'))
    np.random.seed(words)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
