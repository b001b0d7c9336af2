#!/usr/bin/env python3
"""examples/python/app.py with three differences that wrk exposes: the response
goes out in one write (the example's headers-then-body writes meet delayed
ACKs with keep-alive, and lose requests with Connection: close), and a stopping server answers the next
request of a keep-alive connection with Connection: close instead of closing
it while the client may be sending, and it waits for its connection threads
before it exits (daemon threads are never joined: their requests were cut).
Serves on the inherited fd 3."""
import http.server
import os
import signal
import socket
import sys
import threading


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2  # an idle keep-alive connection does not hold a stop forever

    def do_GET(self):
        body = f"Hello from Python {os.getpid()}\n".encode()
        close = getattr(self.server, "stopping", False) or self.headers.get("Connection", "").lower() == "close"
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode()
        self.wfile.write(head + body)
        self.close_connection = close

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close()
    block_on_close = True


def main():
    assert os.environ.get("LISTEN_PID") == str(os.getpid()), "not socket-activated"
    sock = socket.socket(fileno=3)
    server = Server(sock.getsockname()[:2], Hello, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    print(f"Python app {os.getpid()} serving", flush=True)

    def stop(signum, _frame):
        server.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
