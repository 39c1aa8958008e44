"""The dashboard's FastAPI app, mounted by Airflow at ``/crm-sync`` (see crm_sync.plugin).

Plugin apps are open by default (reference/airflow-plugins.md section 1), so every route
depends on Airflow's own ``get_user``: the UI's ``_token`` cookie (the page runs in an iframe
of the Airflow UI, which sends it) or ``Authorization: Bearer <JWT from POST /auth/token>``.
No login: 401; a bad token: 403. ``/metrics`` also takes a scrape token (see ``metrics_user``).

Routes are plain ``def``: they hit databases, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from crm_sync.dashboard import airflow_meta, queries
from crm_sync.dashboard.charts import trend_svg
from crm_sync.dashboard.metrics import CONTENT_TYPE, render_metrics
from crm_sync.dashboard.registry import dag_id_for, integrations
from crm_sync.dashboard.retry import RetryRefused, RetryRequest, audit_log, retry_records
from crm_sync.hooks.database import StagingHook

__all__ = ["METRICS_CONN_ID", "app", "create_app"]

PAGE_SIZE = 200
METRICS_CONN_ID = "crm_sync_metrics"
"""Optional connection whose password is a bearer token for Prometheus scrapes."""

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_bearer = HTTPBearer(auto_error=False)


async def current_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The logged-in Airflow user (Airflow's own ``get_user``): 401 without a login."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)


def _metrics_token() -> str | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(METRICS_CONN_ID).password or None
    except AirflowNotFoundException:
        return None


async def metrics_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """Who scrapes: the ``crm_sync_metrics`` bearer token (Prometheus), else an Airflow login."""
    token = _metrics_token() if bearer and bearer.scheme.lower() == "bearer" else None
    if token and bearer and secrets.compare_digest(bearer.credentials.encode(), token.encode()):
        return "metrics-token"
    user = await current_user(request, bearer)
    return user.get_name()


User = Annotated[Any, Depends(current_user)]


def staging() -> Any:
    """The staging engine (connection ``crm_sync_staging``)."""
    return StagingHook().get_engine()


Engine = Annotated[Any, Depends(staging)]


def _authorize_trigger(user: Any, dag_id: str) -> None:
    """403 unless Airflow's auth manager lets ``user`` create runs of ``dag_id``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    allowed = get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        raise HTTPException(403, f"user {user.get_name()!r} may not trigger {dag_id}")


def _do_retry(engine: Any, user: Any, integration: Any, keys: Any) -> dict[str, Any]:
    try:
        request = RetryRequest.build(integration, keys)
        dag_id = dag_id_for(engine, request.integration)
        if dag_id:
            _authorize_trigger(user, dag_id)
        return retry_records(
            engine,
            request,
            dag_id=dag_id,
            user_name=user.get_name(),
            dag_params=airflow_meta.dag_params,
            trigger=airflow_meta.trigger,
        )
    except RetryRefused as exc:
        raise HTTPException(exc.status, exc.reason) from exc


