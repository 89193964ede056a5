"""The checkpoints of a run: which one a resume can use, what a failed write says, which old ones go.

A checkpoint of iteration N is `training_states/N.state` and the model files written with it
(`models/net_g_N.pth`, and `net_history_N.pth`, `net_adapters_N.pth` where the run has them),
which the state lists under `model_files` (a state of dckd 0.2 or BasicSR lists none: its
`net_g_N.pth` is required). Every file is written atomically and the state last, so a checkpoint
is complete once its state exists; a file can still be torn later (a damaged disk, a copy cut
short), which is why a resume loads them all before choosing.
"""
import os
import shutil

import torch


class CheckpointNotWritten(RuntimeError):
    """A checkpoint file could not be written; the message names the folder and the space."""


class NoUsableCheckpoint(RuntimeError):
    """Every training state of the run is unreadable or misses model files."""


def _iteration(file_name, suffix):
    stem = file_name[:-len(suffix)] if file_name.endswith(suffix) else ''
    number = stem.rsplit('_', 1)[-1]
    return int(number) if number.isdigit() else None


def state_iterations(states_folder):
    """Iterations of the training states in `states_folder`, oldest first."""
    if not os.path.isdir(states_folder):
        return []
    return sorted(i for f in os.listdir(states_folder) if (i := _iteration(f, '.state')) is not None)


def model_files(models_folder, iteration):
    """The model files of `iteration` in `models_folder` (`<label>_<iteration>.pth`)."""
    if not os.path.isdir(models_folder):
        return []
    return sorted(f for f in os.listdir(models_folder) if _iteration(f, '.pth') == iteration)


def _load(path, device='cpu'):
    """(what `path` holds, None), or (None, why it cannot be used)."""
    if not os.path.isfile(path):
        return None, 'missing'
    try:
        return torch.load(path, map_location=device, weights_only=True), None
    except Exception as error:  # noqa: BLE001  (any failure to read makes the file unusable)
        return None, f'unreadable ({str(error).splitlines()[0][:160]})'


def load_usable(path, models_folder, device='cpu'):
    """(the training state at `path`, None) when it and its model files all load, else (None, why)."""
    state, why = _load(path, device)
    if why:
        return None, f'the file is {why}'
    for name in state.get('model_files') or [f'net_g_{state["iter"]}.pth']:
        _, why = _load(os.path.join(models_folder, name))
        if why:
            return None, f'its model file {os.path.join(models_folder, name)} is {why}'
    return state, None


def usable_state(states_folder, models_folder, device='cpu'):
    """(path, state, skipped) of the newest training state whose state and model files all load;
    `skipped`: [(path, why)] of the newer ones passed over. (None, None, skipped) when none is."""
    skipped = []
    for iteration in reversed(state_iterations(states_folder)):
        path = os.path.join(states_folder, f'{iteration}.state')
        state, why = load_usable(path, models_folder, device)
        if state is not None:
            return path, state, skipped
        skipped.append((path, why))
    return None, None, skipped


def checkpoint_size(paths, iteration):
    """Bytes on disk of the checkpoint of `iteration` (its state and model files), 0 if absent."""
    files = [os.path.join(paths['training_states'], f'{iteration}.state')]
    files += [os.path.join(paths['models'], f) for f in model_files(paths['models'], iteration)]
    return sum(os.path.getsize(f) for f in files if os.path.isfile(f))


def not_written(path, error, iteration, written_bytes, paths):
    """CheckpointNotWritten for a failed write of `path` (`written_bytes`: this checkpoint's bytes
    written or being written), with the space a checkpoint needs and what is still there to resume."""
    folder = os.path.dirname(os.path.abspath(path))
    previous = [i for i in state_iterations(paths['training_states']) if i < iteration]
    needed = checkpoint_size(paths, previous[-1]) if previous else written_bytes
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.0f} MiB free'
    except OSError:
        free = 'its free space unknown'
    reason = error.strerror or str(error)
    if previous:
        then = (f'The checkpoint of iteration {previous[-1]} is intact: make room (or make the folder writable), '
                'then continue from it with --auto_resume.')
    else:
        then = 'No checkpoint was written before it: make room (or make the folder writable) and start again.'
    return CheckpointNotWritten(f'cannot write {path}: {reason}. A checkpoint of this run needs about '
                                f'{needed / 2**20:.1f} MiB in {folder} ({free}); nothing of iteration {iteration} '
                                f'is kept. {then}')


def tensor_bytes(obj):
    """Bytes of the tensors inside nested dicts and lists."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def prune(paths, keep):
    """Keep the newest `keep` complete checkpoints (None: all): older states go first, then their
    model files and any model file older than the oldest kept state."""
    if not keep:
        return []
    iterations = state_iterations(paths['training_states'])
    if len(iterations) <= keep:
        return []
    oldest_kept = iterations[-keep]
    removed = []
    for iteration in iterations[:-keep]:
        path = os.path.join(paths['training_states'], f'{iteration}.state')
        os.remove(path)
        removed.append(path)
    for name in os.listdir(paths['models']):
        iteration = _iteration(name, '.pth')
        if iteration is not None and iteration < oldest_kept:
            os.remove(os.path.join(paths['models'], name))
            removed.append(os.path.join(paths['models'], name))
    return removed
