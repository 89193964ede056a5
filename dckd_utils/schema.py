"""A typed option schema: every option declared once (kind, default, meaning), parsed once.

`Section.parse(mapping, path)` turns an options-file mapping into a `SimpleNamespace` of typed
values with the defaults filled in, or raises `OptionError` naming the key path and the fix.
Unknown keys are errors (with the closest known key), except the ones a section lets through
(BasicSR's own keys that dckd does not read). `Component` parses `{type: X, ...}` mappings whose
other keys are the keyword arguments of whatever X names (a network, a loss, an optimizer).
"""
import difflib
import inspect
from types import SimpleNamespace

REQUIRED = object()


class OptionError(ValueError):
    """An options-file value that cannot work; the message names the key and the fix."""


def closest(name, known, list_known=True):
    """'; did you mean X?' for the known name closest to `name`, else the list of known names
    (or nothing, without `list_known`: where the message lists them already)."""
    known = sorted(known)  # once: `known` may be an iterator
    match = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    if match:
        return f'; did you mean {match[0]}?'
    return f'; known: {", ".join(known)}' if list_known else ''


def _shown(value):
    kind = {str: 'text', bool: 'a boolean', type(None): 'empty'}.get(type(value), type(value).__name__)
    return f'{value!r} ({kind})'


def _reads_as_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


class Kind:
    """One kind of value. `parse(value, path)` returns the typed value or raises OptionError."""

    def parse(self, value, path):
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError


class Number(Kind):
    """An int (`integer=True`) or a float, optionally bounded: [low, high]."""

    def __init__(self, integer=False, low=None, high=None):
        self.integer, self.low, self.high = integer, low, high

    def parse(self, value, path):
        accepted = (int, ) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, accepted):
            hint = ''
            if isinstance(value, str) and _reads_as_number(value):
                hint = '; write the number without quotes'
                if not self.integer and 'e' in value.lower() and '.' not in value:
                    mantissa, _, exponent = value.lower().partition('e')
                    exponent = exponent if exponent[:1] in '+-' else f'+{exponent}'
                    hint += f' (YAML reads {value} as text: write {mantissa}.0e{exponent})'
            elif isinstance(value, str):
                hint = '; write a number'

            raise OptionError(f'{path} must be {"an integer" if self.integer else "a number"}, got {_shown(value)}{hint}')
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise OptionError(f'{path} must be {self._range()}, got {value}')
        return value if self.integer else float(value)

    def _range(self):
        if self.low is not None and self.high is not None:
            return f'in [{self.low}, {self.high}]'
        return f'>= {self.low}' if self.low is not None else f'<= {self.high}'

    def describe(self):
        name = 'int' if self.integer else 'float'
        return name if self.low is None and self.high is None else f'{name} {self._range()}'


def Int(low=None, high=None):
    return Number(True, low, high)


def Float(low=None, high=None):
    return Number(False, low, high)


class Bool(Kind):
    def parse(self, value, path):
        if not isinstance(value, bool):
            raise OptionError(f'{path} must be true or false, got {_shown(value)}')
        return value

    def describe(self):
        return 'bool'


class Text(Kind):
    def parse(self, value, path):
        if not isinstance(value, str):
            raise OptionError(f'{path} must be text, got {_shown(value)}')
        return value

    def describe(self):
        return 'text'


class Choice(Kind):
    def __init__(self, *choices):
        self.choices = choices

    def parse(self, value, path):
        if value not in self.choices:
            raise OptionError(f'{path} must be one of {", ".join(map(str, self.choices))}, got {value!r}'
                              + (closest(value, map(str, self.choices), False) if isinstance(value, str) else ''))
        return value

    def describe(self):
        return ' \\| '.join(map(str, self.choices))


class List(Kind):
    def __init__(self, item, length=None, min_length=0):
        self.item, self.length, self.min_length = item, length, min_length

    def parse(self, value, path):
        if not isinstance(value, (list, tuple)):
            raise OptionError(f'{path} must be a list, got {_shown(value)}')
        if self.length is not None and len(value) != self.length:
            raise OptionError(f'{path} must hold {self.length} values, got {len(value)}: {list(value)}')
        if len(value) < self.min_length:
            raise OptionError(f'{path} must hold at least {self.min_length} value(s), got {list(value)}')
        return [self.item.parse(v, f'{path}[{i}]') for i, v in enumerate(value)]

    def describe(self):
        count = f'{self.length} × ' if self.length else ''
        return f'list of {count}{self.item.describe()}'


class Optional(Kind):
    """The kind, or empty (`~`)."""

    def __init__(self, kind):
        self.kind = kind

    def parse(self, value, path):
        return None if value is None else self.kind.parse(value, path)

    def describe(self):
        return f'{self.kind.describe()} or ~'


class Option:
    """One declared option: its kind, its default (REQUIRED: none) and one line of meaning."""

    def __init__(self, kind, default=None, doc=''):
        self.kind, self.default, self.doc = kind, default, doc


