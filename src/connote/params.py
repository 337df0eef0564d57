"""scikit-learn's estimator conventions for connote's stages, and how a stage's parameters are recorded.

A stage stores each ``__init__`` argument unchanged under its own name, checks values when it is fitted,
and keeps what fitting learns in attributes ending in ``_``. :class:`Params` gives such a class
``get_params()`` and ``set_params()``; :func:`recorded_params` turns any stage (connote's, a user's own
object) into the JSON a run is keyed and recorded by, never containing a memory address (a ``repr`` such
as ``<My object at 0x7f...>`` differs in every process, so such a run would never be found again).
"""

from __future__ import annotations

import inspect
import re

from connote.errors import UserError
from connote.specs import unknown_option


class Params:
    """``get_params`` / ``set_params`` from the ``__init__`` signature, as scikit-learn's BaseEstimator."""

    #: Parameters never recorded as given (credentials, where credentials come from, URLs that may hold them).
    secret_params: tuple[str, ...] = ()

    def provenance(self) -> dict:
        """What the parameters cannot say and a result should record beside them (the exact weights, a
        package version, a URL without its credentials). Default: nothing."""
        return {}

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = False) -> dict:
        """The ``__init__`` arguments, by name (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params) -> Params:
        names = self.param_names()
        for key, value in params.items():
            if key not in names:
                raise unknown_option(type(self).__name__, key, names)
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        params = self.get_params().items()
        args = ", ".join(f"{k}={v!r}" for k, v in params if k not in self.secret_params)
        return f"{type(self).__name__}({args})"


def check_options(what: str, given: dict, known) -> None:
    """Refuse options a stage does not take, with the known ones and the closest match (all of the unknown
    ones are named when there are several)."""
    unknown = [key for key in given if key not in known]
    if len(unknown) == 1:
        raise unknown_option(what, unknown[0], known)
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise UserError(f"unknown {what} options {names} (known: {', '.join(sorted(known))})")


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")


def qualified_name(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def recorded_params(stage) -> dict:
    """The parameters of ``stage`` as plain JSON values, with its class: ``get_params()`` where it has one
    (connote's stages, scikit-learn estimators), else a legacy ``params()``, else its public attributes."""
    if isinstance(stage, Params):
        secret = set(stage.secret_params)
        params = {k: v for k, v in stage.get_params().items() if k not in secret} | stage.provenance()
    elif hasattr(stage, "get_params"):
        params = stage.get_params()
    elif hasattr(stage, "params") and callable(stage.params):
        params = stage.params()
    else:
        params = (
            {k: v for k, v in vars(stage).items() if not k.startswith("_") and not k.endswith("_")}
            if hasattr(stage, "__dict__")
            else {}
        )
    return {"class": qualified_name(stage), **{str(k): plain(v) for k, v in sorted(params.items())}}


def plain(value):
    """A JSON-ready form of one parameter value; objects become their class and parameters, and a text
    form that holds a memory address is replaced by the class name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, type) or callable(value) and not hasattr(value, "get_params"):
        return {"class": getattr(value, "__module__", "?") + "." + getattr(value, "__qualname__", "?")}
    if hasattr(value, "get_params") or hasattr(value, "params"):
        return recorded_params(value)
    text = repr(value)
    return {"class": qualified_name(value)} if _ADDRESS.search(text) else text
