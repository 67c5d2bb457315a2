"""Health checks: "" for the process, the service name for all of it, parts that failed."""

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.runtime.health import ServerHealth

SERVICE = "shoal.v1.ShardService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_failed_parts_show_under_the_service_and_clear_when_gone() -> None:
    health = ServerHealth([SERVICE])
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )

            async def status(name: str) -> int:
                request = health_pb2.HealthCheckRequest(service=name)
                reply: health_pb2.HealthCheckResponse = await check(request, timeout=10)
                return int(reply.status)

            await health.report_failed(SERVICE, ["docs"])  # found while loading
            assert await status(SERVICE) == NOT_SERVING
            await health.set_serving(True)
            assert await status("") == SERVING
            assert await status(SERVICE) == NOT_SERVING
            assert await status(f"{SERVICE}/docs") == NOT_SERVING

            await health.report_failed(SERVICE, [])  # the broken collection was deleted
            assert await status(SERVICE) == SERVING
            assert await status(f"{SERVICE}/docs") == SERVING

            await health.set_serving(False)
            assert (await status(""), await status(SERVICE)) == (NOT_SERVING, NOT_SERVING)
    finally:
        await server.stop(None)
