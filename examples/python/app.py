#!/usr/bin/env python3
"""A stdlib-only HTTP server for `corral start app.py -i 2 --port 3000`.

It serves on the socket the manager passes by systemd's socket-activation
protocol (fd 3, LISTEN_FDS, LISTEN_PID) and answers with its pid. Run alone it
binds PORT (default 3000) itself. Once it serves it says READY=1 by sd_notify
(`corral start app.py --wait-ready`, or systemd's Type=notify). SIGINT or
SIGTERM stop it gracefully: the request in flight finishes, then it exits 0.

What a real client (wrk) needs, learnt the hard way: the response leaves in
one write (headers then body in two writes meet delayed ACKs on keep-alive);
`Connection: close` from the client is honoured; a stopping server answers the
next request of a keep-alive connection with `Connection: close` instead of
closing under a client that may be sending; and connection threads are joined
before exit (daemon threads are not, which cut requests in flight).
"""
# A stop asked for while the app is still starting must not be lost: the
# handler goes in before the imports that take most of the start-up (a
# KeyboardInterrupt raised inside the import machinery can be swallowed,
# and the app would then serve on until the manager's SIGKILL).
import signal

STOP_ASKED = []


def _stop_asked(signum, _frame):
    STOP_ASKED.append(signum)


signal.signal(signal.SIGINT, _stop_asked)
signal.signal(signal.SIGTERM, _stop_asked)

import http.server  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

LISTEN_FDS_START = 3


def inherited_socket():
    """The first socket systemd/corral passed us, or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    return socket.socket(fileno=LISTEN_FDS_START)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    # An idle keep-alive connection is closed after 5 s, as Node does
    # (keepAliveTimeout), so that it does not hold a stop forever.
    timeout = 5

    def do_GET(self):
        body = f"Hello from Python {os.getpid()}\n".encode()
        close = getattr(self.server, "stopping", False) or self.headers.get("Connection", "").lower() == "close"
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode()
        self.wfile.write(head + body)
        self.close_connection = close

    def log_message(self, *args):
        pass  # the manager keeps logs; one line per request would flood them


class Stop(Exception):
    """Raised in the serving loop once a stop was asked for."""


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins them: requests in flight finish
    block_on_close = True
    stopping = False

    def service_actions(self):
        # Called by serve_forever() after each request and poll interval: the
        # stop happens here, on the serving thread, and not in the signal
        # handler, which may run while this thread holds a lock of the
        # threading module (starting a connection's thread), so that any
        # threading call there could deadlock.
        if self.stopping:
            raise Stop

    def handle_error(self, request, client_address):
        # A client that went away (wrk at its end, a reset) is not an error.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def notify_ready():
    """systemd's sd_notify READY=1, which corral also reads (--wait-ready):
    the app is online once its handlers are in and it serves, not after a
    guessed listen_timeout (a stop sent while Python is still starting can
    be lost inside its import machinery)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"READY=1", path)
        except OSError as e:
            print(f"sd_notify {path}: {e}", file=sys.stderr, flush=True)


def main():
    sock = inherited_socket()
    if sock is not None:
        server = Server(sock.getsockname()[:2], Hello, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
    else:
        server = Server(("0.0.0.0", int(os.environ.get("PORT", "3000"))), Hello)
    print(f"Python app {os.getpid()} serving on {server.socket.getsockname()}", flush=True)

    def stop(signum, _frame):
        server.stopping = True  # only a flag: see Server.service_actions

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if STOP_ASKED:  # asked while starting: serve nothing, stop now
        server.stopping = True
    notify_ready()
    try:
        server.serve_forever(poll_interval=0.1)
    except Stop:
        pass
    server.server_close()
    print(f"Python app {os.getpid()} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
