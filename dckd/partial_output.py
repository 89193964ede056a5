"""Outputs written under `<path>.partial` and renamed into place only when complete, so an
interrupted run never leaves something that looks finished, and nothing the user has is replaced
unless asked."""
import os
import shutil


class PartialOutput:
    """Base of the image writers: refuses an existing `path` unless `overwrite`, clears a stale
    `<path>.partial`, and `publish()` swaps the finished output in. A context manager: it calls
    `close()` on success and `abandon()` on an error (the partial output then stays, unpublished)."""

    def __init__(self, path, overwrite):
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f'{path} exists; remove it or ask for overwrite (--overwrite).')
        self.path, self.partial = path, path + '.partial'
        shutil.rmtree(self.partial, ignore_errors=True)

    def publish(self):
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(self.partial, self.path)

    def abandon(self):
        """Release what an unfinished output holds open."""

    def __enter__(self):
        return self

    def __exit__(self, error_type, *_):
        if error_type is None:
            self.close()
        else:
            self.abandon()
