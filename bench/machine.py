"""What the figures were measured on: they mean little without it."""

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = ("grpcio", "hnswlib", "numpy", "protobuf", "rocksdict", "torch", "sentence-transformers")


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    python: str
    system: str
    load_average: tuple[float, float, float]
    packages: dict[str, str]

    def lines(self) -> list[str]:
        versions = ", ".join(f"{name} {version}" for name, version in self.packages.items())
        load = " / ".join(f"{value:.2f}" for value in self.load_average)
        return [
            f"{self.cpus} CPUs usable (`nproc`), {self.cpu_model}",
            f"{self.memory_gib:.1f} GiB memory; {self.system}; Python {self.python}",
            f"load average at the start (1/5/15 min): {load}",
            versions,
        ]


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib(meminfo: str) -> float:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> Machine:
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(_read("/proc/cpuinfo")),
        memory_gib=_memory_gib(_read("/proc/meminfo")),
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
        load_average=os.getloadavg(),
        packages={name: _version(name) for name in PACKAGES},
    )
