"""`dckd-train` / `python train.py -opt X.yml`: BasicSR's own training pipeline, dckd registered.

Before BasicSR starts, a KDModel/DCKDModel run is checked in seconds (dckd_models/preflight.py):
options against the schema, data roots, checkpoints against their networks. A problem stops it
with one message naming the option or file, before anything is created or renamed.

    dckd-train --check -opt X.yml          # only the checks, and a summary of what would run
    dckd-train --import hat.archs -opt X.yml   # register another project's networks first
                                               # (also top-level import_modules: [...] in X.yml)

Experiments, logs and tb_logger go under the current directory, as with BasicSR's train.py run
from a checkout. BasicSR 1.4.2's pipeline is used with these parts replaced: `load_resume_state`
(BasicSR's maps the state onto `cuda:current_device` and so cannot resume without a GPU), the
training dataset and sampler (ResumableStream: a resumed run continues the data stream),
MessageLogger (its ETA), and `init_dist` (BasicSR's always sets a CUDA device and uses NCCL;
without a GPU, `--launcher pytorch` here uses gloo). After training, every rank waits for the
others and the process group is shut down.

Interruptions (docs/faults.md): SIGTERM (Slurm, Kubernetes), SIGINT (Ctrl-C)
and SIGUSR1 (Slurm's --signal=USR1@120) finish the current iteration, write a checkpoint of it
and exit with code 75; the same command with --auto_resume continues exactly. --auto_resume takes
the newest checkpoint whose files all load, naming each one it skips. A checkpoint that cannot be
written (a full disk) stops the run (exit 1) and keeps the previous one. Under torchrun, a rank
that dies makes the others stop within seconds (exit 76), naming it.
"""
import argparse
import atexit
import datetime
import functools
import os
import sys

import torch
import torch.distributed as dist

import basicsr.utils.options
import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)
from basicsr.utils import MessageLogger as BasicSRMessageLogger  # dckd's compat fix is already installed
from basicsr.utils import check_resume, dist_util, get_root_logger
from dckd.interruption import (EXIT_RANK_LOST, Interrupted, RankWatch, StopRequest, any_rank, end_leftover_workers,
                               workers_ignore_stop_signals)
from dckd_data.resumable import ResumableSampler, SampleKey, SeededSamples, stream_changes, stream_fingerprint
from dckd_models.options import TEACHER_CHECK_SKIPPED, import_modules, synthesizes_pairs
from dckd_models.preflight import is_checked_model, preflight, read_options_file
from dckd_models.restoration_model import TrainingStopped
from dckd_models.resumable import make_resumable
from dckd_models.run_checkpoints import CheckpointNotWritten, NoUsableCheckpoint, load_usable, usable_state
from dckd_models.teacher_check import check_teacher
from dckd_utils.schema import OptionError

# rank 0 validates alone while the others wait at their next collective: give it time
DIST_TIMEOUT = datetime.timedelta(hours=2)
# what stops a run on every rank with one line (exit code 1): the message says what to do
STOP_ERRORS = (TrainingStopped, CheckpointNotWritten, NoUsableCheckpoint)


def load_resume_state(opt, warn):
    """Like BasicSR's, on whatever device training runs on; with --auto_resume, the newest training
    state whose state and model files all load, `warn(text)` naming each newer one skipped and why.
    NoUsableCheckpoint when there are states but none loads, or path.resume_state does not."""
    on_gpu = opt['num_gpu'] != 0 and torch.cuda.is_available()
    device = torch.device('cuda', torch.cuda.current_device()) if on_gpu else torch.device('cpu')
    paths = opt['path']
    if opt['auto_resume']:
        path, state, skipped = usable_state(paths['training_states'], paths['models'], device)
        for file, why in skipped:
            warn(f'Resume: skipped {file}: {why}.')
        if state is None and skipped:
            raise NoUsableCheckpoint(f'--auto_resume: no training state in {paths["training_states"]} can be resumed '
                                     '(each is named above with the reason). Restore the files, or start the run '
                                     'anew without --auto_resume after moving that experiment folder aside.')
        if state is None:
            return None
        paths['resume_state'] = path
    elif paths.get('resume_state') is not None:
        state, why = load_usable(paths['resume_state'], paths['models'], device)
        if state is None:
            raise NoUsableCheckpoint(f'path.resume_state: cannot resume from {paths["resume_state"]}: {why}.')
    else:
        return None
    check_resume(opt, state['iter'])
    return state


