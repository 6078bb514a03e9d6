"""Where `fleet up` puts the dashboard: the same port run after run, unless something holds it."""

import socket

from services.embedded.servers import free_port, port_or_free


def test_a_free_port_asked_for_is_the_port_given():
    wanted = free_port()

    assert port_or_free(wanted) == wanted


def test_a_port_something_listens_on_gives_way_to_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wanted = taken.getsockname()[1]

        given = port_or_free(wanted)

    assert given != wanted and given > 0


def test_port_zero_means_any_free_port():
    assert port_or_free(0) > 0
