"""/api/v1/providers: the directory providers this server offers, each with its connection's JSON schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from accessiq.api.schemas import ProviderOut
from accessiq.services import providers

router = APIRouter(prefix="/providers", tags=["providers"])

ProviderName = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9_-]+$", description="Provider name.")]


@router.get("", response_model=list[ProviderOut])
def list_providers() -> list[dict[str, Any]]:
    """Every provider: the registered ones (installed here or not), then those still planned."""
    return [provider.json() for provider in providers.catalog()]


@router.get("/{name}", response_model=ProviderOut)
def get_provider(name: ProviderName) -> dict[str, Any]:
    """One provider with the JSON schema of its `connection` block."""
    return providers.find_provider(name).json()
