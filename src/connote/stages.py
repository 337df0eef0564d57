"""What every pluggable stage object shares (describers, embedders): scikit-learn's parameter conventions.

* Parameters are the keyword arguments of ``__init__``, each kept under its own name, so ``get_params()``
  reads them back and ``set_params()`` changes them (no hand-written parameter lists that drift).
* An option a stage does not take is refused by name, with the ones it takes (:func:`check_options`).
* What is recorded with a stage's results (:func:`recorded_params`) is plain JSON: never a ``repr`` with a
  memory address, never a secret, so a custom object's results are found again by the next process.
* :class:`ModelCall` is one call to a model, as a stage reports it for the runner to write to the study's
  call log (the runner is the one recorder of every model call).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from connote.errors import UserError

#: JSON types recorded as they are; anything else is recorded by its type's name.
PLAIN = (str, int, float, bool, type(None))


def init_params(cls: type, *, options_only: bool = False) -> list[str]:
    """The names of the parameters of ``cls.__init__``, in order: all of them (what ``get_params``
    returns), or with ``options_only`` the keyword-only ones (the options; the positional one is the
    argument of the spec string, e.g. the model name)."""
    sig = inspect.signature(cls.__init__)
    kinds = {inspect.Parameter.KEYWORD_ONLY}
    if not options_only:
        kinds.add(inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in list(sig.parameters.values())[1:] if p.kind in kinds]


def check_options(cls: type, options: dict, what: str) -> None:
    """Refuse options that ``cls`` does not take, naming them and the ones it does take."""
    known = init_params(cls, options_only=True)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) or "no options"
        raise UserError(f"{what} does not take {', '.join(unknown)}; it takes: {takes}")


class Stage:
    """Base of connote's stage objects: ``get_params``/``set_params`` from the ``__init__`` signature."""

    #: Parameters that are never recorded as given (credentials, where credentials come from).
    secret_params: tuple[str, ...] = ()

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The ``__init__`` parameters and their current values (scikit-learn's convention)."""
        return {name: getattr(self, name) for name in init_params(type(self))}

    def set_params(self, **params) -> Stage:
        unknown = sorted(set(params) - set(init_params(type(self))))
        if unknown:
            raise UserError(f"{self.what()} has no parameter {', '.join(unknown)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def provenance(self) -> dict[str, Any]:
        """What the parameters cannot say and a result should record (exact weights, package versions)."""
        return {}

    def what(self) -> str:
        return f"{type(self).__name__} ({getattr(self, 'spec', '')})"


def plain(value: Any) -> Any:
    """A value as recorded: JSON types as they are, lists and dicts element by element, anything else by
    its type's name (never its repr, which may hold a memory address)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "__fspath__"):
        return str(value)
    t = value if isinstance(value, type) else type(value)
    return f"<{t.__module__}.{t.__qualname__}>"


def recorded_params(stage: Any) -> dict[str, Any]:
    """What is stored with a stage's results: its parameters and provenance, as plain JSON values.

    A connote stage records ``get_params()`` (less secrets) and ``provenance()``. Any other object records
    its own ``get_params()`` if it has one, else its public attributes, with its class name."""
    if isinstance(stage, Stage):
        params = {k: v for k, v in stage.get_params().items() if k not in stage.secret_params}
        return plain({**params, **stage.provenance()})
    get = getattr(stage, "get_params", None)
    if callable(get):
        params = dict(get())
    else:
        params = {k: v for k, v in vars(stage).items() if not k.startswith("_") and not callable(v)}
    t = type(stage)
    return plain({"class": f"{t.__module__}.{t.__qualname__}", **params})


@dataclass
class ModelCall:
    """One call to a model as a stage reports it; the runner writes it to the study's call log."""

    backend: str
    model: str | None
    input_ref: str | None = None
    params: dict = field(default_factory=dict)
    status: str = "ok"  # ok | error
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    started: str | None = None
