"""RecordIO framing: records survive any chunking of the stream."""

import pytest

from mesos_backend.mesos.recordio import RecordIODecoder, RecordIOError, encode

RECORDS = [b'{"type":"SUBSCRIBED"}', b"", b'{"type":"HEARTBEAT"}', "{\"m\":\"\u00e9t\u00e9\"}".encode()]


def test_encode_prefixes_byte_length():
    assert encode("é".encode()) == b"2\n\xc3\xa9"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_decoder_reassembles_any_chunking(chunk_size):
    stream = b"".join(encode(r) for r in RECORDS)
    decoder = RecordIODecoder()
    out = []
    for i in range(0, len(stream), chunk_size):
        out += decoder.feed(stream[i : i + chunk_size])
    assert out == RECORDS
    assert not decoder.pending


def test_cut_stream_is_pending():
    decoder = RecordIODecoder()
    assert decoder.feed(b"10\nabc") == []
    assert decoder.pending


@pytest.mark.parametrize("bad", [b"x1\n{}", b"-1\n", b"123456789012345678901234"])
def test_bad_headers_raise(bad):
    with pytest.raises(RecordIOError):
        RecordIODecoder().feed(bad)


def test_oversized_record_raises():
    with pytest.raises(RecordIOError):
        RecordIODecoder(max_record_bytes=10).feed(b"11\n")
