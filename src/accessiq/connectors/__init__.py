"""Directory providers, looked up by the name a directory document gives in `provider`."""

from __future__ import annotations

from importlib import import_module

from accessiq.connectors.base import Connector
from accessiq.errors import ConfigurationError

# provider name -> "module:Class"; modules load on first use so a provider's
# dependencies cost nothing to the others.
_PROVIDERS = {
    "file": "accessiq.connectors.file:FileConnector",
    "entra": "accessiq.connectors.entra:EntraConnector",
}


def available_providers() -> list[str]:
    return sorted(name for name in _PROVIDERS if _importable(name))


def _importable(name: str) -> bool:
    module, _, _ = _PROVIDERS[name].partition(":")
    try:
        import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return False
        raise
    return True


def connector_class(provider: str) -> type[Connector]:
    """The connector class for `provider`, or a ConfigurationError naming the known ones."""
    target = _PROVIDERS.get(provider)
    if target is None or not _importable(provider):
        raise ConfigurationError(
            f"unknown provider {provider!r}; choose one of {', '.join(available_providers())}",
            field="provider",
        )
    module, _, cls = target.partition(":")
    connector: type[Connector] = getattr(import_module(module), cls)
    return connector
