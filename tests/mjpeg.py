"""A small real MJPEG-over-HTTP server (what IP cameras and `mjpg-streamer` serve): multipart JPEG frames
at a steady rate, with the connection dropped every ``drop_every`` seconds, as a flaky camera does.
Used by the camera's stream tests and by benchmarks/soak.py."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "edgecnnframe"


class MjpegServer:
    """``with MjpegServer(jpegs, fps=15, drop_every=30) as url:`` serves the JPEG byte strings in a loop at
    ``url``; ``connections`` counts the clients' (re)connections, ``sent`` the frames sent."""

    def __init__(self, jpegs: list[bytes], fps: float = 15.0, drop_every: float | None = None):
        self.jpegs, self.fps, self.drop_every = jpegs, fps, drop_every
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the test prints what matters
                pass

            def do_GET(self):  # noqa: N802 - the name http.server calls
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
                self.end_headers()
                t0, i = time.monotonic(), 0
                try:
                    while not server._stop.is_set():
                        if server.drop_every and time.monotonic() - t0 > server.drop_every:
                            return  # the camera drops the client: the connection closes mid-stream
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode())
                        self.wfile.write(jpeg + b"\r\n")
                        server.sent += 1
                        i += 1
                        time.sleep(max(0.0, t0 + i / server.fps - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mjpeg-server", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc):
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def jpegs_of_clip(path, limit: int = 60, quality: int = 80) -> list[bytes]:
    """The first ``limit`` frames of a video as JPEG byte strings."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    cap.release()
    return out