class Section(Kind):
    """A mapping of declared options. `passthrough`: keys that are not ours but are known to
    BasicSR; they are accepted and left alone. `check(parsed, path)`: rules between options."""

    def __init__(self, options, doc='', passthrough=(), check=None):
        self.options, self.doc, self.passthrough, self.check = options, doc, frozenset(passthrough), check

    def parse(self, value, path):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise OptionError(f'{path} must be a mapping of options, got {_shown(value)}')
        known = set(self.options) | self.passthrough
        for key in value:
            if key not in known:
                raise OptionError(f'{_join(path, key)}: unknown option{closest(key, known)}')
        parsed = SimpleNamespace()
        for name, option in self.options.items():
            key_path = _join(path, name)
            if name in value:
                setattr(parsed, name, option.kind.parse(value[name], key_path))
            elif option.default is REQUIRED:
                raise OptionError(f'{key_path} is missing: {option.doc}')
            elif isinstance(option.kind, Section) and option.default is not None:
                setattr(parsed, name, option.kind.parse(option.default, key_path))  # its own defaults
            else:
                setattr(parsed, name, option.default)
        if self.check:
            self.check(parsed, path)
        return parsed

    def describe(self):
        return 'mapping'

    def rows(self, path=''):
        """(key path, kind, default, meaning) of every declared option, nested sections expanded."""
        for name, option in self.options.items():
            key_path = _join(path, name)
            inner = option.kind.kind if isinstance(option.kind, Optional) else option.kind
            if isinstance(inner, Section):
                yield key_path, option.kind.describe(), option.default, option.doc
                yield from inner.rows(key_path)
            else:
                default = 'required' if option.default is REQUIRED else option.default
                yield key_path, option.kind.describe(), default, option.doc


def _join(path, key):
    return f'{path}.{key}' if path else str(key)


class Component(Kind):
    """`{type: NAME, **arguments}`: NAME looked up by `lookup(name)` (a class or function, or None
    when unknown, with `known()` listing the names); the arguments must be parameters of it, less
    `skip`: a number of leading ones (an optimizer's `params`) or a tuple of names (a metric's `img`,
    `img2`: NIQE takes one image, PSNR two). `typed`: a Section per NAME that types its arguments
    further, `common` types the arguments of any NAME that has no Section there (e.g. every
    optimizer's `lr`); `extras`: options of ours stored beside the arguments (e.g. lcr's `prob`).

    Parses to SimpleNamespace(type, arguments, **extras); `config(parsed)` gives the
    `{type, **arguments}` dict BasicSR's builders take. `hint` ends the message for an unknown NAME.
    """

    def __init__(self, what, lookup, known, skip=0, typed=None, extras=None, hint='', common=None):
        self.what, self.lookup, self.known, self.skip, self.hint = what, lookup, known, skip, hint
        self.typed, self.extras, self.common = typed or {}, extras or {}, common or {}

    def parse(self, value, path):
        if not isinstance(value, dict) or 'type' not in value:
            raise OptionError(f'{path} must be a mapping with a type: ({self.what}), got {_shown(value)}')
        name = value['type']
        target = self.lookup(name)
        if target is None:
            raise OptionError(f'{path}.type: no {self.what} named {name!r}{closest(name, self.known())}{self.hint}')
        arguments = {k: v for k, v in value.items() if k != 'type' and k not in self.extras}
        accepted = self.parameters(target)
        if accepted is not None:
            for key in arguments:
                if key not in accepted:
                    raise OptionError(f'{path}.{key}: unknown option of {name}{closest(key, accepted)}')
        if name in self.typed:
            typed = self.typed[name].parse(arguments, path)
            arguments = {k: getattr(typed, k) for k in arguments}
        else:
            arguments = {k: self.common[k].kind.parse(v, f'{path}.{k}') if k in self.common else v
                         for k, v in arguments.items()}
        extras = Section(self.extras).parse({k: value[k] for k in self.extras if k in value}, path)
        return SimpleNamespace(type=name, arguments=arguments, **vars(extras))

    def parameters(self, target):
        """The keyword names `target` accepts, or None when it takes any (**kwargs of a foreign class).
        BasicSR's and dckd's own `**kwargs` swallow misspellings silently, so they do not count."""
        function = target.__init__ if inspect.isclass(target) else target
        parameters = list(inspect.signature(function).parameters.values())
        if inspect.isclass(target):
            parameters = parameters[1:]  # self
        parameters = ([p for p in parameters if p.name not in self.skip] if isinstance(self.skip, tuple)
                      else parameters[self.skip:])
        open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters)
        if open_ended and not target.__module__.startswith(('basicsr.', 'dckd', 'torch.')):
            return None
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def describe(self):
        return f'{{type: {self.what}, ...}}'


def config(component):
    """The `{type, **arguments}` dict of a parsed Component, for BasicSR's build functions."""
    return {'type': component.type, **component.arguments}
