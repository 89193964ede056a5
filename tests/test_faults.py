"""A run survives what clusters do to it, tried as users meet it: `dckd-train` in real processes on
real images (random crops, flips and rotations, DCKD's terms, a SwinIR student with stochastic
depth), stopped by a signal at a known iteration, its newest files torn, its disk full, one of
its ranks killed. (The uninterrupted runs they are compared with, and the run whose files are
torn, train in the test's own process: tests/in_process.py.)

- A stop signal ends the run after the iteration in progress, with a checkpoint of it and exit
  code 75; `--auto_resume` then trains what the uninterrupted run trains, bit for bit (one process,
  and two gloo ranks under torchrun with the signal sent to the launcher). The same under a
  BasicSR-based project's own train.py after dckd-dropin.
- `--auto_resume` takes the newest training state whose state and model files all load, warning
  about each one it skips; with none usable it stops with one message.
- A checkpoint that cannot be written (ENOSPC) stops the run naming the folder and the space;
  the previous checkpoint stays whole and usable.
- `logger.keep_checkpoints: K` keeps the newest K complete checkpoints.
- A killed rank: the other exits within seconds, naming it.
"""
import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from dckd.interruption import EXIT_INTERRUPTED, _process_gone as process_gone
from in_process import free_port
from test_pipeline import TRAIN, basicsr_project, dropin, environment_of_its_own, workspace  # noqa: F401  (fixture)
from test_resume import assert_same_run, options, sub_images, train  # noqa: F401  (fixture)

TOTAL = 9  # 12 pairs / batch 2: 6 batches an epoch, so a resumed run crosses into the next one


def write(tmp_path, opt):
    path = tmp_path / f'{opt["name"]}_{opt["train"]["total_iter"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def command(path, ranks, *extra):
    if ranks == 1:
        return TRAIN + ['-opt', str(path), *extra]
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={ranks}', f'--master_port={free_port()}',
            TRAIN[1], '-opt', str(path), '--launcher', 'pytorch', *extra]


def finish(tmp_path, opt, ranks=1, *extra):
    """The run to its end, as test_resume trains: in this process when it is one rank that resumes
    nothing (the runs the others are compared with, or that they tear), else in new processes."""
    return train(tmp_path, opt, *extra, ranks=ranks)


def start(tmp_path, opt, ranks=1, *extra):
    """The run in the background, its output lines readable as they come."""
    return subprocess.Popen(command(write(tmp_path, opt), ranks, *extra), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))


def wait_for(process, pattern, timeout=300):
    """Read the run's output until a line matches `pattern`; returns the lines read."""
    lines, deadline = [], time.time() + timeout
    for line in process.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return lines
        assert time.time() < deadline, ''.join(lines[-30:])
    raise AssertionError(f'the run ended before {pattern!r}:\n' + ''.join(lines[-40:]))


def run_options(workspace, sub_images, name, total, checkpoint_freq=TOTAL):  # noqa: F811
    opt = options(workspace, sub_images, name, total, workers=2, prefetch=None, ratio=1)
    opt['logger']['save_checkpoint_freq'] = checkpoint_freq
    opt['val']['val_freq'] = 100
    return opt


# ----- stop signals -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('ranks, signum', [(1, signal.SIGTERM), (1, signal.SIGUSR1), (2, signal.SIGTERM)],
                         ids=['SIGTERM', 'SIGUSR1', 'SIGTERM to torchrun, 2 ranks'])
def test_a_stop_signal_saves_the_iteration_and_the_resumed_run_equals_the_straight_one(
        workspace, sub_images, tmp_path, ranks, signum):  # noqa: F811
    finish(tmp_path, run_options(workspace, sub_images, 'straight', TOTAL), ranks)
    run = start(tmp_path, run_options(workspace, sub_images, 'stopped', TOTAL), ranks)
    lines = wait_for(run, r'iter:\s+3,')
    run.send_signal(signum)
    if ranks == 1:  # a second signal while stopping changes nothing
        lines += wait_for(run, 'received: stopping after this iteration')
        run.send_signal(signum)
    output = ''.join(lines + list(run.stdout))
    returncode = run.wait(timeout=120)
    assert returncode == EXIT_INTERRUPTED if ranks == 1 else returncode != 0, output[-3000:]
    states = os.listdir(tmp_path / 'experiments/stopped/training_states')
    assert len(states) == 1, output[-3000:]
    stopped_at = int(states[0][:-len('.state')])
    assert 3 <= stopped_at < TOTAL
    name = signal.Signals(signum).name
    assert f'{name} received: stopping after this iteration' in output
    assert ranks > 1 or f'{name} received again: already stopping' in output
    assert f'stopped after iteration {stopped_at}' in output and '--auto_resume' in output
    finish(tmp_path, run_options(workspace, sub_images, 'stopped', TOTAL), ranks, '--auto_resume')
    assert_same_run(tmp_path, 'straight', 'stopped', TOTAL, stopped_at)


