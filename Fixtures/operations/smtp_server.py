"""A real SMTP server for Clew's alert tests (aiosmtpd, from PyPI, in the `ops` venv of tools/producers.sh).

Listens on 127.0.0.1 with STARTTLS required before anything else and AUTH (PLAIN, LOGIN) required before
MAIL, against one user. Each message it accepts is written to OUT/<n>.json: the envelope, the message,
whether it came over TLS and who logged in. With --fail-first N it answers the first N messages with a
451 (try again later), as a busy server does. Prints "ready <port>" once it accepts connections.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)

    lock = threading.Lock()
    state = {"received": 0, "refused": 0}

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == a.user.encode() and auth_data.password == a.password.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                if state["refused"] < a.fail_first:
                    state["refused"] += 1
                    return "451 4.3.0 busy, try again later"
                state["received"] += 1
                n = state["received"]
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "content": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
                "refused_before": state["refused"],
            }
            path = os.path.join(a.out, "%d.json" % n)
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)
            return "250 2.0.0 OK queued as clew-test-%d" % n

    # A free port (the controller needs a number to check it is up).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost", tls_context=context, require_starttls=True,
        authenticator=authenticator, auth_required=True, ready_timeout=20,
    )
    controller.start()
    print("ready %d" % port, flush=True)
    stop = threading.Event()
    # The test process starts this one with SIGTERM blocked (its mask is inherited): unblock it, or the
    # test's terminate() never arrives and the server outlives the run.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Messages are already on disk (written, then renamed): nothing is left to stop gracefully.
    while not stop.wait(0.2):
        pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
