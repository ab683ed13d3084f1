#!/usr/bin/env python3
"""Traffic for the HA lab (tests/ha.sh): held TCP connections and one UDP flow.

server ADDR PORT: a TCP echo service that answers each line with the peer address it
    sees (so the client learns which WAN address a connection leaves from), and a UDP
    echo on the same port.
client ADDR PORT N: opens N TCP connections and sends a numbered UDP datagram every
    20 ms, then reads commands on stdin, one per line, answering one line each:
      check  -> "alive K/N moved M": connections that still answer within 5 s, and
                how many of those now leave from another address than at the start
      open   -> "new ADDR": the address a fresh connection leaves from
      gap    -> "gap S lost L": the longest silence between UDP echoes (seconds) and
                datagrams without echo since the previous "gap" (or the start)
      quit
"""
import select
import socket
import sys
import threading
import time


def server(addr, port):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(512)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    peers = {}
    socks = [tcp, udp]
    while True:
        ready, _, _ = select.select(socks, [], [])
        for s in ready:
            if s is tcp:
                c, peer = tcp.accept()
                peers[c] = peer[0]
                socks.append(c)
            elif s is udp:
                data, peer = udp.recvfrom(2048)
                udp.sendto(data, peer)
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    socks.remove(s)
                    peers.pop(s, None)
                    s.close()
                    continue
                for _ in range(data.count(b"\n")):
                    s.sendall(peers[s].encode() + b"\n")


class Udp:
    def __init__(self, addr, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((addr, port))
        self.lock = threading.Lock()
        self.sent = 0
        self.echoed = set()
        self.last = time.monotonic()
        self.gap = 0.0
        self.mark = 0
        threading.Thread(target=self.send, daemon=True).start()
        threading.Thread(target=self.recv, daemon=True).start()

    def send(self):
        while True:
            with self.lock:
                seq = self.sent
                self.sent += 1
            try:
                self.sock.send(seq.to_bytes(4, "big"))
            except OSError:
                pass  # no route for a moment: that datagram is lost
            time.sleep(0.02)

    def recv(self):
        while True:
            try:
                data = self.sock.recv(64)
            except OSError:
                time.sleep(0.02)
                continue
            now = time.monotonic()
            with self.lock:
                self.gap = max(self.gap, now - self.last)
                self.last = now
                self.echoed.add(int.from_bytes(data[:4], "big"))

    def report(self):
        time.sleep(0.5)  # echoes of the last datagrams
        with self.lock:
            now = time.monotonic()
            gap = max(self.gap, now - self.last - 0.5)
            end = self.sent - 25
            lost = sum(1 for s in range(self.mark, end) if s not in self.echoed)
            self.mark = end
            self.gap = 0.0
        return f"gap {gap:.2f} lost {lost}"


def ask(conn):
    conn.settimeout(5)
    conn.sendall(b"?\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            raise OSError("closed")
        line += chunk
    return line.decode().strip()


def check(conns, n):
    """Ask every live connection at once; those silent for 5 s count as lost."""
    waiting = {}
    for entry in conns:
        if entry[0] is None:
            continue
        try:
            entry[0].sendall(b"?\n")
            waiting[entry[0]] = [entry, b""]
        except OSError:
            entry[0].close()
            entry[0] = None
    alive = moved = 0
    deadline = time.monotonic() + 5
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], deadline - time.monotonic())
        for s in ready:
            entry, buf = waiting[s]
            try:
                chunk = s.recv(64)
            except OSError:
                chunk = b""
            if not chunk:
                del waiting[s]
                s.close()
                entry[0] = None
                continue
            buf += chunk
            waiting[s][1] = buf
            if buf.endswith(b"\n"):
                del waiting[s]
                alive += 1
                moved += buf.decode().strip() != entry[1]
    for s, (entry, _) in waiting.items():
        s.close()
        entry[0] = None
    return f"alive {alive}/{n} moved {moved}"


def client(addr, port, n):
    conns = []
    for _ in range(n):
        c = socket.create_connection((addr, port), timeout=5)
        conns.append([c, ask(c)])
        c.setblocking(True)
        c.settimeout(None)
    udp = Udp(addr, port)
    print("ready " + " ".join(sorted(set(p for _, p in conns))), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            print(check(conns, n), flush=True)
        elif cmd == "open":
            try:
                c = socket.create_connection((addr, port), timeout=5)
                print("new " + ask(c), flush=True)
                c.close()
            except OSError as e:
                print(f"new failed {e}", flush=True)
        elif cmd == "gap":
            print(udp.report(), flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
