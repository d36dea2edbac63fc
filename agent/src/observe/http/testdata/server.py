# A Python HTTP/1.1 server (keep-alive) for the request tracer's tests: python3 server.py PORT (0: any)
# /users/<id> 200, /err 500, anything else 404. Prints "listening <port>" when ready.
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/users/"):
            status, body = 200, b"user"
        elif self.path == "/err":
            status, body = 500, b"error"
        else:
            status, body = 404, b"missing"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"listening {server.server_port}", flush=True)
server.serve_forever()
