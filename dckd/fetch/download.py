"""Downloading one file: into `<destination>.partial`, resumed from where a cut connection left it,
checked (sha256 prefix), and renamed only when complete.

BasicSR's helpers (basicsr.utils.download_util) cannot be used as they are: `load_file_from_url`
(torch.hub's downloader) restarts from zero after a cut and `download_file_from_google_drive`
writes straight to the destination, so an interrupted download would be left there as the file.
"""
import hashlib
import http.client
import os
import urllib.error
import urllib.request

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The file could not be downloaded or is not the published one; nothing is left at the destination."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def _open(url, start):
    request = urllib.request.Request(url, headers={'User-Agent': 'dckd-fetch', **({'Range': f'bytes={start}-'}
                                                                                   if start else {})})
    return urllib.request.urlopen(request, timeout=60)


def _receive(url, partial, progress, name):
    """One request: the rest of `url` appended to `partial` (all of it when the server ignores Range)."""
    start = os.path.getsize(partial) if os.path.exists(partial) else 0
    with _open(url, start) as response:
        if start and response.status != 206:  # the server ignores Range: start again
            start = 0
        if 'text/html' in response.headers.get('Content-Type', ''):
            raise DownloadError(f'{url} answered with a web page, not the file (a sign-in, quota or virus-scan '
                                'page?): download it by hand in a browser')
        length = response.headers.get('Content-Length')
        total = start + int(length) if length is not None else None
        with open(partial, 'ab' if start else 'wb') as f, tqdm(total=total, initial=start, unit='B', unit_scale=True,
                                                               disable=not progress, desc=name) as bar:
            for block in iter(lambda: response.read(CHUNK), b''):
                f.write(block)
                bar.update(len(block))
    if total is not None and os.path.getsize(partial) < total:
        raise ConnectionError(f'connection closed after {os.path.getsize(partial)} of {total} bytes')


def download(url, destination, sha256=None, attempts=5, progress=True):
    """Download `url` to `destination` (see module doc); a cut connection is resumed up to
    `attempts` times with an HTTP Range request, and a later call resumes the `.partial` file too."""
    partial = destination + '.partial'
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            _receive(url, partial, progress, os.path.basename(destination))
            break
        except urllib.error.HTTPError as error:
            if error.code != 416:  # 416: the partial file is already whole; anything else is final
                raise DownloadError(f'{url}: {error}') from error
            break
        except (OSError, http.client.HTTPException) as error:  # cut, reset, timeout
            if attempt == attempts:
                kept = os.path.getsize(partial) if os.path.exists(partial) else 0
                where = (f'the {kept} bytes received are kept in {partial} and the next dckd-fetch resumes from there'
                         if kept else 'nothing was written')
                raise DownloadError(f'{url}: {error!r} after {attempts} attempts; {where}') from error
    if sha256 is not None:
        actual = sha256_of(partial)
        if not actual.startswith(sha256):
            os.remove(partial)
            raise DownloadError(f'{url}: its sha256 {actual[:16]}... does not start with the published {sha256}: the '
                                'download is corrupt or the upstream file changed. Nothing was kept.')
    os.replace(partial, destination)
    return destination
