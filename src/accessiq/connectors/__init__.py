"""Directory providers, looked up by the name a directory document gives in `provider`.

Each provider is one module here whose Connector class describes itself (title, description,
connection model with field kinds, sandbox); `accessiq.services.providers` turns that into the
catalog every face reads.
"""

from __future__ import annotations

from importlib import import_module

from accessiq.connectors.base import Connector, missing_requirements
from accessiq.errors import ConfigurationError

# provider name -> "module:Class"; modules load on first use so a provider's
# dependencies cost nothing to the others.
_PROVIDERS = {
    "file": "accessiq.connectors.file:FileConnector",
    "entra": "accessiq.connectors.entra:EntraConnector",
    "okta": "accessiq.connectors.okta:OktaConnector",
    "google": "accessiq.connectors.google:GoogleConnector",
    "ldap": "accessiq.connectors.ldap:LdapConnector",
    "scim": "accessiq.connectors.scim:ScimConnector",
}

# Providers the product page promises that have no connector yet: (title, description).
PLANNED: dict[str, tuple[str, str]] = {}


def register_provider(name: str, target: str) -> None:
    """Add a provider by "module:Class" (plugins, and tests that add a throwaway provider)."""
    _PROVIDERS[name] = target


def unregister_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)


def registered_providers() -> list[str]:
    return sorted(_PROVIDERS)


def available_providers() -> list[str]:
    """Registered providers whose dependencies are installed."""
    return [name for name in registered_providers() if not missing_requirements(_load(name))]


def _load(name: str) -> type[Connector]:
    module, _, cls = _PROVIDERS[name].partition(":")
    connector: type[Connector] = getattr(import_module(module), cls)
    return connector


def connector_class(provider: str, *, require_installed: bool = True) -> type[Connector]:
    """The connector class for `provider`, or a ConfigurationError naming the known ones.

    A registered provider whose optional dependency is missing is refused with what to install,
    unless `require_installed` is False (the catalog shows it as not installed).
    """
    if provider not in _PROVIDERS:
        what = f"unknown provider {provider!r}"
        if provider in PLANNED:
            what = f"provider {provider!r} is planned but not available yet"
        raise ConfigurationError(
            f"{what}; choose one of {', '.join(available_providers())}",
            field="provider",
        )
    connector = _load(provider)
    if require_installed and missing_requirements(connector):
        raise ConfigurationError(
            f"the {provider} provider is not installed on this server",
            field="provider",
            hint=connector.install_hint or f"install {', '.join(missing_requirements(connector))}",
        )
    return connector
