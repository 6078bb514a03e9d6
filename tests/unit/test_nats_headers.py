"""The faster header parse gives what nats-py's own gives, on any header block."""

from hypothesis import example, given
from hypothesis import strategies as st

from services.mesh import nats_headers

# Names and values made of the bytes that matter: separators, every kind of whitespace, non-ASCII.
awkward = st.binary(max_size=12) | st.lists(
    st.sampled_from([b"a", b"Z", b"-", b":", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1f", b"\x85", b"\xc3\xa9",
                     b"\xff", b"\r", b"\n"]), max_size=8).map(b"".join)


@given(st.lists(st.tuples(awkward, st.sampled_from([b":", b": ", b"", b"::"]), awkward), max_size=12))
@example([(b"Nats-Msg-Id", b": ", b"e-1"), (b"Fleet Producer", b": ", b"x"), (b"", b":", b"empty name")])
@example([(b"Caf\xc3\xa9", b": ", b"non-ASCII name"), (b"Name", b":", b"\tvalue \xff ")])
def test_the_parse_equals_nats_pys_own(lines):
    raw = b"\r\n".join(name + colon + value for name, colon, value in lines) + b"\r\n\r\n"
    assert nats_headers.parse_header_lines(raw) == nats_headers.ORIGINAL(raw)


def test_it_replaces_nats_pys_parse_only_in_the_version_it_matches(monkeypatch):
    client = nats_headers.nats_client.Client
    monkeypatch.setattr(client, "_parse_header_lines", staticmethod(nats_headers.ORIGINAL))
    monkeypatch.setattr(nats_headers.nats_client, "__version__", "9.9.9")
    assert nats_headers.install() is False
    assert client._parse_header_lines is nats_headers.ORIGINAL
    monkeypatch.setattr(nats_headers.nats_client, "__version__", nats_headers.MATCHING_VERSION)
    assert nats_headers.install() is True
    assert client._parse_header_lines is nats_headers.parse_header_lines
