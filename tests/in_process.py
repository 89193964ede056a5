"""`dckd-train` run inside the test's own process (`dckd_train`), for runs whose process boundary a
test does not check: it saves the 4 s in which a new interpreter imports torch, torchvision and BasicSR.

Each run starts as a new process would: in its own working directory, with BasicSR's logger set up
anew (BasicSR sets it up once a process, so a second run would write no log file) and dckd's pipeline
installed anew into basicsr.train (its wrappers hold one run's state). Afterwards the run's objects
are collected (its data loader workers end and its LMDB environments close, as when a process
ends), and the directory, sys.argv, the signal handlers, torch's thread count, the logger and
basicsr.train are as they were.
What it printed comes back as a CompletedProcess, as from subprocess.run(..., text=True).

A resumed run must not share memory with the run it resumes, and BasicSR's CPU prefetcher leaves a
thread holding a data loader and its workers behind at every epoch, which only the end of a process
takes away (a run that leaves processes behind fails here): those runs get a process of their own
(`dckd_train_in_a_new_process`), forked from a server that has imported dckd and BasicSR and run
nothing else (benchmarks/forked.py), so they also start without the imports. Ranks of a
distributed run are such processes too (`dckd_train_on_ranks`), each with the environment torchrun
gives its ranks: a test of what DDP computes does not pay 4 s of imports a rank and torchrun's own
start. Runs whose process as a shell starts it is the point (exit codes after signals, torchrun and
what it does when a rank stops, the message a shell shows, an environment of their own) stay
`subprocess` runs.
"""
import contextlib
import gc
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import torch

import basicsr.train
import basicsr.utils.logger
import basicsr.utils.options
import dckd.train

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def dckd_train(args, cwd, threads=1):
    """`dckd-train ARGS` in `cwd` on `threads` torch threads (a new process gets OMP_NUM_THREADS's)."""
    args = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    children = set(multiprocessing.active_children())
    with _as_a_new_process(cwd, threads), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _exit_code(dckd.train.main, args)
    left = set(multiprocessing.active_children()) - children
    assert not left, f'dckd-train {" ".join(args)} left {len(left)} processes behind: run it in a new process'
    return subprocess.CompletedProcess(['dckd-train', *args], code, stdout.getvalue(), stderr.getvalue())


def dckd_train_in_a_new_process(args, cwd, threads=1):
    """`dckd-train ARGS` in `cwd` in a process of its own, on `threads` torch threads; what it printed
    comes back as a CompletedProcess, as from subprocess.run(..., text=True)."""
    return _forked_runs(args, cwd, threads, [{}])


def dckd_train_on_ranks(args, cwd, ranks, threads=1):
    """`torchrun --nproc_per_node=RANKS train.py ARGS --launcher pytorch` in `cwd`, each rank on `threads`
    torch threads, without torchrun: every rank is a process of its own forked from the server, with the
    variables torchrun sets for its ranks (rank, world size, the rendezvous address). As torchrun does,
    it ends the other ranks when one fails and exits with that rank's code. What the ranks printed, rank
    0 first, comes back as a CompletedProcess, as from subprocess.run(..., text=True)."""
    rendezvous = {'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(free_port()), 'WORLD_SIZE': str(ranks),
                  'LOCAL_WORLD_SIZE': str(ranks), 'ROLE_WORLD_SIZE': str(ranks), 'GROUP_RANK': '0',
                  'OMP_NUM_THREADS': str(threads)}
    return _forked_runs([*args, '--launcher', 'pytorch'], cwd, threads,
                        [dict(rendezvous, RANK=str(rank), LOCAL_RANK=str(rank), ROLE_RANK=str(rank))
                         for rank in range(ranks)])


def _forked_runs(args, cwd, threads, environments):
    """`dckd-train ARGS` in `cwd`, in one process forked from the server per environment (its variables
    added), each on `threads` torch threads. When one fails the others are ended, and its exit code is
    the result's; runs not done in 600 s fail, as subprocess.run(..., timeout=600) does. What they
    printed, in order, comes back as a CompletedProcess."""
    import forked  # benchmarks/ (on sys.path: conftest.py)

    args = [str(arg) for arg in args]
    with tempfile.TemporaryDirectory() as streams:
        outputs = [(os.path.join(streams, f'{n}.out'), os.path.join(streams, f'{n}.err'))
                   for n in range(len(environments))]
        processes = [forked.start(forked.command, 'dckd.train', args, str(cwd), out, threads, err, environment)
                     for (out, err), environment in zip(outputs, environments)]
        deadline, code = time.monotonic() + 600, 0
        while any(process.is_alive() for process in processes):
            code = next((process.exitcode for process in processes if process.exitcode), 0)
            late = time.monotonic() > deadline
            if code or late:
                for process in processes:
                    process.kill()
                    process.join()
                if not code:
                    raise subprocess.TimeoutExpired(['dckd-train', *args], 600)
            multiprocessing.connection.wait([process.sentinel for process in processes], timeout=1)
        code = code or next((process.exitcode for process in processes if process.exitcode), 0)
        printed = [[pathlib.Path(file).read_text() for file in files] for files in outputs]
    return subprocess.CompletedProcess(['dckd-train', *args], code, ''.join(out for out, _ in printed),
                                       ''.join(err for _, err in printed))


def free_port():
    """A TCP port nobody listens on now, for a rendezvous."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def script(main, args):
    """A benchmark script's `main(ARGS)` in this process, what it printed returned as a
    CompletedProcess, as from subprocess.run(..., text=True): for scripts whose runs each get a
    process of their own (benchmarks/forked.py), which leave the calling process as they found it."""
    args = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _exit_code(main, args)
    return subprocess.CompletedProcess([main.__module__, *args], code, stdout.getvalue(), stderr.getvalue())


def _exit_code(main, args):
    """main(args)'s exit code, printing what the interpreter would print on leaving."""
    try:
        main(args)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001  (a new process would print it and exit with 1)
        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def _as_a_new_process(cwd, threads):
    """What a run sees and changes, set up as in a new process, and put back afterwards."""
    namespace = vars(basicsr.train)
    if id(namespace) in dckd.train.PIPELINES:
        raise RuntimeError('dckd-train was run in this process before, outside tests/in_process.py: its pipeline '
                           'in basicsr.train holds that run\'s state')
    saved_namespace, saved_init_dist = dict(namespace), basicsr.utils.options.init_dist
    saved = os.getcwd(), sys.argv, {s: signal.getsignal(s) for s in STOP_SIGNALS}, torch.get_num_threads()
    _reset_basicsr_logger()
    os.chdir(cwd)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        gc.collect()  # the run's objects go, as with its process: data loader workers end, LMDBs close
        _reset_basicsr_logger()
        for key in set(namespace) - set(saved_namespace):
            del namespace[key]
        namespace.update(saved_namespace)
        basicsr.utils.options.init_dist = saved_init_dist
        dckd.train.PIPELINES.discard(id(namespace))
        cwd, sys.argv, handlers, threads = saved
        os.chdir(cwd)
        for number, handler in handlers.items():
            signal.signal(number, handler)
        torch.set_num_threads(threads)


def _reset_basicsr_logger():
    """As before BasicSR's first get_root_logger: no handlers (the log file closed), not set up."""
    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    basicsr.utils.logger.initialized_logger.pop('basicsr', None)
