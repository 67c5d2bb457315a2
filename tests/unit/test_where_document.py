"""The SDK's text filters: where_document and $contains / $not_contains in a where."""

import pytest

from shoal.errors import InvalidArgument
from shoal.sdk.where import (
    combined_filter,
    filter_to_where,
    where_document_to_filter,
    where_to_filter,
)
from shoal.v1 import common_pb2


def test_where_document_operators_become_text_conditions() -> None:
    assert where_document_to_filter({"$contains": "audio"}) == common_pb2.Filter(
        text_contains="audio"
    )
    nested = where_document_to_filter(
        {"$or": [{"$contains": "audio"}, {"$not_contains": "video player"}]}
    )
    assert filter_to_where(nested) == {
        "$or": [{"$contains": "audio"}, {"$not_contains": "video player"}]
    }
    assert where_to_filter({"$contains": "audio"}) == common_pb2.Filter(text_contains="audio")


def test_where_and_where_document_combine_with_and() -> None:
    combined = combined_filter({"section": "sound"}, {"$contains": "audio"})
    assert combined is not None
    assert filter_to_where(combined) == {
        "$and": [{"section": {"$eq": "sound"}}, {"$contains": "audio"}]
    }
    assert combined_filter(None, None) is None


@pytest.mark.parametrize(
    "bad", [{"$contains": ""}, {"$contains": 3}, {"$regex": "a"}, {"$and": []}, {}]
)
def test_bad_where_documents_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="where_document"):
        where_document_to_filter(bad)
