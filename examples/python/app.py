#!/usr/bin/env python3
"""A stdlib-only HTTP server for `corral start app.py -i 2 --port 3000`.

It serves on the socket the manager passes by systemd's socket-activation
protocol (fd 3, LISTEN_FDS, LISTEN_PID) and answers with its pid. Run alone it
binds PORT (default 3000) itself. SIGINT or SIGTERM stop it gracefully: the
request in flight finishes, then it exits 0.
"""
import http.server
import os
import signal
import socket
import sys
import threading

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

    def do_GET(self):
        body = f"Hello from Python {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if getattr(self.server, "stopping", False):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # the manager keeps logs; one line per request would flood them


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() waits for requests in flight


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
        server.stopping = True
        # shutdown() must not run on the thread serve_forever() runs on.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()
    print(f"Python app {os.getpid()} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
