"""Log lines as operators read them: JSON, redacted, each with the correlation id of the work in hand."""

import asyncio
import json
import logging

import pytest

from contracts.envelope import traceparent_for
from services.mesh.logs import (
    CorrelationFilter,
    StoppedHandlerIsNotAnError,
    correlated,
    current_correlation_id,
    formatter,
)
from services.mesh.redaction import MASK, RedactingFilter
from tests.support import log_lines


@pytest.fixture
def lines():
    logger = logging.getLogger("tests.unit.test_logs")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with log_lines(logger, "collector", RedactingFilter(), CorrelationFilter()) as kept:
            yield logger, kept
    finally:
        logger.propagate = True


def test_a_line_logged_while_handling_a_message_carries_its_correlation_id(lines):
    logger, kept = lines

    with correlated("chain-7"):
        logger.info("deliberation %s advanced", "d-1")
    logger.info("idle")

    first, second = (json.loads(line) for line in kept)
    assert first["message"] == "deliberation d-1 advanced"
    assert (first["correlation_id"], first["service"], first["level"]) == ("chain-7", "collector", "INFO")
    assert second["correlation_id"] is None
    assert current_correlation_id() == ""


def test_a_correlation_id_given_by_the_caller_wins(lines):
    logger, kept = lines

    with correlated("chain-7"):
        logger.info("x", extra={"correlation_id": "chain-9"})

    assert json.loads(kept[0])["correlation_id"] == "chain-9"


def test_a_traceback_in_a_json_line_is_redacted(lines):
    logger, kept = lines

    try:
        raise ConnectionError("cannot reach postgres://app:s3cret@db/x")
    except ConnectionError:
        logger.exception("store down")

    [line] = kept
    assert "s3cret" not in line
    assert f"postgres://app:{MASK}@db/x" in json.loads(line)["exc_info"]


def test_the_text_format_is_for_people_and_still_names_the_correlation():
    record = logging.LogRecord("fleet.x", logging.INFO, __file__, 1, "hello", None, None)
    CorrelationFilter().filter(record)
    record.correlation_id = "chain-7"

    assert formatter("agents", "text").format(record).endswith("agents INFO fleet.x [chain-7]: hello")


def test_an_event_without_a_traceparent_gets_the_same_trace_every_time_it_is_handled():
    # The first 48 hex digits of sha256("trace/e-1"): the same in any process, after any restart.
    assert traceparent_for("e-1") == "00-be6e44e3ecc23ce39d15284000d4eed1-f1f80d55d883b1df-01"
    assert traceparent_for("e-2") == "00-625c644b1155e881f427afeaf62493c8-b620ed2494540ce8-01"


def test_a_handler_stopped_with_its_service_is_an_info_line_not_an_error():
    logger = logging.getLogger("tests.unit.test_logs.broker")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with log_lines(logger, "agents", StoppedHandlerIsNotAnError()) as kept:
            try:
                raise asyncio.CancelledError
            except asyncio.CancelledError:
                logger.exception("CancelledError: ")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("RuntimeError: boom")
    finally:
        logger.propagate = True
    stopped, failed = (json.loads(line) for line in kept)
    assert (stopped["level"], stopped["message"]) == (
        "INFO", "a handler was stopped with the service; its message was handed back")
    assert "exc_info" not in stopped
    assert (failed["level"], failed["message"]) == ("ERROR", "RuntimeError: boom")
