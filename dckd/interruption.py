"""What clusters do to a run: stop signals, and processes of a distributed run that disappear.

SIGTERM (what Slurm and Kubernetes send before they kill a job), SIGINT (Ctrl-C) and SIGUSR1
(Slurm's `--signal=USR1@120`) ask the run to stop (`StopRequest`): the iteration in progress
finishes, a checkpoint is written for it, and the process exits with EXIT_INTERRUPTED. With several
processes every rank asks after each iteration whether any rank was signalled (one all-reduce of a
flag), so all stop after the same iteration, and rank 0 alone writes.

A rank that dies mid-run leaves the others waiting in a collective (for up to the process group's
timeout with NCCL). `RankWatch` notices it: every rank publishes its host and process id, and a
heartbeat, in a store of the process group's rendezvous; each checks the others every second. A
rank whose process is gone (same host) or whose heartbeat is older than LOST_AFTER seconds (another
host) is named in the log, and this rank exits with EXIT_RANK_LOST.
"""
import ctypes
import functools
import multiprocessing
import multiprocessing.context
import os
import signal
import socket
import sys
import threading
import time

import torch
import torch.distributed as dist

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped on request after writing a checkpoint; resume to continue
EXIT_RANK_LOST = 76  # another process of the run is gone; resume once all can run
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
HEARTBEAT_EVERY = 1.0  # seconds
LOST_AFTER = 30.0  # seconds without a heartbeat from a rank on another host


class Interrupted(SystemExit):
    """The run stopped after `iteration` on `signal_name`, its checkpoint written. Raised out of the
    training loop, it ends the process with EXIT_INTERRUPTED and no traceback: under dckd-train and
    under a fork's own train.py alike (dckd-dropin), whose `train_pipeline(...)` call catches nothing."""

    def __init__(self, iteration, signal_name):
        super().__init__(EXIT_INTERRUPTED)
        self.iteration, self.signal_name = iteration, signal_name

    def __str__(self):
        return f'{self.signal_name}: stopped after iteration {self.iteration}'


class StopRequest:
    """Stop signals turned into a request the training loop answers after the iteration."""

    def __init__(self, log):
        self.log, self.signal_name = log, None

    def install(self):
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            self.log(f'{name} received: stopping after this iteration, with a checkpoint of it.')
        else:
            self.log(f'{name} received again: already stopping (the checkpoint is written whole or not at all).')

    def agreed(self, distributed, device):
        """Whether any rank was asked to stop (a collective when `distributed`: every rank calls it
        after the same iteration)."""
        asked = self.signal_name is not None
        if not distributed:
            return asked
        anyone = any_rank(asked, device)
        if anyone and self.signal_name is None:
            self.signal_name = 'a stop signal to another rank'
        return anyone


def any_rank(flag, device):
    """Whether `flag` holds on any rank (a collective: every rank calls it at the same point)."""
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def ignoring_stop_signals(worker_init_fn):
    """A data loader's worker_init_fn that first makes the worker ignore the stop signals: the main
    process answers them. Ctrl-C reaches the whole process group, torchrun signals each rank's
    process group and Slurm every process of a task; a worker killed by them would fail the loader.
    The worker also ends with this process, however it ends (see _end_with). (Workers left at a
    normal exit are ended by `end_leftover_workers`.)"""
    return functools.partial(_start_worker, os.getpid(), worker_init_fn)


def workers_ignore_stop_signals(loader):
    """Make a data loader's workers ignore the stop signals from their birth on: the main process
    answers them. Their worker_init_fn ignores them first (`ignoring_stop_signals`); but torch sets
    a handler that ends a worker on SIGTERM before worker_init_fn runs, and a signal sent to the
    process group in that moment (torchrun's, Slurm's, at the start of an epoch's workers) would fail
    the loader. So a loader that forks its workers (`num_workers` > 0, no context of its own, the fork
    start method) forks them with the stop signals blocked, and a worker unblocks them once it ignores
    them, which drops one that came in between; this process's own mask is as it was after the fork."""
    loader.worker_init_fn = ignoring_stop_signals(loader.worker_init_fn)
    if loader.num_workers and loader.multiprocessing_context is None and multiprocessing.get_start_method() == 'fork':
        loader.multiprocessing_context = _ForkWithStopSignalsBlocked()


