"""AccessIQ Directory Sync: users, groups, organizations and roles kept in sync with external directories."""

__version__ = "0.1.0"
