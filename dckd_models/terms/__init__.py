"""Distillation terms: one file and one registration per method.

A term is switched on by its `train.<option>` (a loss component, as BasicSR's `pixel_opt`). It
declares what it needs by adding named input batches to the step (`add_inputs`: the teacher's
LCR views, DUKD's zoom-in tiles...) and, from its options alone, the module names whose
features it reads (`taps`); the model runs each network once per input size over everything
the terms asked for, taps the features with forward hooks, and calls each term's
`losses(step)`, which returns named losses (log keys `l_*`). A term may train modules of its
own with the student (`adapters`: optimised, saved and resumed with it). Terms run in
registration order, so their random draws come in a fixed order.
"""
from basicsr.losses import build_loss
from basicsr.utils.registry import Registry
from dckd_utils.schema import OptionError, config
from ..taps import positions

TERM_REGISTRY = Registry('term')


class Step:
    """One training step: named LR batches per network (`inputs['student'|'teacher']`), and what the
    networks made of them (`outputs`, and `features` of the tapped modules on the 'main' batch,
    which is `lq`), and what each term drew at random (`drawn`). The student's 'main' output is
    `output`."""

    def __init__(self, lq, gt, teacher):
        self.lq, self.gt = lq, gt
        self.inputs = {'student': {'main': lq}, 'teacher': {'main': lq} if teacher else {}}
        self.outputs = {'student': {}, 'teacher': {}}
        self.features = {'student': {}, 'teacher': {}}
        self.drawn = {}  # what the terms drew for this step, by term

    @property
    def output(self):
        return self.outputs['student']['main']

    def teacher(self, name='main'):
        return self.outputs['teacher'][name]


class Term:
    """Base of the terms (see module doc)."""
    options = ()  # the train options that switch the term on (any of them)

    def __init__(self, components, model):
        """`components`: the parsed train options of `options`, by name (None where off)."""
        self.component = components[self.options[0]]
        self.criterion = build_loss(config(self.component)) if self.component else None

    @classmethod
    def taps(cls, components):
        """The modules whose features `losses` reads, from the term's options alone (so
        `dckd-train --check` asks too): {'student' or 'teacher': (the option path that names them,
        [module names])}; none by default."""
        return {}

    def add_inputs(self, step, generator):
        """Add the batches this term needs to `step.inputs` (the teacher's 'main' is there already)."""

    def losses(self, step):
        raise NotImplementedError

    # ----- the term's own networks (DCKD's VQGAN and history model, adapters) ----------------------

    def adapters(self):
        """Modules this term trains with the student, by name (a valid attribute name): the model
        optimises them in optim_g, averages their gradients over DDP ranks, and saves and resumes
        them with the student."""
        return {}

    def frozen_networks(self):
        """Networks that only run forward passes for this term."""
        return []

    def replicated_networks(self):
        """Networks of this term every rank must hold identically under DDP, by name."""
        return {}

    def after_step(self, current_iter):
        """After the optimizer and EMA updates."""

    def save(self, current_iter):
        """Save what the term needs to resume, with the model's checkpoint."""

    def resume(self, resume_state):
        """Restore what `save` wrote."""


def term_classes():
    """Every registered term, in the order they run."""
    return [cls for _, cls in TERM_REGISTRY]


def enabled_terms(train):
    """(term class, its parsed options by name) of every term `train` switches on, in order."""
    for cls in term_classes():
        components = {option: getattr(train, option) for option in cls.options}
        if any(components.values()):
            yield cls, components


def build_terms(train, model):
    """The terms `train` (parsed options) switches on."""
    return [cls(components, model) for cls, components in enabled_terms(train)]


def tapped_modules(train, role):
    """[(option path, module names)] of `role` ('student' or 'teacher') the enabled terms read."""
    return [taps[role] for cls, components in enabled_terms(train) if (taps := cls.taps(components))]


class PairedTaps(Term):
    """A term comparing the features of its option's `student_taps[i]` with those of
    `teacher_taps[i]` (FEATURE_LOSS in dckd_models/options.py)."""

    @classmethod
    def taps(cls, components):
        option = cls.options[0]
        return {role: (f'train.{option}.{role}_taps', getattr(components[option], f'{role}_taps'))
                for role in ('student', 'teacher')}

    def tap_pairs(self):
        return list(zip(self.component.student_taps, self.component.teacher_taps))

    def check_positions(self, shapes):
        """OptionError unless each pair's modules give as many positions (`shapes`: the model's
        tapped_shapes())."""
        for student_tap, teacher_tap in self.tap_pairs():
            student, teacher = (positions(shapes[role][tap]) for role, tap in (('student', student_tap),
                                                                               ('teacher', teacher_tap)))
            if student != teacher:
                raise OptionError(f'train.{self.options[0]}: student tap {student_tap} and teacher tap {teacher_tap} '
                                  f'give {student} and {teacher} positions; pair modules that work at the same '
                                  'resolution.')


from . import logits, label_consistency, feature_affinity, feature_hint, upcycling, dynamic_contrastive  # noqa: E402,F401  (in order)
