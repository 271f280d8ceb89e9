"""A tiny local HTTP server for download tests: nothing leaves this machine.

``Server.routes[path] = Response(...)`` says what each path answers: a body, a status, a
Content-Length that may lie (to cut a download short), and a delay before the body.
"""
import http.server
import threading
import time
from dataclasses import dataclass


@dataclass
class Response:
    body: bytes
    status: int = 200
    length: int = None      # the Content-Length to announce (default: the body's)
    delay: float = 0.0      # seconds to wait before sending the body


class Server:
    def __init__(self):
        self.routes, self.hits = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                r = server.routes.get(self.path, Response(b"not found", 404))
                self.send_response(r.status)
                self.send_header("Content-Length", str(r.length if r.length is not None else len(r.body)))
                self.end_headers()
                time.sleep(r.delay)
                self.wfile.write(r.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
