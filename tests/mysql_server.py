"""A throwaway MySQL-compatible server (MariaDB from Debian's packages) on localhost.

``make system-deps`` installs ``mariadb-server`` where it can (root and apt); this module
starts ``mariadbd`` on a free TCP port with its data directory in a temp dir, creates a user
with a password (what a production MLMD database has), and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving import processes

SERVER_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
INSTALL_DB = ("mariadb-install-db", "mysql_install_db")


def server_binary() -> tuple[str, str] | None:
    """(server, install-db) paths, or None when no MySQL-compatible server is installed."""
    server = next((p for p in SERVER_CANDIDATES if os.access(p, os.X_OK)), None)
    install = next((shutil.which(n) for n in INSTALL_DB if shutil.which(n)), None)
    return (server, install) if server and install else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MySQLServer:
    root: Path
    port: int
    user: str = "mlmd"
    password: str = "mlmd-test-password"
    process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.root / "mysqld.sock"

    def start(self, timeout: float = 60) -> MySQLServer:
        server, install = server_binary() or (None, None)
        if server is None:
            raise RuntimeError("no mariadbd/mysqld installed")
        data = self.root / "data"
        as_root = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root without it
        subprocess.run([install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", *as_root], check=True, capture_output=True, timeout=120)
        log = (self.root / "server.log").open("w")
        self.process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--socket={self.socket_path}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mysqld.pid'}", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", *as_root], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = self._connect_root()
                break
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"MariaDB did not start; see {self.root / 'server.log'}") from None
                time.sleep(0.3)
        with conn.cursor() as cur:  # a TCP user with a password, as MLMD connects in production
            cur.execute(f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'127.0.0.1'")
        conn.close()
        return self

    def _connect_root(self) -> Any:  # a pymysql connection
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket_path), user="root", autocommit=True)

    def query(self, sql: str) -> list[tuple]:
        conn = self._connect_root()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def stop(self) -> None:
        processes.stop(self.process)


def start_server(root: Path) -> MySQLServer:
    return MySQLServer(root, _free_port()).start()
