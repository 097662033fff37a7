"""Settings of the Ray backend (service/ray_serving.py, service/ray_trainers.py), read from the environment.

    DS_RAY_ADDRESS           the Ray cluster to run on: "auto" (the cluster `ray start --head` started on this
                             machine), "local" (start one inside the app), or a head's address; unset: no Ray
    DS_RAY_MIN_REPLICAS      generation replicas kept running (default: 1)
    DS_RAY_MAX_REPLICAS      generation replicas Ray Serve may scale up to (default: the minimum)
    DS_RAY_GPUS_PER_REPLICA  GPUs each generation replica holds (default: 1 when the cluster has GPUs, else 0)
    DS_RAY_CPUS_PER_REPLICA  CPUs each generation replica holds (default: 1)
    DS_RAY_JOB_GPUS          GPUs each training job asks for (default: 1 when the cluster has GPUs, else 0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RaySettings:
    address: str
    min_replicas: int = 1
    max_replicas: int = 1
    gpus_per_replica: float | None = None  # None: 1 when the cluster has GPUs, else 0
    cpus_per_replica: float = 1.0
    job_gpus: float | None = None  # None: 1 when the cluster has GPUs, else 0

    def __post_init__(self):
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"Ray replicas: need 1 <= DS_RAY_MIN_REPLICAS <= DS_RAY_MAX_REPLICAS, got "
                             f"{self.min_replicas} and {self.max_replicas}.")
        for name, value in (("DS_RAY_GPUS_PER_REPLICA", self.gpus_per_replica),
                            ("DS_RAY_CPUS_PER_REPLICA", self.cpus_per_replica), ("DS_RAY_JOB_GPUS", self.job_gpus)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be 0 or more, got {value!r}.")

    @classmethod
    def from_env(cls, env, address: str | None = None) -> "RaySettings | None":
        """The settings when DS_RAY_ADDRESS (or `address`, from --ray) names a cluster; else None."""
        address = address or env.get("DS_RAY_ADDRESS", "").strip()
        if not address:
            return None
        min_replicas = int(env.get("DS_RAY_MIN_REPLICAS", 1))
        return cls(
            address=address,
            min_replicas=min_replicas,
            max_replicas=int(env.get("DS_RAY_MAX_REPLICAS", min_replicas)),
            gpus_per_replica=optional_float(env.get("DS_RAY_GPUS_PER_REPLICA")),
            cpus_per_replica=float(env.get("DS_RAY_CPUS_PER_REPLICA", 1)),
            job_gpus=optional_float(env.get("DS_RAY_JOB_GPUS")),
        )


def optional_float(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None