class TrainingPipeline:
    """BasicSR's train.py with dckd's parts: a data stream that resume continues
    (dckd_data/resumable.py: the training dataset and sampler are swapped for seeded ones, every
    model saves its random states, dckd_models/resumable.py, and a resumed run starts the stream
    at the state's iteration, warning when the options that decide the stream changed), and the
    teacher checked against bicubic before a new run trains (dckd_models/teacher_check.py).

    The run ends as dckd-train ends it, whoever called train_pipeline (dckd-train, or a fork's own
    train.py after dckd-dropin): a stop signal with exit code 75 and the command that continues it,
    a run that cannot go on (STOP_ERRORS) with exit code 1 and one line saying why; no traceback."""

    def __init__(self, stop, namespace, program, command):
        """`namespace`: the globals of the module whose train_pipeline runs (basicsr.train, or the
        __main__ of `python basicsr/train.py`); `program`, the name that starts its messages;
        `command`, the words that started the run (`--auto_resume` added, they continue it)."""
        self.basicsr_create_loaders = namespace['create_train_val_dataloader']
        self.basicsr_build_dataset = namespace['build_dataset']
        self.basicsr_build_model = namespace['build_model']
        self.resume_state = self.loaders = None
        self.stop, self.resume_warnings, self.namespace = stop, [], namespace
        self.program, self.command = program, command

    def install(self):
        self.namespace.update(load_resume_state=self.ending_the_run(self.load_resume_state),
                              build_dataset=self.build_dataset, EnlargedSampler=ResumableSampler,
                              create_train_val_dataloader=self.create_train_val_dataloader,
                              build_model=self.ending_the_run(self.build_model), MessageLogger=MessageLogger)

    def ending_the_run(self, function):
        """`function`, with STOP_ERRORS ending the process: exit code 1, their message on one line."""
        @functools.wraps(function)
        def ending(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except STOP_ERRORS as error:  # every rank stops with it
                end_of_run(together=False)
                raise SystemExit(f'{self.program}: {error}') from None
        return ending

    def load_resume_state(self, opt):
        self.resume_state = load_resume_state(opt, self.resume_warnings.append)  # logged once the log exists
        return self.resume_state

    def build_model(self, opt):
        """Any model, BasicSR's own too, with training states a resume continues from exactly, that
        stops after an iteration when asked (`stop`) and on every rank when a checkpoint fails."""
        for warning in self.resume_warnings:
            get_root_logger().warning(warning)
        model = make_resumable(self.basicsr_build_model(opt))
        if self.resume_state is None and hasattr(model, 'net_t') and model.options.train.teacher_check:
            if synthesizes_pairs(opt['model_type']):
                get_root_logger().info(f'Teacher {TEACHER_CHECK_SKIPPED}')
            else:
                self.check_teacher(model, opt)
        optimize, save = model.optimize_parameters, model.save

        def optimize_parameters(current_iter):
            optimize(current_iter)
            if self.stop.agreed(opt['dist'], model.device):
                get_root_logger().info(f'{self.stop.signal_name}: saving the models and training state of iteration '
                                       f'{current_iter}.')
                model.save(self.loaders[1].epoch, current_iter)  # the sampler's epoch: the one the loop is in
                interrupted = Interrupted(current_iter, self.stop.signal_name)
                get_root_logger().info(f'{interrupted}, its checkpoint written. Continue with: '
                                       f'{resume_command(self.command)}')
                end_of_run()
                raise interrupted

        def save_on_every_rank_or_none(epoch, current_iter):
            if current_iter == -1 and RANK_WATCH is not None:  # training is over (BasicSR's final save):
                RANK_WATCH.finish()  # ranks leave from here on, also under a fork's own train.py
            failure = None
            try:
                save(epoch, current_iter)
            except CheckpointNotWritten as error:  # rank 0's: the other ranks stop with it
                failure = error
            if opt['dist'] and any_rank(failure is not None, model.device) and failure is None:
                failure = CheckpointNotWritten(f'rank 0 could not write the checkpoint of iteration {current_iter} '
                                               '(its log says why).')
            if failure is not None:
                raise failure

        model.optimize_parameters = self.ending_the_run(optimize_parameters)
        model.save = self.ending_the_run(save_on_every_rank_or_none)
        return model

    def check_teacher(self, model, opt):
        """The teacher on the first validation set (a few training pairs when there is none)."""
        train_loader, _, val_loaders = self.loaders[:3]
        if val_loaders:
            dataset = val_loaders[0].dataset
            items, what = (dataset[i] for i in range(len(dataset))), dataset.opt['name']
        else:
            dataset = train_loader.dataset
            items, what = (dataset[SampleKey(0, i, i)] for i in range(min(4, len(dataset)))), 'training pairs'
        summary = check_teacher(model.net_t, ((item['lq'], item['gt']) for item in items), opt['scale'],
                                model.device, what, window=opt['network_t'].get('window_size'))
        get_root_logger().info(summary)

    def build_dataset(self, dataset_opt):
        dataset = self.basicsr_build_dataset(dataset_opt)
        return SeededSamples(dataset) if dataset_opt['phase'] == 'train' else dataset

    def create_train_val_dataloader(self, opt, logger):
        result = self.loaders = self.basicsr_create_loaders(opt, logger)
        train_loader, sampler = result[0], result[1]
        for loader in [train_loader, *result[2]]:  # a stop signal is the main process's to answer
            workers_ignore_stop_signals(loader)
        sampler.seed = train_loader.dataset.seed = opt['manual_seed']
        # the loader's worker seeds come from its own generator, not from torch's global one
        train_loader.generator = torch.Generator().manual_seed(opt['manual_seed'])
        if self.resume_state is not None:
            self.continue_stream(opt, sampler, train_loader.batch_size, logger)
        return result

    def continue_stream(self, opt, sampler, batch_size, logger):
        state = self.resume_state
        recorded = state.get('data_stream')
        if recorded is None:
            logger.warning(f'Resume: the training state records no data stream (written before dckd 0.2 or by '
                           f'BasicSR): the data stream restarts epoch {state["epoch"]} from its first batch, and '
                           'the run does not continue exactly as an uninterrupted one would.')
            return
        for key, (old, new) in stream_changes(recorded['fingerprint'], stream_fingerprint(opt)).items():
            logger.warning(f'Resume: {key} was {old!r} and is {new!r} now: the resumed run does not continue the '
                           'data stream of the run it resumes.')
        sampler.continue_at(state['iter'], batch_size)
        per_epoch = sampler.batches_per_epoch(batch_size)
        logger.info(f'Resume: the data stream continues at batch {state["iter"] % per_epoch} of epoch '
                    f'{state["iter"] // per_epoch} ({per_epoch} batches an epoch).')


class MessageLogger(BasicSRMessageLogger):
    """BasicSR's, with the ETA counting the iterations left after this one (BasicSR counts one less,
    so the last iteration reads '-1 day, 23:59:59')."""

    def __init__(self, opt, start_iter=1, tb_logger=None):
        super().__init__(opt, start_iter, tb_logger)
        self.max_iters += 1  # BasicSR's ETA is time_per_iter * (max_iters - current_iter - 1)


def init_dist(launcher, backend='nccl', **kwargs):
    """BasicSR's init_dist on GPUs (with a long timeout for torchrun); gloo on CPU-only machines.
    Then every rank watches the others (RankWatch): a rank that dies stops the run in seconds."""
    if launcher == 'pytorch':
        kwargs.setdefault('timeout', DIST_TIMEOUT)
    if launcher == 'pytorch' and not torch.cuda.is_available():
        dist.init_process_group(backend='gloo', **kwargs)
    else:
        dist_util.init_dist(launcher, backend, **kwargs)
    global RANK_WATCH
    RANK_WATCH = RankWatch(dist.get_rank(), dist.get_world_size(), on_lost=lost_rank_message).start()


RANK_WATCH = None  # this process's, under several processes


def lost_rank_message(message):
    get_root_logger().error(f'dckd-train: {message}')
    print(f'dckd-train: {message}', file=sys.stderr, flush=True)


def resume_command(command):
    """The command that continues the run `command` (its words) started."""
    launched = 'torchrun ... ' if 'LOCAL_RANK' in os.environ else ''
    return launched + ' '.join(command + ([] if '--auto_resume' in command else ['--auto_resume']))


def dckd_arguments(argv):
    """(dckd's own arguments, the rest for BasicSR's parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--check', action='store_true')
    parser.add_argument('--import', dest='imports', action='append', default=[])
    own, rest = parser.parse_known_args(argv)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument('-opt')
    shared.add_argument('--launcher', default='none')
    shared.add_argument('--force_yml', nargs='+', default=[])
    seen, _ = shared.parse_known_args(rest)
    return own, seen, rest


def apply_force_yml(opt, entries):
    """BasicSR's `--force_yml a:b=value` overrides, applied as BasicSR applies them, so that the
    checks see the options that will train."""
    for entry in entries:
        keys, value = (part.strip() for part in entry.split('=', 1))
        *parents, last = keys.split(':')
        holder = opt
        for key in parents:
            holder = holder[key]
        holder[last] = basicsr.utils.options._postprocess_yml_value(value)


def check_run(options_file, imports, launcher, overrides=(), check_only=False):
    """Import the named modules, then check the run; returns the summary, or None for another
    project's model (that project checks its options itself)."""
    import_modules(imports, '--import')
    opt = read_options_file(options_file)
    try:
        apply_force_yml(opt, overrides)
    except (KeyError, TypeError, ValueError) as error:
        raise OptionError(f'--force_yml {" ".join(overrides)}: no such key {error} (it changes existing keys only)')
    import_modules(opt.get('import_modules', []), 'import_modules')
    if not is_checked_model(opt):
        return None
    return preflight(opt, launcher, teacher_check=check_only)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if {'-h', '--help'} & set(argv):
        print('usage: dckd-train [--check] [--import MODULE] -opt OPTIONS.yml [BasicSR arguments]\n')
        print(__doc__.replace('`', ''))
        print('BasicSR\'s own arguments: -opt OPTIONS.yml [--launcher none|pytorch|slurm] [--auto_resume] [--debug] '
              '[--force_yml key=value ...]')
        return
    own, seen, rest = dckd_arguments(argv)
    if seen.opt is None:
        sys.exit('dckd-train: error: -opt OPTIONS.yml is required')
    try:
        summary = check_run(seen.opt, own.imports, seen.launcher, seen.force_yml, check_only=own.check)
    except (OptionError, TrainingStopped) as error:
        sys.exit(f'dckd-train: {seen.opt}: {error}')
    if own.check:
        lines = summary or ['a model of another project: that project checks its options, when training starts']
        print('\n'.join([f'{seen.opt}: OK'] + lines))
        return
    # not at the top: a fork's package scan imports this module (dckd-dropin) while its models are
    # being imported, and basicsr.train imports them
    import basicsr.train

    install_into_basicsr(vars(basicsr.train), 'dckd-train', ['dckd-train', *argv])
    sys.argv = [sys.argv[0]] + rest
    try:
        basicsr.train.train_pipeline(os.getcwd())  # a stop ends the process in it (TrainingPipeline)
    except Exception:
        lost = RANK_WATCH.lost_message() if RANK_WATCH is not None else None
        if lost:  # a collective failed because a rank died: say so instead of the collective's traceback
            lost_rank_message(lost)
            os._exit(EXIT_RANK_LOST)
        raise
    end_of_run()


STOP = None  # this process's StopRequest, installed with the first pipeline
PIPELINES = set()  # id() of every namespace dckd's pipeline is installed in


def install_into_basicsr(namespace, program, command):
    """dckd's parts in the BasicSR training pipeline whose module globals are `namespace`: the
    TrainingPipeline, stop signals and init_dist (once per namespace). dckd-train does it to
    basicsr.train; a drop-in does it when a fork's own train.py starts (`install_on_training`).
    `program` starts dckd's messages; `command`: the words that started the run."""
    global STOP
    if id(namespace) in PIPELINES:
        return
    if STOP is None:
        STOP = StopRequest(log=lambda text: os.write(2, f'{program}: {text}\n'.encode()))  # safe in a handler
        STOP.install()
        atexit.register(end_leftover_workers)
    TrainingPipeline(STOP, namespace, program, command).install()
    basicsr.utils.options.init_dist = init_dist
    PIPELINES.add(id(namespace))


def install_on_training():
    """For a fork's own train.py (dckd-dropin's registration files call this while the fork's
    package scans its folders, when BasicSR's train module may not be importable yet): wrap BasicSR's
    parse_options, the first call of train_pipeline, to install dckd's parts into the module that
    calls it (basicsr.train, or the __main__ of `python basicsr/train.py`)."""
    options = basicsr.utils.options
    if getattr(options.parse_options, 'installs_dckd', False):
        return
    parse = options.parse_options

    def parse_options(root_path, is_train=True):
        if is_train:  # into the train_pipeline's module; messages start with 'dckd:'
            command = sys.argv if 'LOCAL_RANK' in os.environ else ['python', *sys.argv]  # torchrun ... train.py
            install_into_basicsr(sys._getframe(1).f_globals, 'dckd', command)
        return parse(root_path, is_train)

    parse_options.installs_dckd = True
    options.parse_options = parse_options
    if 'basicsr.train' in sys.modules:  # imported with basicsr itself (a project imports basicsr first)
        sys.modules['basicsr.train'].parse_options = parse_options


def end_of_run(together=True):
    """This rank ends on purpose: the rank watch is told, and, `together`, every rank waits for the
    others before the process group is shut down."""
    if RANK_WATCH is not None:
        RANK_WATCH.finish()
    if together and dist.is_initialized():
        # BasicSR leaves the group up; a rank exiting while another still uses it can abort
        # ("terminate called without an active exception") and fail torchrun after a good run
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
