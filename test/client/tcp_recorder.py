#!/usr/bin/env python3
"""A TCP relay on 127.0.0.1 that records every byte a client sends, for the
C++ client's TLS tests: the test then looks for the token in the recording.

  tcp_recorder.py --port-file F --target-port P --record FILE [--refuse-ssl]
Relays to 127.0.0.1:P (standard library only).  --refuse-ssl plays a man in
the middle: it answers "N" (no SSL) to the client's SSLRequest itself, as a
server without SSL would, so a client that accepts that goes on in clear text.
"""
import argparse
import os
import socket
import threading


def pump(src, dst, record, lock):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                with lock:
                    record.write(data)
                    record.flush()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
GSSENC_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x30"


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def refuse_ssl(client, upstream, record, lock):
    """Answers SSL/GSS encryption requests with 'N'; forwards the rest."""
    try:
        while True:
            head = read_exact(client, 8)
            with lock:
                record.write(head)
                record.flush()
            if head in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            upstream.sendall(head)
            return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--refuse-ssl", action="store_true")
    args = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.replace(tmp, args.port_file)
    record = open(args.record, "ab")
    lock = threading.Lock()
    while True:
        client, _ = srv.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", args.target_port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        if args.refuse_ssl and not refuse_ssl(client, upstream, record, lock):
            client.close()
            upstream.close()
            continue
        threading.Thread(target=pump, args=(client, upstream, record, lock), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, None, lock), daemon=True).start()


if __name__ == "__main__":
    main()