@pytest.mark.slow
def test_a_stop_signal_under_a_forks_own_train_py_exits_75_with_one_line_and_resumes_exactly(
        workspace, sub_images, tmp_path):  # noqa: F811
    """A project's train.py (tests/test_pipeline.py: PROJECT_FILES) calls BasicSR's train_pipeline and
    catches nothing: dckd's stop still ends it as it ends dckd-train."""
    finish(tmp_path, run_options(workspace, sub_images, 'straight', TOTAL))  # dckd-train, for comparison
    project, env = basicsr_project(tmp_path)  # its experiments/ beside the straight run's
    python, _ = environment_of_its_own(tmp_path / 'env')
    assert dropin(python, 'install', project).returncode == 0
    path = write(tmp_path, run_options(workspace, sub_images, 'stopped', TOTAL))
    fork_train = [python, 'myproj/train.py', '-opt', str(path)]
    run = subprocess.Popen(fork_train, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=dict(env, OMP_NUM_THREADS='1'))
    lines = wait_for(run, r'iter:\s+3,')
    run.send_signal(signal.SIGTERM)
    output = ''.join(lines + list(run.stdout))
    assert run.wait(timeout=120) == EXIT_INTERRUPTED and 'Traceback' not in output, output[-3000:]
    assert 'dckd: SIGTERM received: stopping after this iteration' in output
    ending = [line for line in output.splitlines() if 'its checkpoint written' in line]
    stopped_at = int(os.listdir(tmp_path / 'experiments/stopped/training_states')[0][:-len('.state')])
    assert len(ending) == 1 and ending[0].endswith(f'SIGTERM: stopped after iteration {stopped_at}, its checkpoint '
                                                   f'written. Continue with: python {" ".join(fork_train[1:])} '
                                                   '--auto_resume'), output[-3000:]
    resumed = subprocess.run(fork_train + ['--auto_resume'], cwd=project, capture_output=True, text=True, timeout=600,
                             env=dict(env, OMP_NUM_THREADS='1'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path, 'straight', 'stopped', TOTAL, stopped_at)


# ----- torn and unreadable files ------------------------------------------------------------------

def test_a_write_cut_short_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """A kill (or a second signal's exception) in the middle of torch.save: the file keeps its old
    content, and no temporary file stays."""
    from dckd_utils.checkpoint import save_atomically

    path = str(tmp_path / '4.state')
    save_atomically({'iter': 2}, path)
    real_save = torch.save

    def cut_short(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 half a zip')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', cut_short)
    with pytest.raises(KeyboardInterrupt):
        save_atomically({'iter': 4}, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert torch.load(path, weights_only=True) == {'iter': 2} and os.listdir(tmp_path) == ['4.state']


def saved_run(tmp_path, iterations, **logger):
    """A DCKD model (student, EMA, history model) saved at each of `iterations`; its options."""
    from dckd_models import DCKDModel
    from test_models import batch, make_opt

    opt = make_opt(tmp_path, terms=('kd', 'dcl'))
    opt['logger'].update(logger)
    for key in ('models', 'training_states'):
        os.makedirs(opt['path'][key])
    model = DCKDModel(opt)
    for iteration in iterations:
        model.feed_data(batch(seed=iteration))
        model.optimize_parameters(iteration)
        model.save(0, iteration)
    return dict(opt, auto_resume=True), model


def resumed(opt):
    """(iteration resumed from, the warnings) as dckd-train's --auto_resume chooses."""
    from dckd.train import load_resume_state

    warnings = []
    state = load_resume_state(opt, warnings.append)
    return (state['iter'] if state else None), warnings


def tear(path, keep=3000):
    with open(path, 'r+b') as f:
        f.truncate(keep)


def test_a_torn_newest_state_falls_back_to_the_one_before(tmp_path):
    opt, _ = saved_run(tmp_path, [2, 4])
    tear(os.path.join(opt['path']['training_states'], '4.state'))
    iteration, warnings = resumed(opt)
    assert iteration == 2 and opt['path']['pretrain_network_g'].endswith('net_g_2.pth')
    assert len(warnings) == 1 and re.search(r'skipped \S+/4\.state: the file is unreadable', warnings[0])


@pytest.mark.parametrize('damage', ['torn net_g', 'missing net_history'])
def test_a_newest_state_whose_models_do_not_load_is_skipped(tmp_path, damage):
    opt, _ = saved_run(tmp_path, [2, 4])
    models = opt['path']['models']
    if damage == 'torn net_g':
        tear(os.path.join(models, 'net_g_4.pth'))
    else:
        os.remove(os.path.join(models, 'net_history_4.pth'))
    iteration, warnings = resumed(opt)
    file = 'net_g_4.pth is unreadable' if damage == 'torn net_g' else 'net_history_4.pth is missing'
    assert iteration == 2 and len(warnings) == 1 and f'its model file {os.path.join(models, file)}' in warnings[0]


def test_both_newest_files_missing_resume_the_one_before_without_a_word(tmp_path):
    opt, _ = saved_run(tmp_path, [2, 4])
    os.remove(os.path.join(opt['path']['training_states'], '4.state'))
    os.remove(os.path.join(opt['path']['models'], 'net_g_4.pth'))
    assert resumed(opt) == (2, [])


def test_every_file_unreadable_stops_with_one_message(tmp_path):
    from dckd_models.run_checkpoints import NoUsableCheckpoint

    opt, _ = saved_run(tmp_path, [2, 4])
    for folder in (opt['path']['training_states'], opt['path']['models']):
        for name in os.listdir(folder):
            tear(os.path.join(folder, name), keep=100)
    with pytest.raises(NoUsableCheckpoint, match=r'--auto_resume: no training state in \S+ can be resumed'):
        resumed(opt)


@pytest.mark.slow
def test_dckd_train_auto_resume_passes_over_a_torn_newest_state(workspace, sub_images, tmp_path):  # noqa: F811
    finish(tmp_path, run_options(workspace, sub_images, 'torn', 4, checkpoint_freq=2))
    tear(tmp_path / 'experiments/torn/training_states/4.state')
    done = finish(tmp_path, run_options(workspace, sub_images, 'torn', 6, checkpoint_freq=2), 1, '--auto_resume')
    output = done.stdout + done.stderr
    assert 'Resume: skipped' in output and '4.state: the file is unreadable' in output
    assert 'Resuming training from epoch: 0, iter: 2.' in output and 'Traceback' not in output
    states = tmp_path / 'experiments/torn/training_states'
    assert sorted(os.listdir(states)) == ['2.state', '4.state', '6.state']  # 4 written again, whole
    for name in os.listdir(states):
        torch.load(states / name, weights_only=True)
    opt = run_options(workspace, sub_images, 'torn', 8, checkpoint_freq=2)
    for folder in ('training_states', 'models'):
        for name in os.listdir(tmp_path / 'experiments/torn' / folder):
            tear(tmp_path / 'experiments/torn' / folder / name, keep=100)
    done = subprocess.run(command(write(tmp_path, opt), 1, '--auto_resume'), cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 1 and 'Traceback' not in done.stderr
    assert 'dckd-train: --auto_resume: no training state in' in done.stderr


# ----- a full disk ----------------------------------------------------------------------------------

def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_keeps_the_previous_one(tmp_path, monkeypatch):
    from dckd_models.run_checkpoints import CheckpointNotWritten, usable_state

    opt, model = saved_run(tmp_path, [2])
    real_save = torch.save

    def disk_full_at_the_state(obj, f, *args, **kwargs):
        if getattr(f, 'name', '').endswith('.state.tmp'):  # the model files of 4 are written, then the state fails
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, 'save', disk_full_at_the_state)
    with pytest.raises(CheckpointNotWritten) as stopped:
        model.save(0, 4)
    states, models = opt['path']['training_states'], opt['path']['models']
    message = str(stopped.value)
    assert f'cannot write {os.path.join(states, "4.state")}: No space left on device' in message
    assert re.search(rf'needs about \d+\.\d MiB in {re.escape(states)} \(\d+ MiB free\)', message)
    assert 'The checkpoint of iteration 2 is intact' in message and '--auto_resume' in message
    assert sorted(os.listdir(states)) == ['2.state'] and sorted(os.listdir(models)) == ['net_g_2.pth',
                                                                                         'net_history_2.pth']
    path, state, skipped = usable_state(states, models)
    assert state['iter'] == 2 and not skipped


# ----- old checkpoints -------------------------------------------------------------------------------

def test_keep_checkpoints_keeps_the_newest_complete_ones(tmp_path):
    from dckd_models.run_checkpoints import load_usable

    opt, _ = saved_run(tmp_path, [1, 2, 3, 4, 5], keep_checkpoints=2)
    states, models = opt['path']['training_states'], opt['path']['models']
    assert sorted(os.listdir(states)) == ['4.state', '5.state']
    assert sorted(os.listdir(models)) == ['net_g_4.pth', 'net_g_5.pth', 'net_history_4.pth', 'net_history_5.pth']
    for iteration in (4, 5):
        state, why = load_usable(os.path.join(states, f'{iteration}.state'), models)
        assert why is None and state['model_files'] == [f'net_history_{iteration}.pth', f'net_g_{iteration}.pth']


# ----- a rank that dies ------------------------------------------------------------------------------

def rank_processes(launcher_pid):
    """{rank: pid} of the processes torchrun started."""
    children = subprocess.run(['pgrep', '-P', str(launcher_pid)], capture_output=True, text=True).stdout.split()
    ranks = {}
    for pid in children:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            environment = dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
        if b'RANK' in environment:
            ranks[int(environment[b'RANK'])] = int(pid)
    return ranks


@pytest.mark.slow
def test_when_a_rank_dies_the_other_stops_within_seconds_naming_it(workspace, sub_images, tmp_path):  # noqa: F811
    run = start(tmp_path, run_options(workspace, sub_images, 'lost', 60, checkpoint_freq=2), 2)
    wait_for(run, r'iter:\s+3,')
    os.kill(rank_processes(run.pid)[1], signal.SIGKILL)
    killed = time.time()
    output = ''.join(run.stdout)
    run.wait(timeout=60)
    assert time.time() - killed < 15, output[-3000:]
    assert 'rank 1 of 2 is gone (its process' in output and 'has exited' in output, output[-3000:]
    finish(tmp_path, run_options(workspace, sub_images, 'lost', 6, checkpoint_freq=2), 2, '--auto_resume')
    assert os.path.isfile(tmp_path / 'experiments/lost/models/net_g_6.pth')


WORKERS_OF_A_RANK_THAT_ENDS = """
import os, time, torch
from dckd.interruption import ignoring_stop_signals

def busy_for_a_minute(worker_id):  # a worker that does not look at its parent for a long while
    time.sleep(60)

batches = iter(torch.utils.data.DataLoader(list(range(8)), num_workers=2,
                                           worker_init_fn=ignoring_stop_signals(busy_for_a_minute)))
time.sleep(1)  # the workers are in busy_for_a_minute
print(' '.join(str(worker.pid) for worker in batches._workers), flush=True)
os._exit(76)  # as a lost rank ends: no atexit handler, no loader shut down
"""


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the kernel ends the workers on Linux (prctl)')
def test_the_data_loader_workers_end_with_their_rank_however_it_ends():
    """A rank that stops on a lost rank leaves by os._exit, at any moment; its workers must not
    outlive it (torch's own watchdog looks only between batches, and never notices a parent that
    ended while the worker started: such a worker held torchrun's output open for ever)."""
    done = subprocess.run([sys.executable, '-c', WORKERS_OF_A_RANK_THAT_ENDS], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 76, done.stderr[-3000:]
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2
    time.sleep(1)
    assert [pid for pid in workers if not process_gone(pid)] == []


def test_a_worker_whose_rank_ended_before_it_started_ends_at_once():
    from dckd.interruption import ignoring_stop_signals
    rank = subprocess.Popen([sys.executable, '-c', 'pass'])
    rank.wait()  # a rank that has ended
    child = os.fork()
    if child == 0:  # the worker
        try:
            ignoring_stop_signals(None).func(rank.pid, None, 0)
        finally:
            os._exit(3)  # reached only if the worker went on
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


WORKER_SIGNALLED_AS_IT_STARTS = """
import os, signal, sys, torch
from torch.utils.data._utils.signal_handling import _set_worker_signal_handlers
from dckd.interruption import STOP_SIGNALS, ignoring_stop_signals, workers_ignore_stop_signals

start_worker = ignoring_stop_signals(None)

def worker():  # as torch's _worker_loop starts: torch's signal handlers first, then the worker_init_fn
    _set_worker_signal_handlers()
    os.kill(os.getpid(), signal.SIGTERM)  # torchrun's SIGTERM to the rank's process group, in that moment
    start_worker(0)

loader = torch.utils.data.DataLoader(list(range(8)), num_workers=2)
if sys.argv[1] == 'blocked':
    workers_ignore_stop_signals(loader)
process = (loader.multiprocessing_context or torch.multiprocessing).Process(target=worker)
process.start()
process.join()
blocked_here = set(STOP_SIGNALS) & signal.pthread_sigmask(signal.SIG_BLOCK, [])
batches = sorted(int(x) for batch in loader for x in batch)  # the loader's own workers, through the same context
print(process.exitcode, len(blocked_here), batches == list(range(8)))
"""


def test_a_worker_signalled_as_it_starts_lives_on_and_the_loader_loads():
    """torch's workers set a handler that ends them on SIGTERM before worker_init_fn can ignore it: a
    signal to the process group at the start of an epoch's workers killed one, and the rank failed
    instead of writing its checkpoint (seen once under torchrun in CI conditions). Born with the
    stop signals blocked, the worker drops it; the rank's own mask is left as it was."""
    def run(mode):
        done = subprocess.run([sys.executable, '-c', WORKER_SIGNALLED_AS_IT_STARTS, mode], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.split()

    assert run('plain') == [str(-signal.SIGTERM), '0', 'True']  # the defect, without the blocking context
    assert run('blocked') == ['0', '0', 'True']


LEFTOVER_WORKERS_AT_EXIT = """
import multiprocessing, os, time, torch
from dckd.interruption import end_leftover_workers, ignoring_stop_signals

loaders = [iter(torch.utils.data.DataLoader(list(range(8)), num_workers=2, worker_init_fn=ignoring_stop_signals(None)))
           for _ in range(2)]  # two epochs' loaders of BasicSR's CPU prefetcher, left with their workers
for loader in loaders:
    next(loader)  # the workers run, and torch's SIGCHLD handler is set
kill = multiprocessing.Process.kill

def kill_on_a_busy_machine(process):  # the worker's end reaches this process before the next kill
    kill(process)
    time.sleep(0.5)

multiprocessing.Process.kill = kill_on_a_busy_machine
end_leftover_workers()
print(len([child for child in multiprocessing.active_children() if child.is_alive()]), flush=True)
os._exit(0)  # multiprocessing's own exit handler would wait for any worker left, for ever
"""


def test_every_leftover_worker_ends_at_exit_however_fast_their_ends_are_noticed():
    """torch's SIGCHLD handler raises in the main thread when one of its workers dies: at exit, that
    stopped the loop that kills the leftover workers after the first, and multiprocessing then waited
    for the others for ever (a run with BasicSR's CPU prefetcher that never ended on a busy machine)."""
    done = subprocess.run([sys.executable, '-c', LEFTOVER_WORKERS_AT_EXIT], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0 and done.stdout.split() == ['0'], done.stdout + done.stderr[-3000:]


WORKERS_OF_A_FORKSERVER_PROCESS = """
import multiprocessing, torch
from dckd.interruption import ignoring_stop_signals

def load():  # a run of benchmarks/forked.py: its loader's workers come from the forkserver, not from it
    loader = torch.utils.data.DataLoader(list(range(16)), num_workers=2, worker_init_fn=ignoring_stop_signals(None))
    assert sorted(int(x) for batch in loader for x in batch) == list(range(16))

if __name__ == '__main__':
    process = multiprocessing.get_context('forkserver').Process(target=load)
    process.start()
    process.join()
    raise SystemExit(process.exitcode)
"""


def test_workers_whose_parent_is_a_forkserver_load(tmp_path):
    script = tmp_path / 'forkserver_run.py'
    script.write_text(WORKERS_OF_A_FORKSERVER_PROCESS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr[-3000:]


def test_dckd_train_check_says_the_disk_one_checkpoint_takes(tmp_path):
    """Student, EMA and history model in float32, and Adam's two moments: 5 x 4 bytes a parameter."""
    from basicsr.archs import build_network
    from dckd_models.preflight import preflight
    from conftest import edsr
    from test_models import SCALE, make_opt

    opt = make_opt(tmp_path, student=edsr(64, 16, SCALE), terms=('kd', 'dcl'))  # EDSR-baseline, 1.37M
    opt['datasets'] = {}
    opt['logger'].update(save_checkpoint_freq=2, keep_checkpoints=2)  # 10 iterations: 5 checkpoints
    parameters = sum(p.numel() for p in build_network(opt['network_g']).parameters())
    one = 5 * 4 * parameters
    line = next(line for line in preflight(opt) if line.startswith('disk'))
    assert one > 25 * 2**20
    assert line == (f'disk      one checkpoint {one / 2**20:.1f} MiB (student, EMA, history model, Adam state); '
                    f'keep_checkpoints 2: 2 of 5 checkpoints, {2 * one / 2**30:.2f} GiB')


def test_dckd_train_help_names_the_signals_and_exit_codes(capsys):
    from dckd.train import main

    main(['--help'])
    text = capsys.readouterr().out
    assert all(word in text for word in ('SIGTERM', 'SIGINT', 'SIGUSR1', 'code 75', '(exit 76)', '--auto_resume'))
