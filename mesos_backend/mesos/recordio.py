"""RecordIO framing of the Mesos v1 event stream.

Each record is its length in bytes as decimal ASCII, a newline, then exactly
that many bytes. Chunk boundaries of the HTTP body are unrelated to record
boundaries, so the decoder buffers across ``feed`` calls.
"""

from __future__ import annotations

MAX_RECORD_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 20


class RecordIOError(ValueError):
    """The stream is not valid RecordIO (bad length header or oversized record)."""


def encode(record: bytes) -> bytes:
    """One record, framed."""
    return b"%d\n" % len(record) + record


class RecordIODecoder:
    """Turns arbitrary chunks of a RecordIO stream into whole records."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_record_bytes = max_record_bytes
        self._buffer = bytearray()
        self._expected: int | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return every record it completes, in order."""
        self._buffer += chunk
        records: list[bytes] = []
        while True:
            if self._expected is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise RecordIOError("record length header too long")
                    return records
                self._expected = self._parse_length(bytes(self._buffer[:newline]))
                del self._buffer[: newline + 1]
            if len(self._buffer) < self._expected:
                return records
            records.append(bytes(self._buffer[: self._expected]))
            del self._buffer[: self._expected]
            self._expected = None

    @property
    def pending(self) -> bool:
        """True while part of a record is buffered (a stream ending now was cut short)."""
        return bool(self._buffer) or self._expected is not None

    def _parse_length(self, header: bytes) -> int:
        if not header.isdigit():
            raise RecordIOError(f"bad record length header {header[:MAX_HEADER_BYTES]!r}")
        length = int(header)
        if length > self.max_record_bytes:
            raise RecordIOError(f"record of {length} bytes exceeds the limit of {self.max_record_bytes}")
        return length
