"""A TCP relay between a ledger and its PostgreSQL server that fails as a network does.

The ledger, psycopg, eventsourcing and the server are all real; only the wire between
them is cut, at two places a production network cuts it:

* :meth:`Relay.cut_after_commit`: the next ``COMMIT`` a client sends reaches the server,
  which commits, but its reply never comes back and the connection drops (the classic
  ambiguous commit);
* :meth:`Relay.go_down` / :meth:`Relay.come_back`: every connection drops and new ones
  are refused until it comes back (a server or route that is gone).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

COMMIT_SETTLE_S = 0.3  # how long the server gets to commit before the wire is cut
CHUNK_BYTES = 1 << 16


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.mute = False  # the server's replies are dropped from now on

    def close(self) -> None:
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):  # the other side may be gone already
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class Relay:
    """Listens on 127.0.0.1 (``port``) and relays to ``(host, port)`` of the server."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.down = False
        self.commits_cut = 0
        self._cut_next_commit = False
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after_commit(self) -> None:
        self._cut_next_commit = True

    def go_down(self) -> None:
        with self._lock:
            self.down = True
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def come_back(self) -> None:
        self.down = False

    def close(self) -> None:
        self._closed = True
        self.go_down()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._to_server, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_server(self, pair: _Pair) -> None:
        try:
            while data := pair.client.recv(CHUNK_BYTES):
                cut = self._cut_next_commit and b"COMMIT" in data
                if cut:
                    self._cut_next_commit = False
                    pair.mute = True
                pair.server.sendall(data)
                if cut:
                    time.sleep(COMMIT_SETTLE_S)
                    self.commits_cut += 1
                    break
        except OSError:
            pass
        pair.close()

    def _to_client(self, pair: _Pair) -> None:
        try:
            while data := pair.server.recv(CHUNK_BYTES):
                if not pair.mute:
                    pair.client.sendall(data)
        except OSError:
            pass
        pair.close()
