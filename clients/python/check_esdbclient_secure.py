#!/usr/bin/env python3
"""Drives secure Stele nodes with the official Python client esdbclient, as its own test
suite does (issue 13):
- a `stele --dev` node on localhost: the root certificate is the server's own, fetched with
  ssl.get_server_certificate, and the credentials are the default admin's; a wrong password
  and a client without the root certificate are refused;
- a secure three-node `stele dev-cluster --secure`: discovery over TLS with the CA file named
  in the connection string (read into root_certificates, as the client does with TlsCaFile).
Usage: check_esdbclient_secure.py DEV_PORT CLUSTER_CONNECTION_STRING
Exits non-zero on the first deviation."""
import ssl, sys, time, urllib.parse, uuid
from esdbclient import EventStoreDBClient as EsdbClient, NewEvent, StreamState
from esdbclient.exceptions import GrpcError, EventStoreDBClientException, ServiceUnavailable

dev_port = int(sys.argv[1])
cluster_uri = sys.argv[2]

def retry(what, attempt, seconds=30):
    # The node starts, then creates the default users once it leads.
    deadline = time.time() + seconds
    while True:
        try:
            return attempt()
        except Exception as e:
            if time.time() > deadline:
                print(f"FAIL: {what}: {e!r}"); sys.exit(1)
            time.sleep(0.2)

# --dev: trust the node's own self-signed certificate, as esdbclient's tests do.
cert = retry("fetching the dev certificate", lambda: ssl.get_server_certificate(("localhost", dev_port)))
c = EsdbClient(uri=f"esdb://admin:changeit@localhost:{dev_port}", root_certificates=cert)
s = "secure-" + str(uuid.uuid4())
retry("the first append as admin", lambda: c.append_to_stream(s, current_version=StreamState.NO_STREAM, events=NewEvent(type="One", data=b"{}")))
c.append_to_stream(s, current_version=0, events=[NewEvent(type="Two", data=b"{}"), NewEvent(type="Three", data=b"{}")])
assert [e.type for e in c.get_stream(s)] == ["One", "Two", "Three"]
assert any(e.stream_name == s for e in c.read_all())
print("dev node: append, batch append and reads over TLS ok")

bad = EsdbClient(uri=f"esdb://admin:wrong@localhost:{dev_port}", root_certificates=cert)
try:
    bad.append_to_stream(s, current_version=StreamState.ANY, events=NewEvent(type="X", data=b"{}"))
    print("FAIL: a wrong password was accepted"); sys.exit(1)
except EventStoreDBClientException as e:
    print("wrong password refused:", type(e).__name__)

try:
    untrusted = EsdbClient(uri=f"esdb://admin:changeit@localhost:{dev_port}?DiscoveryInterval=100&MaxDiscoverAttempts=2")
    untrusted.append_to_stream(s, current_version=StreamState.ANY, events=NewEvent(type="X", data=b"{}"))
    print("FAIL: a client without the root certificate connected"); sys.exit(1)
except (ServiceUnavailable, EventStoreDBClientException) as e:
    print("no root certificate refused:", type(e).__name__)

# The secure cluster: discovery over TLS, the CA from the connection string.
query = urllib.parse.parse_qs(urllib.parse.urlparse(cluster_uri).query)
ca_file = next(v[0] for k, v in query.items() if k.lower() == "tlscafile")
with open(ca_file) as f:
    ca = f.read()
base = cluster_uri.split("?")[0]
cc = EsdbClient(uri=f"{base}?Tls=true&MaxDiscoverAttempts=50&DiscoveryInterval=200", root_certificates=ca)
s = "secure-cluster-" + str(uuid.uuid4())
retry("the first append to the cluster", lambda: cc.append_to_stream(s, current_version=StreamState.ANY, events=NewEvent(type="One", data=b"{}")))
assert [e.type for e in cc.get_stream(s)] == ["One"]
print("secure cluster: discovery, append and read over TLS ok")
