"""The registry of emulated services: add one module and one entry here per new service."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from sandbox import s3
from sandbox.marketo import service as marketo
from sandbox.maxio import service as maxio
from sandbox.maxio_core import service as maxio_core
from sandbox.mobile_commons import service as mobile_commons
from sandbox.pipedrive import service as pipedrive
from sandbox.rapidpro import service as rapidpro
from sandbox.salesforce import service as salesforce
from sandbox.spec import ServiceSpec
from sandbox.whatsapp import service as whatsapp


class UnknownServiceError(ValueError):
    """A service name that is not in the registry."""


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        salesforce.SERVICE,
        s3.SERVICE,
        maxio.SERVICE,
        maxio_core.SERVICE,
        rapidpro.SERVICE,
        whatsapp.SERVICE,
        mobile_commons.SERVICE,
        marketo.SERVICE,
        pipedrive.SERVICE,
    )
}


def resolve(names: Iterable[str] | None) -> list[ServiceSpec]:
    """Return the specs for ``names`` (all services when None), rejecting unknown names.

    Raises:
        UnknownServiceError: A name is not registered, or none was given.
    """
    if names is None:
        return list(SERVICES.values())
    specs = []
    for name in names:
        key = name.strip().lower()
        if not key:
            continue
        if key not in SERVICES:
            raise UnknownServiceError(f"unknown sandbox service {name!r}; known: {', '.join(SERVICES)}")
        specs.append(SERVICES[key])
    if not specs:
        raise UnknownServiceError("no sandbox service selected")
    return specs


def port_for(spec: ServiceSpec, overrides: Mapping[str, int] | None = None) -> int:
    """The port for ``spec``: explicit override, then ``CRM_SYNC_SANDBOX_PORT_<NAME>``, then default."""
    if overrides and overrides.get(spec.name) is not None:
        return int(overrides[spec.name])
    env = os.environ.get(spec.env_port_var)
    if env:
        return int(env)
    return spec.default_port
