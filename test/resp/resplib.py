"""Minimal RESP2/RESP3 client used by the RESP test scripts.

It speaks raw bytes over a socket so that tests see exactly what a server
sends (redis-py would hide error texts and reply types).  Errors are returned
as RespError values, never raised, so replies can be compared one by one.
"""
import socket


class RespError(str):
    """An error reply ("-ERR ..."), kept apart from simple strings."""


class Verbatim(bytes):
    """A RESP3 verbatim string (format prefix removed)."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode("latin-1")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host="127.0.0.1", port=6379, unix=None, timeout=10.0):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send_raw(encode(*args))
        return self.read()

    def pipeline(self, commands):
        self.send_raw(b"".join(encode(*c) for c in commands))
        return [self.read() for _ in commands]

    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode("latin-1")
        if t == b"-":
            return RespError(rest.decode("latin-1"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"=":
            return Verbatim(self._exact(int(rest))[4:])
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            n = int(rest)
            return {self._key(self.read()): self.read() for _ in range(n)}
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        raise ValueError("unexpected reply type %r" % line[:20])

    @staticmethod
    def _key(k):
        return tuple(k) if isinstance(k, list) else k

    def closed(self, wait=2.0):
        """True if the server closes the connection (after any pending data)."""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True
