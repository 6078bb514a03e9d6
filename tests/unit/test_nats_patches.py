"""The changes to nats-py: the same results as its own, and only in the version they were written against."""

import logging

import nats.errors
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.mesh import nats_patches

# Names and values made of the bytes that matter: separators, every kind of whitespace, non-ASCII.
awkward = st.binary(max_size=12) | st.lists(
    st.sampled_from([b"a", b"Z", b"-", b":", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1f", b"\x85", b"\xc3\xa9",
                     b"\xff", b"\r", b"\n"]), max_size=8).map(b"".join)


@given(st.lists(st.tuples(awkward, st.sampled_from([b":", b": ", b"", b"::"]), awkward), max_size=12))
@example([(b"Nats-Msg-Id", b": ", b"e-1"), (b"Fleet Producer", b": ", b"x"), (b"", b":", b"empty name")])
@example([(b"Caf\xc3\xa9", b": ", b"non-ASCII name"), (b"Name", b":", b"\tvalue \xff ")])
def test_the_parse_equals_nats_pys_own(lines):
    raw = b"\r\n".join(name + colon + value for name, colon, value in lines) + b"\r\n\r\n"
    assert nats_patches.parse_header_lines(raw) == nats_patches.ORIGINAL(raw)


def test_they_apply_only_in_the_version_they_match_and_say_once_when_they_do_not(monkeypatch, caplog):
    client, pull = nats_patches.nats_client.Client, nats_patches.JetStreamContext.PullSubscription
    monkeypatch.setattr(client, "_parse_header_lines", staticmethod(nats_patches.ORIGINAL))
    monkeypatch.setattr(pull, "fetch", nats_patches.ORIGINAL_FETCH)
    monkeypatch.setattr(nats_patches.nats_client, "__version__", "9.9.9")
    with caplog.at_level(logging.WARNING, logger="fleet.nats"):
        assert nats_patches.install() is False
        assert nats_patches.install() is False
    assert client._parse_header_lines is nats_patches.ORIGINAL and pull.fetch is nats_patches.ORIGINAL_FETCH
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "nats-py 9.9.9 is not 2.16.0" in caplog.records[0].getMessage()
    monkeypatch.setattr(nats_patches.nats_client, "__version__", nats_patches.MATCHING_VERSION)
    assert nats_patches.install() is True
    assert client._parse_header_lines is nats_patches.parse_header_lines
    assert pull.fetch is nats_patches.fetch_timing_out_as_nats_does


@pytest.mark.parametrize("raised", [TimeoutError(), TimeoutError(), nats.errors.TimeoutError()])
async def test_a_fetch_that_times_out_raises_nats_pys_own_timeout_which_faststreams_loop_expects(monkeypatch, raised):
    async def fetch(self, batch=1, timeout=5.0):
        raise raised

    monkeypatch.setattr(nats_patches, "ORIGINAL_FETCH", fetch)
    with pytest.raises(nats.errors.TimeoutError):
        await nats_patches.fetch_timing_out_as_nats_does(object(), batch=1, timeout=0.1)


async def test_a_fetch_that_fails_otherwise_raises_what_it_raised(monkeypatch):
    async def fetch(self, batch=1, timeout=5.0):
        raise nats.errors.ConnectionClosedError

    monkeypatch.setattr(nats_patches, "ORIGINAL_FETCH", fetch)
    with pytest.raises(nats.errors.ConnectionClosedError):
        await nats_patches.fetch_timing_out_as_nats_does(object())
