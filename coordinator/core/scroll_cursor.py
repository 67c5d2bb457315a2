"""Scroll paging: page sizes and the cursor handed to callers between pages.

The cursor is the last id of the page, base64url-encoded so callers treat it
as opaque and any id survives being pasted into a URL or a shell.
"""

import base64
import binascii

from shoal.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000


def check_page_size(page_size: int) -> int:
    """The page size to use: 0 takes the default."""
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size is {page_size}; it must be at most {MAX_PAGE_SIZE}")
    return page_size


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The id after which the page starts; empty for the first page."""
    if not cursor:
        return ""
    try:
        return base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(
            "cursor is not one this service handed out: pass next_cursor back as it came"
        ) from None
