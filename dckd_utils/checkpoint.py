"""Loading checkpoints written by other projects, without running their pickled code.

A Lightning checkpoint (taming-transformers' VQGAN) pickles objects of its training code next to
the weights, which `torch.load(weights_only=True)` refuses. Instead of falling back to
`weights_only=False` (arbitrary code execution), each foreign class is replaced by an inert stub:
the weights load, the rest becomes empty objects. Globals torch blocks outright (os, subprocess,
builtins' exec...) still fail.
"""
import os
import torch


def _inert_stub(qualified_name):
    return type(qualified_name.rsplit('.', 1)[-1], (), {
        '__init__': lambda self, *args, **kwargs: None,
        '__setstate__': lambda self, state: None,
        '__module__': 'dckd_utils.checkpoint.stub',
    })


def load_checkpoint(path, what='checkpoint'):
    """Load a torch checkpoint on the CPU, tolerating foreign pickled objects (see module doc)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    serialization = torch.serialization
    try:
        if not hasattr(serialization, 'get_unsafe_globals_in_checkpoint'):  # torch < 2.5: no stubs
            return torch.load(path, map_location='cpu', weights_only=True)
        try:
            foreign = serialization.get_unsafe_globals_in_checkpoint(path)
        except (RuntimeError, ValueError):  # legacy (non-zip) files cannot be inspected
            foreign = []
        with serialization.safe_globals([(_inert_stub(name), name) for name in foreign]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:
        raise RuntimeError(f'cannot load {what} {path} safely: {error}') from error


def refuse_to_replace(path, force):
    """The converters never replace a file the user has, unless --force says so."""
    if os.path.exists(path) and not force:
        raise SystemExit(f'{path} exists; pass --force to replace it.')


def save_atomically(obj, path):
    """torch.save through `<path>.tmp`, flushed to the disk, then renamed over `path`: a crash, a
    kill or a full disk at any moment leaves either the old file or the complete new one under
    `path` (and no stray .tmp). An OSError (ENOSPC...) propagates after the cleanup."""
    tmp_path = path + '.tmp'
    try:
        with open(tmp_path, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _sync_folder(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def _sync_folder(folder):
    """Make a rename in `folder` durable (where the OS lets a folder be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def extract_state_dict(checkpoint, param_key=None):
    """The weights inside a checkpoint: `param_key` if given, else `state_dict` (Lightning),
    `params_ema`/`params` (BasicSR), or the checkpoint itself when it is a flat state dict."""
    if param_key is not None:
        if param_key not in checkpoint:
            raise KeyError(f"no '{param_key}' in checkpoint; top-level keys: {sorted(checkpoint)[:10]}")
        return checkpoint[param_key]
    for key in ('state_dict', 'params_ema', 'params'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint
