"""What a run needs of its directory, resolved against the store: settings, connector, plan context."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from accessiq.config import Settings
from accessiq.connectors import connector_class
from accessiq.connectors.base import Connector
from accessiq.errors import ConfigurationError
from accessiq.store.crypto import SecretBox
from accessiq.store.tables import Directory, GroupMapping, Organization, Role
from accessiq.sync.document import validate_connection
from accessiq.sync.mapping import CompiledMapping, referenced_fields
from accessiq.sync.planner import MappingRule, PlanContext
from accessiq.sync.settings import SyncSettings


def settings_of(directory: Directory) -> SyncSettings:
    return SyncSettings.model_validate(directory.settings or {})


def organization_named(session: Session, slug: str, field: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise ConfigurationError(
            f"organization {slug!r} does not exist",
            field=field,
            hint=f"create it: accessiq orgs create {slug}",
        )
    return org


def role_named(session: Session, name: str, field: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        known = ", ".join(session.scalars(select(Role.name).order_by(Role.rank.desc())))
        raise ConfigurationError(f"role {name!r} does not exist", field=field, hint=f"roles: {known}")
    return role


def mappings_of(session: Session, directory: Directory, *, include_removed: bool = False) -> list[GroupMapping]:
    query = select(GroupMapping).where(GroupMapping.directory_id == directory.id)
    if not include_removed:
        query = query.where(GroupMapping.removed.is_(False))
    return list(session.scalars(query.order_by(GroupMapping.position, GroupMapping.id)))


def build_connector(box: SecretBox, directory: Directory, settings: SyncSettings | None = None) -> Connector:
    """A connector for the directory, with its secrets decrypted and the fields its mapping reads.

    It knows the endpoints the operator allows (ACCESSIQ_ALLOWED_ENDPOINTS): only those
    and the provider's public ones may be quoted in its error messages.
    """
    cls = connector_class(directory.provider)
    settings = settings or settings_of(directory)
    connection = validate_connection(directory.provider, {**directory.connection, **box.open(directory.secrets)})
    mapping = CompiledMapping.build(cls.default_mapping, settings.attribute_mapping)
    fields = referenced_fields(list(mapping.sources), settings.user_filter.condition)
    connector = cls(connection, fields=fields, allowed_endpoints=Settings().endpoint_allow_list)
    connector.org_units = tuple(settings.user_filter.org_units)
    return connector


def plan_context(session: Session, directory: Directory, settings: SyncSettings | None = None) -> PlanContext:
    """Settings resolved against the store: organization and role ids, compiled mapping, pins."""
    settings = settings or settings_of(directory)
    cls = connector_class(directory.provider)
    default_org = None
    if settings.default_organization:
        org = organization_named(session, settings.default_organization, "settings.default_organization")
        default_org = (org.id, org.slug)
    role = role_named(session, settings.default_role, "settings.default_role")
    orgs = dict(session.execute(select(Organization.id, Organization.slug)).all())
    roles = dict(session.execute(select(Role.id, Role.name)).all())
    rules = tuple(
        MappingRule(
            id=m.id,
            source_group=m.source_group,
            organization_id=m.organization_id,
            organization=orgs[m.organization_id],
            role_id=m.role_id,
            role=roles[m.role_id],
            removed=m.removed,
        )
        for m in mappings_of(session, directory, include_removed=True)
    )
    return PlanContext(
        directory_id=directory.id,
        settings=settings,
        mapping=CompiledMapping.build(cls.default_mapping, settings.attribute_mapping),
        group_mappings=rules,
        default_organization=default_org,
        default_role=(role.id, role.name),
        pins=dict(directory.group_pins or {}),
        organizations=orgs,
        roles=roles,
        directories=dict(session.execute(select(Directory.id, Directory.name)).all()),
    )
