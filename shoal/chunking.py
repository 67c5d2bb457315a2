"""Chunking settings of a collection: split long texts on ingest, embed each chunk.

A collection's model reads only its first `max_seq_tokens` tokens, so anything
later in a long document can never be found by vector search. A chunking
collection has the embedder split each text into chunks of at most
`chunk_tokens` of the model's own tokens (so a chunk never exceeds what the
model reads), on paragraph, sentence and then word boundaries where possible,
consecutive chunks sharing up to `overlap_tokens`. Every side reads these
settings: the coordinator asks the embedder for chunks, shards keep them in
the collection's config, and the SDK shows them.

Defaults, on principle rather than tuned on any query set: a chunk is as long
as the inputs the model was trained on, 128 word pieces (the sentence-transformers
models, all-MiniLM-L6-v2 among them, were fine-tuned on pairs cut at 128, and
read up to 256 only because truncation allows it), or the model's input length
where that is shorter, less the two special tokens [CLS] and [SEP] that every
input carries; chunks overlap by an eighth of that, in the 10-20% range the
usual guidance gives, so a sentence cut at a chunk's end is read whole at the
next chunk's start.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from shoal.errors import InvalidArgument

#: Tokens every input of a BERT-style model spends on [CLS] and [SEP].
SPECIAL_TOKENS = 2
#: The model's input length when the embedder does not report one.
FALLBACK_SEQ_TOKENS = 256
#: The input length sentence-transformers models are trained on: a default
#: chunk is no longer, even where the model reads more.
TRAINED_SEQ_TOKENS = 128
#: Bounds on a chunk's size, in tokens.
MIN_CHUNK_TOKENS = 8
MAX_CHUNK_TOKENS = 8192
#: Chunks per document at most: its vectors travel in one record.
MAX_CHUNKS = 1024


@dataclass(frozen=True, slots=True)
class ChunkingSettings:
    enabled: bool = False
    chunk_tokens: int = 0  # 0: the default (the model's trained input length)
    overlap_tokens: int | None = None  # None: the default (an eighth of a chunk)

    def with_defaults(self, max_seq_tokens: int) -> "ChunkingSettings":
        """Zero sizes resolved against the model's input length (disabled: all zero)."""
        if not self.enabled:
            return ChunkingSettings()
        seq = max_seq_tokens or FALLBACK_SEQ_TOKENS
        trained = min(seq, TRAINED_SEQ_TOKENS)
        chunk = self.chunk_tokens or max(MIN_CHUNK_TOKENS, trained - SPECIAL_TOKENS)
        overlap = chunk // 8 if self.overlap_tokens is None else self.overlap_tokens
        return replace(self, chunk_tokens=chunk, overlap_tokens=overlap)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not MIN_CHUNK_TOKENS <= self.chunk_tokens <= MAX_CHUNK_TOKENS:
            raise InvalidArgument(
                f"chunking.chunk_tokens is {self.chunk_tokens}; it must be between"
                f" {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}"
            )
        overlap = self.overlap_tokens or 0
        if not 0 <= overlap < self.chunk_tokens:
            raise InvalidArgument(
                f"chunking.overlap_tokens is {overlap}; it must be at least 0 and less than"
                f" chunk_tokens ({self.chunk_tokens})"
            )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: object) -> "ChunkingSettings":
        """Settings stored by `to_dict`; missing (stored before chunking existed): off."""
        if fields is None:
            return cls()
        if not isinstance(fields, Mapping):
            raise TypeError(f"chunking settings are {type(fields).__name__}, not an object")
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown chunking settings {sorted(unknown)}")
        overlap = fields.get("overlap_tokens")
        return cls(
            enabled=bool(fields.get("enabled", False)),
            chunk_tokens=int(str(fields.get("chunk_tokens", 0))),
            overlap_tokens=None if overlap is None else int(str(overlap)),
        )
