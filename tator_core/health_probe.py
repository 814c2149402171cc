"""`python -m tator_core.health_probe PORT [SERVICE]`: exit 0 when this host's service answers
grpc.health.v1 SERVING, 1 otherwise. For Kubernetes exec probes when the services serve TLS: the
kubelet's own gRPC probe speaks plaintext only. TLS comes from TATOR_TLS_* as for every client."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tator_core.auth import channel_credentials


def check(port: int, service: str = "", timeout_s: float = 4.0) -> str:
    """The health status name, or the gRPC status code name when the call fails."""
    target = f"127.0.0.1:{port}"
    creds = channel_credentials()
    channel = grpc.secure_channel(target, creds) if creds is not None else grpc.insecure_channel(target)
    with channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                            timeout=timeout_s)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit():
        print("usage: python -m tator_core.health_probe PORT [SERVICE]", file=sys.stderr)
        return 2
    status = check(int(argv[0]), argv[1] if len(argv) > 1 else "")
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
