"""The server's database: typed SQLAlchemy 2 models, engine set-up and programmatic Alembic migrations."""

from fleet_server.db.engine import Database, make_engine, upgrade_database
from fleet_server.db.models import (Alert, AlertRuleOverride, ApiKey, AuditEntry, Base, CommandRow, Device,
                                    EnrollmentToken, ModelPackage, RevokedCert, TelemetryAggregate, TelemetryRow)

__all__ = [
    "Alert", "AlertRuleOverride", "ApiKey", "AuditEntry", "Base", "CommandRow", "Database", "Device",
    "EnrollmentToken", "ModelPackage", "RevokedCert", "TelemetryAggregate", "TelemetryRow", "make_engine",
    "upgrade_database",
]