def _same_origin(request: Request) -> None:
    """Refuse cross-site form posts: the cookie login would otherwise ride along (CSRF)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
        raise HTTPException(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin request refused")


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a date (YYYY-MM-DD), got {value!r}") from exc


def rejected_filter(
    integration: str | None = None,
    error_code: str | None = None,
    since: str | None = None,
    until: str | None = None,
    show_all: Annotated[bool, Query(alias="all")] = False,
    page: Annotated[int, Query(ge=1)] = 1,
) -> queries.RejectedFilter:
    """The rejected-records filter from the query string (shared by the page and the JSON)."""
    return queries.RejectedFilter(
        integration=integration or None,
        error_code=error_code or None,
        since=_day(since, "since"),
        until=_day(until, "until"),
        still_failing=not show_all,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )


Filter = Annotated[queries.RejectedFilter, Depends(rejected_filter)]


def _page(request: Request, template: str, user: Any, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(
        base=request.scope.get("root_path", ""),
        user=user.get_name(),
        now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )
    return HTMLResponse(html)


def create_app() -> FastAPI:
    """Build the app (no OpenAPI docs: they would be open; endpoints are in the README)."""
    api = FastAPI(title="CRM Sync", docs_url=None, redoc_url=None, openapi_url=None)

    # -- JSON for scripts ---------------------------------------------------------------------
    @api.get("/api/overview")
    def api_overview(user: User, engine: Engine) -> dict[str, Any]:
        return {"integrations": queries.overview(engine), "budgets": queries.api_budgets(engine)}

    @api.get("/api/runs")
    def api_runs(user: User, engine: Engine, integration: str, limit: int = Query(50, ge=1, le=500)) -> Any:
        return {"integration": integration, "runs": queries.runs(engine, integration, limit=limit)}

    @api.get("/api/run")
    def api_run(user: User, engine: Engine, integration: str, run_id: str) -> Any:
        detail = queries.run_detail(engine, integration, run_id)
        if detail is None:
            raise HTTPException(404, f"no run {run_id!r} of {integration!r} in the ledger")
        detail["steps"] = airflow_meta.step_durations(detail.get("dag_id"), run_id)
        return detail

    @api.get("/api/rejected")
    def api_rejected(user: User, engine: Engine, flt: Filter) -> Any:
        return queries.rejected_records(engine, flt)

    @api.get("/api/history")
    def api_history(user: User, engine: Engine, key: str, integration: str | None = None) -> Any:
        return queries.record_history(engine, key.strip(), integration=integration or None)

    @api.get("/api/imports")
    def api_imports(user: User, engine: Engine) -> Any:
        return {"imports": queries.file_imports(engine)}

    @api.get("/api/mobile-commons")
    def api_mobile_commons(user: User, engine: Engine) -> Any:
        return {"categories": queries.mobile_commons_categories(engine)}

    @api.get("/api/audit")
    def api_audit(user: User, engine: Engine) -> Any:
        return {"actions": audit_log(engine)}

    @api.post("/api/retry", status_code=201)
    def api_retry(user: User, engine: Engine, body: dict[str, Any]) -> Any:
        return _do_retry(engine, user, body.get("integration"), body.get("keys"))

    @api.get("/metrics")
    def metrics(who: Annotated[str, Depends(metrics_user)], engine: Engine) -> Response:
        return Response(render_metrics(engine), media_type=CONTENT_TYPE)

    # -- The page -----------------------------------------------------------------------------
    @api.get("/dashboard", response_class=HTMLResponse)
    def page_overview(request: Request, user: User, engine: Engine) -> HTMLResponse:
        rows = queries.overview(engine)
        charts = {row["integration"]: trend_svg(row["trend"], title=row["integration"]) for row in rows}
        return _page(
            request, "overview.html", user, rows=rows, charts=charts, budgets=queries.api_budgets(engine)
        )

    @api.get("/dashboard/runs", response_class=HTMLResponse)
    def page_runs(request: Request, user: User, engine: Engine, integration: str) -> HTMLResponse:
        return _page(
            request,
            "runs.html",
            user,
            integration=integration,
            runs=queries.runs(engine, integration, limit=100),
        )

    @api.get("/dashboard/run", response_class=HTMLResponse)
    def page_run(request: Request, user: User, engine: Engine, integration: str, run_id: str) -> HTMLResponse:
        detail = queries.run_detail(engine, integration, run_id)
        if detail is None:
            raise HTTPException(404, f"no run {run_id!r} of {integration!r} in the ledger")
        steps = airflow_meta.step_durations(detail.get("dag_id"), run_id)
        return _page(request, "run.html", user, run=detail, steps=steps)

    @api.get("/dashboard/rejected", response_class=HTMLResponse)
    def page_rejected(request: Request, user: User, engine: Engine, flt: Filter) -> HTMLResponse:
        return _page(
            request,
            "rejected.html",
            user,
            flt=flt,
            page_no=flt.offset // PAGE_SIZE + 1,
            result=queries.rejected_records(engine, flt),
            integrations=integrations(engine),
        )

    @api.post("/dashboard/rejected/retry", response_class=HTMLResponse)
    def page_retry(
        request: Request,
        user: User,
        engine: Engine,
        integration: Annotated[str, Form()],
        keys: Annotated[list[str] | None, Form()] = None,
    ) -> HTMLResponse:
        _same_origin(request)
        result = _do_retry(engine, user, integration, keys or [])
        return _page(request, "retried.html", user, result=result, integration=integration)

    @api.get("/dashboard/history", response_class=HTMLResponse)
    def page_history(
        request: Request, user: User, engine: Engine, key: str = "", integration: str | None = None
    ) -> HTMLResponse:
        history = (
            queries.record_history(engine, key.strip(), integration=integration) if key.strip() else None
        )
        return _page(request, "history.html", user, key=key, history=history)

    @api.get("/dashboard/imports", response_class=HTMLResponse)
    def page_imports(request: Request, user: User, engine: Engine) -> HTMLResponse:
        return _page(
            request,
            "imports.html",
            user,
            imports=queries.file_imports(engine),
            categories=queries.mobile_commons_categories(engine),
        )

    @api.get("/dashboard/audit", response_class=HTMLResponse)
    def page_audit(request: Request, user: User, engine: Engine) -> HTMLResponse:
        return _page(request, "audit.html", user, actions=audit_log(engine))

    @api.exception_handler(HTTPException)
    def _errors(request: Request, exc: HTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if "/dashboard" in request.url.path and exc.status_code != 401:
            html = _TEMPLATES.get_template("error.html").render(
                base=request.scope.get("root_path", ""), status=exc.status_code, detail=exc.detail
            )
            return HTMLResponse(html, status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    return api


app = create_app()
