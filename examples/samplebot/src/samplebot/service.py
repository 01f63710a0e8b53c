"""The running bot: a health endpoint over HTTP and, if configured, a heartbeat
that writes a message every few seconds (the stand-in for chat traffic)."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from samplebot import store

log = logging.getLogger("samplebot")


def health(release):
    """{"status": "ok"} when every health query of this release runs."""
    try:
        conn = store.connect()
        try:
            for sql in release["health_queries"]:
                store.query(conn, sql)
            version = store.schema_version(conn)
        finally:
            conn.close()
    except Exception as e:  # any failure is an unhealthy bot, reported as such
        return 503, {"status": "error", "error": str(e), "version": release["version"]}
    return 200, {"status": "ok", "version": release["version"], "schema": version}


def make_handler(release):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/health":
                self.send_error(404)
                return
            code, body = health(release)
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            log.debug("http: " + format, *args)

    return Handler


def heartbeat(seconds):
    conn = store.connect()
    while True:
        time.sleep(seconds)
        store.query(conn, "INSERT INTO messages (id, user_id, body, sent_at) "
                          "SELECT COALESCE(MAX(id), 0) + 1, 1, 'heartbeat', CURRENT_TIMESTAMP FROM messages")
        if store.engine() == "postgresql":
            conn.commit()


def run(release, settings):
    server = ThreadingHTTPServer((settings["health_host"], int(settings["health_port"])), make_handler(release))
    if float(settings["tick_seconds"]) > 0:
        threading.Thread(target=heartbeat, args=(float(settings["tick_seconds"]),), daemon=True).start()
    code, body = health(release)
    if code == 200:
        log.info("Bot is ready (version %s, schema %s)", release["version"], body["schema"])
    else:
        log.error("Bot started but is not healthy: %s", body["error"])
    server.serve_forever()
