"""Several processes (machines) training one model, on JAX's runtime.

Every process runs the same command with the same seed and the same
dataset; `keras.distribution.DataParallel` shards each global batch over
the processes and all-reduces the gradients, so all processes hold the same
weights after every step. Process 0 is the coordinator, and the chief that
writes checkpoints and presets.
"""

import dataclasses
import os
import socket
import subprocess
import sys
import time

ENVIRONMENT = {
    "coordinator_address": "KERAS_SSL_COORDINATOR",
    "num_processes": "KERAS_SSL_NUM_PROCESSES",
    "process_id": "KERAS_SSL_PROCESS_ID",
}


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Where the processes of a multi-worker run are.

    Attributes:
        coordinator_address: "host:port" of process 0, reachable from all.
        num_processes: processes in the run.
        process_id: this process's index, 0 to `num_processes - 1`.
        initialization_timeout: seconds to wait for every process to join.
    """

    coordinator_address: str
    num_processes: int
    process_id: int
    initialization_timeout: int = 300

    def __post_init__(self):
        host, _, port = self.coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"The coordinator address '{self.coordinator_address}' is not "
                "'host:port' (for example 10.0.0.1:1234)."
            )
        if self.num_processes < 1:
            raise ValueError(f"`num_processes` must be at least 1, got {self.num_processes}.")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"`process_id` {self.process_id} is not in 0..{self.num_processes - 1}: "
                "give each process a different index below --num-processes."
            )

    @classmethod
    def from_environment(cls, environ=None):
        """Reads `KERAS_SSL_COORDINATOR`, `..._NUM_PROCESSES`, `..._PROCESS_ID`."""
        environ = os.environ if environ is None else environ
        missing = [name for name in ENVIRONMENT.values() if name not in environ]
        if missing:
            raise ValueError(
                "--distribute multi-worker needs the cluster: pass "
                "--coordinator HOST:PORT --num-processes N --process-id I, or "
                f"set {', '.join(missing)}."
            )
        try:
            return cls(
                environ[ENVIRONMENT["coordinator_address"]],
                int(environ[ENVIRONMENT["num_processes"]]),
                int(environ[ENVIRONMENT["process_id"]]),
            )
        except ValueError as error:
            raise ValueError(f"Bad cluster environment: {error}") from None

    def environment(self):
        """The environment variables that describe this process."""
        return {
            ENVIRONMENT["coordinator_address"]: self.coordinator_address,
            ENVIRONMENT["num_processes"]: str(self.num_processes),
            ENVIRONMENT["process_id"]: str(self.process_id),
        }


_initialized = None


def initialize_workers(cluster=None):
    """Joins this process to the cluster (once per process).

    Raises:
        RuntimeError: naming the coordinator, when a worker cannot reach it
            within `cluster.initialization_timeout` seconds.
    """
    global _initialized
    import jax

    cluster = cluster or ClusterSpec.from_environment()
    if _initialized is not None:
        if _initialized != cluster:
            raise RuntimeError(
                f"This process already joined {_initialized}; a process joins "
                "one cluster only."
            )
        return cluster
    # JAX aborts the process (no Python exception) when the cluster does not
    # form in time, so a worker first checks it can reach the coordinator,
    # and the coordinator says what it waits for before it waits.
    if cluster.process_id == 0:
        print(
            f"multi-worker: process 0 coordinates at {cluster.coordinator_address}"
            f"; waiting up to {cluster.initialization_timeout} s for "
            f"{cluster.num_processes} processes (if this process then aborts "
            "with DEADLINE_EXCEEDED, a worker did not start or cannot reach "
            "this address)", flush=True,
        )
    else:
        wait_for_coordinator(cluster)
    # CPU processes need an explicit collectives backend; GPUs use NCCL.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator_address,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
        initialization_timeout=cluster.initialization_timeout,
    )
    _initialized = cluster
    return cluster


def wait_for_coordinator(cluster):
    """Waits until the coordinator's port accepts connections.

    Raises:
        RuntimeError: naming the address, after
            `cluster.initialization_timeout` seconds.
    """
    host, _, port = cluster.coordinator_address.rpartition(":")
    deadline = time.time() + cluster.initialization_timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError as error:
            if time.time() > deadline:
                raise RuntimeError(
                    f"Process {cluster.process_id} could not reach the "
                    f"coordinator at {cluster.coordinator_address} within "
                    f"{cluster.initialization_timeout} s ({error}). Check that "
                    "process 0 runs on that host with the same --coordinator, "
                    "and that the port is open between the machines."
                ) from None
            time.sleep(0.5)


def launch_local(command, num_processes, port=None, timeout=None, env=None):
    """Runs `command` as `num_processes` processes on this machine.

    For trying a multi-worker run on one host: each process gets the
    cluster environment (`ClusterSpec.environment`) with the coordinator on
    127.0.0.1. If one process fails, the others are stopped.

    Args:
        command: argv list, the same for every process.
        num_processes: processes to start.
        port: the coordinator's port; None picks a free one.
        timeout: seconds before all processes are stopped; None waits.
        env: base environment (default: this process's).

    Returns:
        The processes' `(returncode, output)` pairs, in process order.
    """
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    processes = []
    for process_id in range(num_processes):
        spec = ClusterSpec(f"127.0.0.1:{port}", num_processes, process_id)
        process_env = dict(os.environ if env is None else env)
        process_env.update(spec.environment())
        processes.append(subprocess.Popen(
            command, env=process_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        ))
    deadline = None if timeout is None else time.time() + timeout
    try:
        while any(p.poll() is None for p in processes):
            failed = any(p.poll() not in (None, 0) for p in processes)
            late = deadline is not None and time.time() > deadline
            if failed or late:
                for p in processes:
                    if p.poll() is None:
                        p.kill()
                break
            time.sleep(0.2)
    finally:
        results = [(p.wait(), p.stdout.read()) for p in processes]
    return results


def main(argv=None):
    """`python -m keras_ssl.distribute.multi_worker N COMMAND...`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m keras_ssl.distribute.multi_worker "
              "NUM_PROCESSES COMMAND [ARG...]", file=sys.stderr)
        return 2
    results = launch_local(argv[1:], int(argv[0]))
    for process_id, (code, output) in enumerate(results):
        print(f"--- process {process_id} (exit {code})\n{output}")
    return max(abs(code) for code, _ in results)


if __name__ == "__main__":
    sys.exit(main())
