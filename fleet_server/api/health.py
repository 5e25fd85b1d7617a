"""Liveness and Prometheus metrics, outside /api/v1."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from fleet_server.api.deps import FleetDep
from fleet_server.api.errors import responses
from fleet_server.schemas import Health

router = APIRouter(tags=["health"], responses=responses(413))


@router.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "the database is not reachable"}})
def healthz(fleet: FleetDep, response: Response) -> Health:
    try:
        with fleet.db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        db_ok = True
    except Exception:  # noqa: BLE001 - reported, not raised
        db_ok = False
    if not db_ok:
        response.status_code = 503
    return Health(ok=db_ok, database=db_ok, broker_connected=fleet.broker_connected(),
                  broker_url=fleet.public_broker_url)


@router.get("/metrics", response_class=Response)
def metrics(fleet: FleetDep) -> Response:
    return Response(fleet.metrics.render(), media_type=CONTENT_TYPE_LATEST)

