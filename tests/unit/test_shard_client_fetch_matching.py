"""The coordinator's shard client refuses a Fetch answer whose filter went unjudged."""

import grpc
import pytest

from coordinator.clients.shard import GrpcShardClient
from shoal.errors import FailedPrecondition
from shoal.sdk.where import combined_filter
from shoal.v1 import shard_pb2


def fetch_service(judged: bool) -> grpc.GenericRpcHandler:
    """A ShardService with only Fetch; `judged` False answers as a shard from before
    filters on Fetch: the filter ignored."""

    async def fetch(
        request: shard_pb2.ShardFetchRequest, context: object
    ) -> shard_pb2.ShardFetchResponse:
        return shard_pb2.ShardFetchResponse(
            records=[shard_pb2.ShardWrite(id="a", version=1, vector_f32=b"\0" * 8)],
            matching=["a"] if judged else [],
            filter_judged=judged,
        )

    handler = grpc.unary_unary_rpc_method_handler(
        fetch,
        request_deserializer=shard_pb2.ShardFetchRequest.FromString,
        response_serializer=shard_pb2.ShardFetchResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("shoal.v1.ShardService", {"Fetch": handler})


@pytest.mark.parametrize("judged", [True, False])
async def test_a_filter_the_shard_did_not_judge_is_an_error_not_no_match(judged: bool) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([fetch_service(judged)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(address) as channel:
            client = GrpcShardClient(address, channel)
            condition = combined_filter({"tag": "x"}, None)
            if judged:
                records, matching = await client.fetch_matching("c", ["a"], condition, 5)
                assert [r.id for r in records] == ["a"] and matching == {"a"}
            else:
                with pytest.raises(FailedPrecondition, match="upgrade the shards"):
                    await client.fetch_matching("c", ["a"], condition, 5)
    finally:
        await server.stop(None)
