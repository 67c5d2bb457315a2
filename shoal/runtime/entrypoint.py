"""The container image's entrypoint: `IMAGE SERVICE [FLAGS...]` runs `python -m SERVICE`.

One image runs all three services, so the first argument names the service.
Without one (a bare `docker run IMAGE`) it prints how to start each of them,
rather than one service's flags. The service replaces this process (exec), so it
is PID 1 in the container and gets SIGTERM itself.
"""

import os
import sys
from collections.abc import Sequence

from shoal.runtime.metrics import package_version

#: What each service is, its gRPC port, and the flags it cannot start without.
SERVICES = {
    "coordinator": ("the public gRPC API", 50051, "--topology FILE --embedder HOST:PORT"),
    "shard": ("one replica of one shard group", 50061, "--data-dir DIR"),
    "embedder": ("text to vectors with all-MiniLM-L6-v2, weights bundled", 50071, ""),
}

USAGE = """\
Shoal {version}: one image for the three services of a Shoal cluster.

usage: docker run IMAGE SERVICE [FLAGS...]

services:
{services}

Every service also takes --port, --metrics-port (Prometheus /metrics; 0: off),
--log-format json, --log-level and --grace-seconds, and reads each flag from
SHOAL_<FLAG> as well (--data-dir is SHOAL_DATA_DIR). The image listens on
0.0.0.0 (SHOAL_HOST). `docker run IMAGE SERVICE --help` lists every flag.

examples:
  docker run -p 50071:50071 IMAGE embedder
  docker run -p 50061:50061 -v shoal-data:/data IMAGE shard --data-dir /data
  docker run -p 50051:50051 -v $PWD/topology.json:/etc/shoal/topology.json IMAGE \\
      coordinator --topology /etc/shoal/topology.json --embedder HOST:50071

On Kubernetes: k8s/ and docs/deploy.md in the source repository.
"""


def usage() -> str:
    lines = [
        f"  {name:<12} {about} (port {port})" + (f"\n  {'':<12} needs {flags}" if flags else "")
        for name, (about, port, flags) in SERVICES.items()
    ]
    return USAGE.format(version=package_version(), services="\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    service, *flags = args
    if service not in SERVICES:
        print(f"error: unknown service {service!r}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    os.execv(sys.executable, [sys.executable, "-m", service, *flags])


if __name__ == "__main__":
    sys.exit(main())
