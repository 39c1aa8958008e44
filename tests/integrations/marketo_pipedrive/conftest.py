"""Both emulators over real HTTP for the Marketo <-> Pipedrive integration tests.

One sandbox per module, reset per test; the hooks read ``marketo_default`` and
``pipedrive_default`` from the environment exactly as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crm_sync.hooks.marketo import MarketoHook
from crm_sync.hooks.pipedrive import PipedriveHook
from crm_sync.http import HttpPolicy
from crm_sync.integrations.marketo_pipedrive.entities import EntitySync
from crm_sync.integrations.marketo_pipedrive.mappings import load_mapping_set
from sandbox.testing import Sandbox, start_sandbox

# The person field the lead_to_person mapping writes besides the emulator's own `marketoid`.
PERSON_FIELDS = [{"name": "Inferred country", "field_type": "varchar"}]


@dataclass
class World:
    """The two emulators' admin clients and a fresh sync over real hooks."""

    mk: Any
    pd: Any

    def sync(self) -> EntitySync:
        policy = HttpPolicy(max_retries=2, backoff_factor=0, backoff_jitter=0, sleep=lambda _: None)
        return EntitySync(
            MarketoHook(http_policy=policy, rate_window_s=0.01),
            PipedriveHook(http_policy=policy),
            load_mapping_set(),
        )

    def lead(self, lead_id: int) -> dict[str, Any]:
        return next(lead for lead in self.mk.state(leads=1)["leads"] if lead["id"] == lead_id)

    def pd_records(self, entity: str) -> list[dict[str, Any]]:
        return [r for r in self.pd.state(entity=entity) if not r.get("is_deleted")]

    def writes(self) -> dict[str, int]:
        """Write calls on each side since the last reset of the counts."""
        mk = sum(n for route, n in self.mk.calls()["by_route"].items() if route.startswith("POST /rest"))
        pd = sum(
            n
            for route, n in self.pd.calls()["by_route"].items()
            if route.split(" ")[0] in {"POST", "PATCH", "DELETE"} and "/_sandbox" not in route
        )
        return {"marketo": mk, "pipedrive": pd}

    def reset_calls(self) -> None:
        self.mk.reset_calls()
        self.pd.reset_calls()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["marketo", "pipedrive"], tmp_dir=Path(tmp_path_factory.mktemp("mkto-pd"))) as running:
        yield running


@pytest.fixture
def world(both: Sandbox, monkeypatch: pytest.MonkeyPatch) -> World:
    for name, value in both.conn_env().items():
        monkeypatch.setenv(name, value)
    mk, pd = both.admin("marketo"), both.admin("pipedrive")
    mk.reset()
    pd.reset()
    pd.seed({"fields": {"persons": PERSON_FIELDS}})
    return World(mk, pd)
