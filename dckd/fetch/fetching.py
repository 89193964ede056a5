"""Fetching known files and verifying them against the network an options file builds."""
import os
import shutil

import torch
import torchvision

import dckd_models  # noqa: F401  (registers dckd's archs, so that the options' networks can be built)
from dckd_models.frozen import build, check_detected, checkpoint_source, load_into
from dckd_models.options import needs_teacher, needs_vqgan, parse_training_options
from dckd_models.preflight import read_options_file
from dckd_utils.checkpoint import load_checkpoint
from dckd_utils.known_files import DOWNLOADS, known_at
from dckd_utils.schema import OptionError
from .download import DownloadError, download, sha256_of


def _network_file(parsed, network_key):
    """The file `network_key` loads: a PretrainedModel's own path, else path.pretrain_<key>."""
    component = getattr(parsed, network_key)
    if component is not None and component.type == 'PretrainedModel':
        return component.arguments['path']
    return getattr(parsed.path, f'pretrain_{network_key}')


def verify(path, opt, network_key):
    """`path` loads strictly into `network_key` as the options `opt` build it; OptionError (naming the
    file and the first keys that do not fit) otherwise."""
    parsed = parse_training_options(opt, check_files=False)
    component = getattr(parsed, network_key)
    if component.type == 'PretrainedModel':
        component.arguments = {**component.arguments, 'path': path}
        check_detected(build(component, network_key), parsed, network_key)
        return
    source = {**checkpoint_source(parsed.path, network_key), 'path': path, 'strict': True}
    load_into(build(component, network_key), source, network_key)


def verify_torchvision(path, name):
    """`path` holds the weights of torchvision's network `name`, key for key and shape for shape."""
    with torch.device('meta'):  # the layout only: no memory, no initialisation (VGG19 has 143M weights)
        expected = {k: tuple(v.shape) for k, v in getattr(torchvision.models, name)(weights=None).state_dict().items()}
    try:
        found = {k: tuple(v.shape) for k, v in load_checkpoint(path, 'checkpoint').items()}
    except (RuntimeError, FileNotFoundError, AttributeError) as error:
        raise OptionError(f'{path}: {error}; it is not a torchvision state dict (an interrupted download?)') from error
    if found != expected:
        differ = sorted(set(found) ^ set(expected)) or [k for k in expected if found[k] != expected[k]]
        raise OptionError(f"{path} is not torchvision's {name}: keys or shapes differ, e.g. {differ[:3]}")


def _verify(entry, opt, network_key):
    if entry.torchvision:
        verify_torchvision(entry.destination, entry.torchvision)
    else:
        verify(entry.destination, opt, network_key)


def _unpack(entry):
    folder = os.path.join(DOWNLOADS, entry.unpack)
    if not os.path.isdir(folder):
        try:
            shutil.unpack_archive(entry.destination, DOWNLOADS, filter='data')
        except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filter
            shutil.unpack_archive(entry.destination, DOWNLOADS)
    if not os.path.isdir(folder):
        raise OptionError(f'{entry.destination} did not unpack to {folder}: is it the archive from {entry.link}?')


def _next(entry):
    return f'; next: {entry.then}' if entry.then else ''


def fetch_known(entry, opt=None, network_key=None):
    """Fetch one known file to its destination, or say how to get it by hand; returns the report
    line. Model files are verified against `opt`'s `network_key` (default: the entry's check)."""
    if opt is None and entry.check:
        opt, network_key = read_options_file(entry.check[0]), entry.check[1]
    if os.path.exists(entry.destination):
        if entry.is_data:  # dckd-prepare checks the images
            if entry.unpack:
                _unpack(entry)
            return f'present  {entry.name}: {entry.destination}{_next(entry)}'
        if entry.sha256 and not sha256_of(entry.destination).startswith(entry.sha256):  # placed by hand: never removed
            raise OptionError(f'{entry.name}: {entry.destination} is not the published file (its sha256 does not start '
                              f'with {entry.sha256}); replace it with the file from {entry.link or entry.page}.')
        _verify(entry, opt, network_key)
        return f'present  {entry.name}: {entry.destination} (verified){_next(entry)}'
    if entry.page:
        return (f'by hand  {entry.name}: no script can fetch it; get it from {entry.page} and put it at '
                f'{entry.destination}{_next(entry)}. Then dckd-fetch {entry.name} verifies it.')
    try:
        download(entry.link, entry.destination, entry.sha256)
    except DownloadError as error:
        raise OptionError(f'{entry.name}: {error}') from error
    if entry.unpack:
        _unpack(entry)
    elif not entry.is_data:
        try:
            _verify(entry, opt, network_key)
        except OptionError as error:
            os.remove(entry.destination)
            raise OptionError(f'{entry.name}: the downloaded file is not the expected network, so it was removed: '
                              f'{error}') from error
    return f'fetched  {entry.name}: {entry.destination}{_next(entry)}'


def fetch_for_options(options_file):
    """Fetch every missing pretrained file `options_file` names, verified against its networks."""
    opt = read_options_file(options_file)
    parsed = parse_training_options(opt, check_files=False)
    used = ['network_g']
    if needs_teacher(parsed.train):
        used.append('network_t')
    if needs_vqgan(parsed.train):
        used.append('network_vqgan')
    lines = []
    for network_key in used:
        file = _network_file(parsed, network_key)
        if file is None:
            continue
        entry = known_at(file)
        if os.path.exists(file):
            lines.append(f'present  {entry.name if entry else network_key}: {file}')
        elif entry is None:
            lines.append(f'by hand  {network_key}: {file} is missing and no known source writes it there '
                         '(dckd-fetch --list); put the file there or correct the path.')
        else:
            lines.append(fetch_known(entry, opt, network_key))
    return lines
