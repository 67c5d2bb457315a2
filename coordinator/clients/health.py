"""The grpc.health.v1 check every Shoal server answers."""

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2

from coordinator.core.ports import Health
from shoal.runtime.logs import outgoing_metadata

CHECK_METHOD = "/grpc.health.v1.Health/Check"


class HealthProbe:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        # The health stubs' types know no async Check; a typed callable does.
        self._check = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    async def check(self, timeout_s: float) -> Health:
        """The server's overall health; UNREACHABLE when it does not answer."""
        try:
            reply: health_pb2.HealthCheckResponse = await self._check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=timeout_s,
                metadata=outgoing_metadata(),
            )
        except grpc.RpcError:
            return Health.UNREACHABLE
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return Health.SERVING
        return Health.NOT_SERVING
