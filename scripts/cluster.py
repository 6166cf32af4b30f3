"""`make cluster`: etcd and three kafkalite brokers on loopback, to try cluster mode; Ctrl-C stops them all.

    python scripts/cluster.py                  # brokers on 127.0.0.1:9092-9094, etcd on 127.0.0.1:2379
    python scripts/cluster.py --brokers 4 --data-dir /tmp/kl

Each broker's output goes to <data dir>/broker-N.log, etcd's to <data dir>/etcd.log. The data stays in the data
dir (default ./kafkalite-cluster), so a second run starts the same cluster again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time


def wait_for_port(host: str, port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Return once something accepts connections on host:port; RuntimeError if proc exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see its log")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start listening on {host}:{port}")
            time.sleep(0.1)


def etcd_command(data_dir: str, host: str, client_port: int, peer_port: int, name: str = "etcd0") -> list[str]:
    """A one-member etcd on loopback, its data in data_dir."""
    etcd = shutil.which("etcd")
    if etcd is None:
        raise SystemExit("etcd is not installed: apt-get install etcd-server (make test installs it)")
    client, peer = f"http://{host}:{client_port}", f"http://{host}:{peer_port}"
    return [etcd, "--name", name, "--data-dir", data_dir, "--listen-client-urls", client,
            "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}"]


def broker_command(node: int, host: str, port: int, data_dir: str, cluster: str, settings: dict | None = None,
                   python: str = sys.executable) -> list[str]:
    """A kafkalite broker in cluster mode (`cluster` = etcd://HOST:PORT/NAME), with `--set` settings."""
    command = [python, "-m", "kafkalite", "--node-id", str(node), "--listen", f"{host}:{port}",
               "--data-dir", data_dir, "--cluster", cluster]
    for key, value in (settings or {}).items():
        command += ["--set", f"{key}={value}"]
    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--first-port", type=int, default=9092)
    parser.add_argument("--etcd-port", type=int, default=2379)
    parser.add_argument("--data-dir", default="./kafkalite-cluster")
    parser.add_argument("--name", default="local", help="the cluster's name in etcd")
    args = parser.parse_args()
    etcd = etcd_command(os.path.join(args.data_dir, "etcd"), "127.0.0.1", args.etcd_port, args.etcd_port + 1)
    os.makedirs(args.data_dir, exist_ok=True)
    host = "127.0.0.1"
    procs: list[tuple[str, subprocess.Popen]] = []
    try:
        with open(os.path.join(args.data_dir, "etcd.log"), "ab") as out:
            proc = subprocess.Popen(etcd, stdout=out, stderr=out)
        procs.append(("etcd", proc))
        wait_for_port(host, args.etcd_port, proc, "etcd")
        for node in range(1, args.brokers + 1):
            port = args.first_port + node - 1
            with open(os.path.join(args.data_dir, f"broker-{node}.log"), "ab") as out:
                proc = subprocess.Popen(
                    broker_command(node, host, port, os.path.join(args.data_dir, f"broker-{node}"),
                                   f"etcd://{host}:{args.etcd_port}/{args.name}"), stdout=out, stderr=out)
            procs.append((f"broker {node}", proc))
            wait_for_port(host, port, proc, f"broker {node}")
        ports = ",".join(f"{host}:{args.first_port + i}" for i in range(args.brokers))
        print(f"kafkalite cluster '{args.name}': {args.brokers} brokers on {ports}, etcd on {host}:{args.etcd_port}")
        print(f"logs and data in {args.data_dir}; Ctrl-C stops everything")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        reported: set[str] = set()
        while any(proc.poll() is None for name, proc in procs if name != "etcd"):
            for name, proc in procs:  # a broker that dies is reported; the others go on (that is the point)
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    print(f"{name} exited ({proc.returncode}); the others go on", file=sys.stderr)
            time.sleep(0.5)
        print("every broker has stopped", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:  # a process that did not start
        print(e, file=sys.stderr)
        return 1
    finally:
        for name, proc in reversed(procs):  # brokers first (controlled shutdown), etcd last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
