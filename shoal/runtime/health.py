"""What a server's grpc.health.v1 service answers, including parts of a service that failed.

"" (the server as a whole) and each service name are SERVING while the server
serves. A service can report parts of itself that failed (a shard: collections
it holds on disk but could not load): its own name then answers NOT_SERVING and
each failed part answers NOT_SERVING under "<service>/<part>", while "" stays
SERVING, because the process is up and serves everything else, and restarting
it (what an orchestrator does about a failing probe on "") would not repair a
corrupt store.
"""

from collections.abc import Iterable, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def part_name(service: str, part: str) -> str:
    """The health-check name of one part of a service."""
    return f"{service}/{part}"


class ServerHealth:
    """Statuses for "" and `services`; used from the server's event loop only."""

    def __init__(self, services: Sequence[str]) -> None:
        self.servicer = HealthServicer()
        self._services = list(services)
        self._serving = False
        self._failed: dict[str, frozenset[str]] = {}

    async def set_serving(self, serving: bool) -> None:
        """The whole server starts or stops serving."""
        self._serving = serving
        await self.servicer.set("", SERVING if serving else NOT_SERVING)
        for service in self._services:
            await self._set_service(service)

    async def report_failed(self, service: str, parts: Iterable[str]) -> None:
        """The parts of `service` that have failed now (none: all is well again)."""
        now = frozenset(parts)
        before = self._failed.get(service, frozenset())
        self._failed[service] = now
        for part in before - now:
            await self.servicer.set(part_name(service, part), SERVING)
        for part in now:
            await self.servicer.set(part_name(service, part), NOT_SERVING)
        await self._set_service(service)

    async def _set_service(self, service: str) -> None:
        whole = self._serving and not self._failed.get(service)
        await self.servicer.set(service, SERVING if whole else NOT_SERVING)
