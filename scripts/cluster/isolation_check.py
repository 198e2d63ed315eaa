"""Run inside a pod of the local cluster (scripts/cluster.sh check): what a pod can reach.

Prints one line per finding and, when every one holds, "isolated". A connection counts as
refused at once when it fails within a second: no packet of it waited for an answer from
outside. Nothing here sends to an address outside this machine: with no route, the kernel
refuses the connection before a packet is made.
"""

import errno
import socket
import time

# Documentation addresses (RFC 5737): nobody answers there, and no packet may go there either.
OUTSIDE = ("203.0.113.10", 443)
# The last address of the Service range: never allocated before the others.
UNUSED_SERVICE = ("10.96.255.254", 80)
findings = []


def check(what, ok, detail):
    findings.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")


def connect(address):
    started = time.monotonic()
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.connect(address)
        return "connected", time.monotonic() - started
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e)), time.monotonic() - started
    finally:
        sock.close()


with open("/etc/resolv.conf") as f:
    servers = [line.split()[1] for line in f if line.startswith("nameserver")]
check("name servers", servers == ["10.244.0.1"], f"{servers} (the cluster DNS alone)")

try:
    address = socket.gethostbyname("kubernetes.default.svc.cluster.local")
    check("the cluster's names", address == "10.96.0.1", f"kubernetes.default → {address}")
except OSError as e:
    check("the cluster's names", False, f"kubernetes.default does not resolve: {e}")

started = time.monotonic()
try:
    address = socket.gethostbyname("example.com")
    check("outside names", False, f"example.com → {address}: the cluster DNS forwards")
except OSError:
    check("outside names", time.monotonic() - started < 1,
          f"example.com does not resolve ({time.monotonic() - started:.3f} s)")

for what, address in (("an outside address", OUTSIDE), ("a Service address with nothing behind it",
                                                         UNUSED_SERVICE)):
    outcome, took = connect(address)
    check(what, outcome != "connected" and took < 1,
          f"{address[0]}:{address[1]} → {outcome} in {took:.3f} s")

print("isolated" if all(findings) else "NOT isolated")
