"""Report CSV export: ``GET /00O...?export=1&enc=UTF-8&xf=csv`` (the URL Mobile Commons reads).

A Salesforce report's "Custom Export URL" (seed 003) is the report's page with
``?export=1&enc=UTF-8&xf=csv`` appended; it answers the report rows as CSV, one heading per
column. Reports are defined through the admin API as a SOQL query plus the CSV headings:
``POST /_sandbox/reports {"id": "00O...", "soql": "SELECT Id, ... FROM Contact", "headings": [...]}``.
The export needs a session (``Authorization: Bearer`` or the ``sid`` cookie) and counts as an
API call (I: in a real org it is a UI request).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandbox.emulator import AdminError
from sandbox.salesforce.backend import SalesforceBackend
from sandbox.salesforce.errors import not_found
from sandbox.salesforce.query import compile_soql, csv_rows

REPORT_ID = re.compile(r"^00O[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")


def _export(backend: SalesforceBackend, report: dict[str, Any]) -> str:
    _, compiled = compile_soql(backend.store, report["soql"], include_deleted=False, today=backend.today())
    rows = backend.store.select(compiled.sql, compiled.params)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report["headings"])
    writer.writerows(csv_rows(compiled, rows))
    return out.getvalue()


def install_reports(app: FastAPI, backend: SalesforceBackend) -> None:
    """Add the export route and ``POST /_sandbox/reports`` to the Salesforce emulator."""
    reports: dict[str, dict[str, Any]] = {}
    admin = APIRouter(prefix="/_sandbox")

    @admin.post("/reports")
    async def define_report(request: Request) -> dict[str, Any]:
        body = await request.json()
        report_id, soql, headings = body.get("id"), body.get("soql"), body.get("headings")
        if not isinstance(report_id, str) or not REPORT_ID.match(report_id):
            raise AdminError("report id must be a 15- or 18-character id starting 00O")
        if not isinstance(soql, str) or not isinstance(headings, list):
            raise AdminError("a report needs soql (text) and headings (a list)")
        compiled = compile_soql(backend.store, soql, include_deleted=False, today=backend.today())[1]
        if len(compiled.columns) != len(headings):
            raise AdminError(f"{len(headings)} headings for {len(compiled.columns)} columns")
        reports[report_id[:15]] = {"soql": soql, "headings": [str(h) for h in headings]}
        return {"id": report_id, "columns": len(headings)}

    @app.get("/{report_id}")
    async def export(report_id: str, request: Request) -> Response:
        report = reports.get(report_id[:15]) if REPORT_ID.match(report_id) else None
        params = request.query_params
        if report is None or params.get("export") != "1" or params.get("xf", "").lower() != "csv":
            raise not_found()
        cookie = request.cookies.get("sid")
        backend.authenticate(request.headers.get("authorization") or (f"Bearer {cookie}" if cookie else None))
        backend.charge_api_call()
        text = await run_in_threadpool(_export, backend, report)
        return Response(text, media_type="text/csv; charset=UTF-8")

    app.include_router(admin)