class _StopSignalsBlockedProcess(multiprocessing.context.ForkProcess):
    def start(self):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _ForkWithStopSignalsBlocked(multiprocessing.context.ForkContext):
    Process = _StopSignalsBlockedProcess


def _start_worker(parent, worker_init_fn, worker_id):
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked from birth (workers_ignore_stop_signals)
    _end_with(parent)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def _end_with(parent):
    """Make this worker end when `parent` (the process that started it) does. A rank that loses
    another leaves by os._exit from its watch thread, at any moment, without a word to its loader;
    torch's watchdog notices a dead parent only between batches, and never when the parent died
    while the worker was starting (it takes the new parent for the old), and such a worker holds
    the run's output open for ever. On Linux a worker forked by the rank is killed by the kernel
    when the rank ends (prctl PR_SET_PDEATHSIG; a worker of a forkserver or spawn context has the
    server for its parent instead); a rank that ended already ends the worker now."""
    if sys.platform.startswith('linux') and os.getppid() == parent:
        pr_set_pdeathsig = 1  # linux/prctl.h
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if _process_gone(parent):
        os._exit(0)


def end_leftover_workers():
    """At exit: kill the data loader workers still alive (they ignore SIGTERM, with which
    multiprocessing would otherwise try to end them, and wait for ever). Register it with atexit
    after multiprocessing is imported, so that it runs before multiprocessing's own exit handler.
    torch's SIGCHLD handler raises in the main thread when one of its workers dies: it goes first,
    or the first worker's end, noticed before the next kill, would leave the others alive."""
    if hasattr(signal, 'SIGCHLD') and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()


def _process_gone(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')  # a zombie has exited
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False


class RankWatch:
    """A daemon thread that publishes this rank's heartbeat and ends the process when another rank
    is gone (see the module doc). `on_lost(message)` is called first (to log)."""

    def __init__(self, rank, world_size, on_lost):
        self.rank, self.world_size, self.on_lost = rank, world_size, on_lost
        host, port = os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT'])
        self.store = dist.PrefixStore('dckd_rank_watch/', dist.TCPStore(host, port, is_master=False,
                                                                         timeout=torch.distributed.default_pg_timeout))
        self.host = socket.gethostname()
        self.store.set(f'process/{rank}', f'{self.host} {os.getpid()}')
        self.store.set(f'heartbeat/{rank}', repr(time.time()))
        self.finished = threading.Event()

    def start(self):
        threading.Thread(target=self.run, name='dckd-rank-watch', daemon=True).start()
        return self

    def finish(self):
        """This rank ends on purpose (done, stopped on request, or stopping with an error every rank
        shares): the others must not take its exit for a loss, nor this one theirs."""
        self.finished.set()
        self.store.set(f'done/{self.rank}', '1')

    def lost_rank(self):
        """(rank, why) of a rank that is gone, or None."""
        now = time.time()
        for other in range(self.world_size):
            if other == self.rank:
                continue
            if not self.store.check([f'process/{other}']) or self.store.check([f'done/{other}']):
                continue  # not started yet, or ending on purpose
            host, pid = self.store.get(f'process/{other}').decode().split()
            if host == self.host and _process_gone(int(pid)):
                return other, f'its process {pid} on {host} has exited'
            silent = now - float(self.store.get(f'heartbeat/{other}').decode())
            if silent > LOST_AFTER:
                return other, f'no heartbeat from {host} for {silent:.0f} s'
        return None

    def lost_message(self):
        """The message naming a rank that is gone, or None."""
        try:
            lost = self.lost_rank()
        except Exception as error:  # noqa: BLE001  (the store lives on rank 0's side of the run)
            lost = ('0 or the launcher', f'the rendezvous store stopped answering ({error})')
        if lost is None:
            return None
        rank, why = lost
        return (f'rank {rank} of {self.world_size} is gone ({why}): this run cannot go on, so rank {self.rank} '
                'stops too. Resume with the same command and --auto_resume once every process can run; it '
                'continues from the last checkpoint.')

    def run(self):
        while not self.finished.is_set():
            try:
                self.store.set(f'heartbeat/{self.rank}', repr(time.time()))
            except Exception:  # noqa: BLE001  (lost_message says what is gone)
                pass
            message = self.lost_message()
            if message and not self.finished.is_set():
                self.on_lost(message)
                os._exit(EXIT_RANK_LOST)
            time.sleep(HEARTBEAT_EVERY)
