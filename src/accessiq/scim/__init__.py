"""The SCIM 2.0 face: identity providers push users and groups to a directory (RFC 7643/7644)."""

from accessiq.scim.errors import PREFIX, is_scim_path
from accessiq.scim.router import build_router
from accessiq.services.scim import RETRY_AFTER

__all__ = ["PREFIX", "RETRY_AFTER", "build_router", "is_scim_path"]
