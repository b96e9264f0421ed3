"""A real one-node SLURM cluster on 127.0.0.1 for a test: munged with its own key, socket and pid file,
slurmctld and slurmd with their own config, ports, state and spool folders under one temporary folder,
all stopped (by their pid files) when the test ends. Nothing here imitates SLURM: if a daemon does not
come up, :func:`why_not` returns the exact error and the test skips with it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
NODE = "cmkdnode"


def missing_programs() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return int(total_kb / 1024 * 0.8)


class LocalSlurm:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.env)

    def write_config(self) -> None:
        d = self.folder
        for sub in ("state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=cmkdtest",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={d / 'munge.sock'}",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "JobCompType=jobcomp/none",
                    "AccountingStorageType=accounting_storage/none",
                    "SchedulerType=sched/builtin",
                    f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={os.cpu_count()} "
                    f"RealMemory={_memory_mb()} State=UNKNOWN",
                    f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def start(self) -> str | None:
        """Start the three daemons; None when the node is idle, else the exact error (and everything is stopped)."""
        self.write_config()
        d = self.folder
        steps = [
            (
                _program("munged"),
                f"--key-file={d / 'munge.key'}",
                f"--socket={d / 'munge.sock'}",
                f"--pid-file={d / 'munged.pid'}",
                f"--log-file={d / 'munged.log'}",
                f"--seed-file={d / 'munge.seed'}",
                "--force",
            ),
            (_program("slurmctld"), "-f", str(self.conf)),
            (_program("slurmd"), "-f", str(self.conf), "-N", NODE),
        ]
        for command in steps:
            result = self._run(*command)
            if result.returncode != 0:
                self.stop()
                return f"{' '.join(command)} exited {result.returncode}: {(result.stderr or result.stdout).strip()}"
        for _ in range(60):  # bounded: the node registers within seconds or not at all
            state = self._run(_program("sinfo"), "-h", "-N", "-o", "%T").stdout.strip()
            if state.startswith("idle"):
                return None
            time.sleep(0.5)
        error = f"the node never became idle (sinfo: {state!r}); slurmd.log ends: {self._tail('slurmd.log')}"
        self.stop()
        return error

    def _tail(self, name: str) -> str:
        path = self.folder / name
        return " | ".join(path.read_text(errors="replace").splitlines()[-3:]) if path.exists() else "(none)"

    def stop(self) -> None:
        """Cancel what is queued, then stop slurmd, slurmctld and munged by their pid files (never by name)."""
        if (self.folder / "slurmctld.pid").exists():
            try:
                self._run(_program("scancel"), "--partition=debug", timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.folder / f"{name}.pid"
            if not pid_file.exists():
                continue
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):  # bounded wait for it to go
                    os.kill(pid, 0)
                    time.sleep(0.1)
            except (ValueError, ProcessLookupError, IndexError):
                pass
