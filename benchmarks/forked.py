"""Fresh processes for the benchmarks' runs, without paying for the imports each time.

Every run gets a process of its own, as with subprocess, so nothing one run allocates, caches or
sets reaches another; but the process is forked from one server process that has already
imported torch, BasicSR and dckd (multiprocessing's forkserver, those modules preloaded), so it
starts in milliseconds instead of the ~4 s of CPU those imports cost. The server never runs a
tensor operation or touches a GPU: each run sets its thread count and initialises CUDA itself.

    result = call(function, *args)       # function(*args) in a fresh process; its return value
    process = start(function, *args)     # the same, not waited for (a multiprocessing.Process)
    process = start(command, 'dckd.train', ['-opt', 'x.yml'], work, log_file, threads)   # a dckd command
    process = start(command, 'dckd.train', argv, work, out_file, threads, err_file)      # stdout, stderr apart
    process = start(command, 'dckd.train', argv, work, out_file, threads, err_file, {'RANK': '1', ...})  # its environment
"""
import multiprocessing
import os
import sys
import traceback

PRELOAD = ['dckd.train', 'basicsr.train']  # dckd's first: it makes basicsr importable


def _context():
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload(PRELOAD)  # read when the server starts, with the first process
    return context


def start(function, *args):
    process = _context().Process(target=function, args=args, daemon=False)
    process.start()
    return process


def call(function, *args):
    """function(*args) in a fresh process, its (picklable) return value; RuntimeError with the run's
    traceback when it raised."""
    receive, send = _context().Pipe(duplex=False)
    process = start(_returning, send, function, args)
    send.close()
    try:
        failed, value = receive.recv()
    except EOFError:  # it died without a word (a signal, os._exit)
        failed, value = True, ''
    process.join()
    if failed or process.exitcode:
        raise RuntimeError(f'{getattr(function, "__name__", function)}{args} failed in its process '
                           f'(exit code {process.exitcode}):\n{value}')
    return value


def _as_started_from_a_shell():
    """A process the server forked inherits its start method (forkserver): the data loader's workers of
    a run would come from the server, each importing the benchmark's main module again (seconds per
    worker). Its processes start as those of a command started from a shell do."""
    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)


def _returning(send, function, args):
    _as_started_from_a_shell()
    try:
        send.send((False, function(*args)))
    except BaseException:
        send.send((True, traceback.format_exc()))
        raise


def command(module, argv, work, log_file, threads=None, error_file=None, environment=None):
    """`python -m module argv` run from the folder `work`, its output written to `log_file` (its
    standard error to `error_file` when given), with `threads` CPU threads (torch's default unless
    given) and the variables of `environment` added to its environment: module.main(argv). The
    process's exit code is the command's."""
    import atexit
    import importlib

    import torch

    _as_started_from_a_shell()
    os.environ.update(environment or {})
    os.chdir(work)
    with open(log_file, 'w') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    if error_file:
        with open(error_file, 'w') as errors:
            os.dup2(errors.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    if threads:
        torch.set_num_threads(threads)
    sys.argv = [module, *argv]
    try:
        importlib.import_module(module).main(argv)
    finally:  # as the interpreter does on leaving (a multiprocessing child leaves by os._exit, without them):
        atexit._run_exitfuncs()  # the command's handlers (dckd-train's ends its leftover loader workers)
