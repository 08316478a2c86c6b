"""Lists a gRPC server's services with grpcio-reflection's stock client, one name per line.

Usage: reflection_list.py HOST:PORT
"""
import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> int:
    (target,) = sys.argv[1:]
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=20)
        database = ProtoReflectionDescriptorDatabase(channel)
        for service in database.get_services():
            print(service)
            # Resolving the service's file proves the descriptors come back too, not only names.
            database.FindFileContainingSymbol(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
