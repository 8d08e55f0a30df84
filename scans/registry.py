"""Name -> strategy registry: ``register_scan``, ``get_scan``, ``list_scans``."""
from __future__ import annotations

import inspect
from typing import Callable

from .base import ScanStrategy

_REGISTRY: dict[str, Callable] = {}


def _is_strategy(obj) -> bool:
    if isinstance(obj, ScanStrategy):
        return True
    return (not isinstance(obj, type) and callable(getattr(obj, "orders", None))
            and hasattr(obj, "num_directions"))


def register_scan(name: str):
    """Decorator registering a ScanStrategy subclass, or a factory returning one, as ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_scan: `name` must be a non-empty string, got {name!r}")

    def decorator(obj):
        if name in _REGISTRY:
            raise ValueError(f"register_scan: a scan named {name!r} is already registered "
                             f"({_REGISTRY[name]!r}); choose another name or unregister_scan({name!r}) first")
        if isinstance(obj, type):
            if not issubclass(obj, ScanStrategy):
                raise TypeError(f"register_scan({name!r}): {obj.__name__} must subclass scans.ScanStrategy")
            if "name" not in vars(obj):  # first registration names the class; aliases leave it as is
                obj.name = name
        elif not callable(obj):
            raise TypeError(f"register_scan({name!r}): expected a class or a factory, got {obj!r}")
        _REGISTRY[name] = obj
        return obj

    return decorator


def unregister_scan(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unregister_scan: no scan named {name!r}; available: {', '.join(list_scans())}")
    del _REGISTRY[name]


def list_scans() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def _check_option_names(name: str, factory: Callable, options: dict) -> None:
    if isinstance(factory, type) and factory.__init__ is ScanStrategy.__init__:
        params = []  # a strategy class without its own __init__ takes no options
    else:
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):  # no introspectable signature: let the factory decide
            return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"scan {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options are: {', '.join(accepted) or '(none)'}")


def get_scan(name, **options):
    """The strategy registered as ``name``, built with ``options``; a built strategy is returned as is."""
    if _is_strategy(name):
        if options:
            raise ValueError(f"get_scan: options {sorted(options)} cannot be applied to an already "
                             f"built strategy {name!r}")
        return name
    if not isinstance(name, str):
        raise TypeError(f"get_scan: expected a scan name or a strategy instance, got {name!r}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown scan {name!r}; available scans: {', '.join(list_scans())}")
    factory = _REGISTRY[name]
    _check_option_names(name, factory, options)
    try:
        strategy = factory(**options)
    except (TypeError, ValueError) as error:  # bad option values: say which scan, keep the original as cause
        raise (ValueError if isinstance(error, ValueError) else TypeError)(f"scan {name!r}: {error}") from error
    if not _is_strategy(strategy):
        raise TypeError(f"scan {name!r}: the registered factory returned {strategy!r}, not a strategy")
    strategy.name = name  # on the instance: each registered name (aliases too) reports itself
    return strategy


def resolve_scan(scan):
    """A model's ``scan=`` argument as a strategy: a registered name, (name, options),
    dict(name=..., **options) or a strategy instance."""
    if isinstance(scan, str):
        return get_scan(scan)
    if isinstance(scan, (tuple, list)) and len(scan) == 2 and isinstance(scan[0], str):
        return get_scan(scan[0], **dict(scan[1] or {}))
    if isinstance(scan, dict):
        options = dict(scan)
        if "name" not in options:
            raise ValueError(f"scan={scan!r}: a dict must name the strategy with a 'name' key")
        return get_scan(options.pop("name"), **options)
    return get_scan(scan)
