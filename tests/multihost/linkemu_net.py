"""Traffic for linkemu_test: run on the virtual hosts (cluster/vcluster.sh exec).
  serve            UDP echo on port 7000; TCP sink on 7001 (answers b"ok" at EOF)
  ping ADDR N      N UDP round trips; prints "rtt_min_us X"; exit 1 on a lost reply
  bulk ADDR BYTES  sends BYTES over TCP, waits for b"ok"; prints "bulk_seconds X"
"""
import socket
import sys
import threading
import time

cmd = sys.argv[1]
if cmd == "serve":
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 7000))
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 7001))
    tcp.listen(1)

    def echo():
        while True:
            data, peer = udp.recvfrom(65536)
            udp.sendto(data, peer)

    threading.Thread(target=echo, daemon=True).start()
    print("listening", flush=True)
    while True:
        conn, _ = tcp.accept()
        while conn.recv(1 << 20):
            pass
        conn.sendall(b"ok")
        conn.close()
elif cmd == "ping":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5.0)
    rtts = []
    for _ in range(int(sys.argv[3])):
        t0 = time.perf_counter()
        s.sendto(b"x" * 32, (sys.argv[2], 7000))
        s.recvfrom(65536)  # socket.timeout: exit 1
        rtts.append((time.perf_counter() - t0) * 1e6)
    print(f"rtt_min_us {min(rtts):.1f}")
elif cmd == "bulk":
    s = socket.create_connection((sys.argv[2], 7001), timeout=30)
    t0 = time.perf_counter()
    s.sendall(b"\0" * int(sys.argv[3]))
    s.shutdown(socket.SHUT_WR)
    assert s.recv(2) == b"ok"
    print(f"bulk_seconds {time.perf_counter() - t0:.4f}")
