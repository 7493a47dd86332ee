"""A throw-away "bare Debian 12 VPS" with systemd as PID 1, for the deploy tests.

The root file system comes from `mmdebstrap` (the faster debootstrap: one apt run, dpkg with unsafe
I/O, no docs; ~40 s instead of ~80 s here) once and is cached under $HEAN_DEPLOY_DIR
(/var/tmp/hean-deploy); every boot runs it with `systemd-nspawn --volatile=overlay`, so each test
session starts from the same pristine image and leaves it untouched. sshd listens on
127.0.0.1:$HEAN_VPS_SSH_PORT (the container shares the host's network, so pick ports no one else
uses), with a key-only `deploy` user with passwordless sudo, like a freshly rented VPS.
Things learnt the hard way:
  * the host's PID 1 is not systemd (no machined, no host D-Bus): nspawn needs
    `--register=no --keep-unit`, and commands inside go through `nsenter -t <leader> -a`;
  * pip inside cannot verify TLS through this machine's egress proxy, so the role installs from
    a wheelhouse built here (`hean_pip_offline`), and the host's extra CAs are copied in anyway;
  * the only process we ever signal is the nspawn we started, by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

WORK = Path(os.environ.get("HEAN_DEPLOY_DIR", "/var/tmp/hean-deploy"))
SUITE = os.environ.get("HEAN_VPS_SUITE", "bookworm")
ROOTFS = WORK / f"rootfs-{SUITE}"
TOOLS = Path(os.environ.get("HEAN_DEPLOY_TOOLS", str(WORK / "tools")))
SSH_PORT = int(os.environ.get("HEAN_VPS_SSH_PORT", "2322"))
NAME = "hean-vps"
KEY = WORK / "id_ed25519"
# What the role and the tests use on the VPS, nothing more (a fresh CI machine builds it every run).
PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,sudo,ca-certificates"
READY_MARK = ROOTFS / ".hean-vps-configured"


SSHD_CONFIG = ("Port {port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
               "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n")


def host_mirror() -> str:
    """The Debian mirror this machine's own apt uses (override with HEAN_VPS_MIRROR)."""
    if os.environ.get("HEAN_VPS_MIRROR"):
        return os.environ["HEAN_VPS_MIRROR"]
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in src.read_text().splitlines():
            if line.startswith("URIs:") and line.rstrip().endswith("/debian"):
                return line.split(None, 1)[1].strip()
    return "http://deb.debian.org/debian"


def _run(*argv: str | Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], check=True, text=True, capture_output=True, **kw)


def build_rootfs() -> float:
    """mmdebstrap + configure the image once; returns seconds spent (0 when cached)."""
    t0 = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    if not (ROOTFS / "lib/systemd/systemd").exists():
        partial = ROOTFS.with_name(ROOTFS.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run("mmdebstrap", "--quiet", "--variant=minbase", f"--include={PACKAGES}", "--dpkgopt=force-unsafe-io",
             *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale")),
             "--aptopt=Acquire::Languages \"none\"", SUITE, partial, host_mirror())
        partial.rename(ROOTFS)
    if not KEY.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", NAME, "-f", KEY)
    if not READY_MARK.exists():
        _configure_image()
        READY_MARK.touch()
    return time.monotonic() - t0


def _configure_image() -> None:
    r = ROOTFS
    (r / "etc/hostname").write_text(NAME + "\n")
    (r / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {NAME}\n::1 localhost\n")
    (r / "etc/ssh/sshd_config.d/hean-vps.conf").write_text(SSHD_CONFIG.format(port=SSH_PORT))
    if subprocess.run(["chroot", str(r), "id", "deploy"], capture_output=True).returncode != 0:
        _run("chroot", r, "useradd", "-m", "-s", "/bin/bash", "deploy")
    sudoers = r / "etc/sudoers.d/deploy"
    sudoers.write_text("deploy ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    pub = KEY.with_suffix(".pub").read_text()
    for home in ("root", "home/deploy"):
        d = r / home / ".ssh"
        d.mkdir(mode=0o700, exist_ok=True)
        (d / "authorized_keys").write_text(pub)
        (d / "authorized_keys").chmod(0o600)
    _run("chroot", r, "chown", "-R", "deploy:deploy", "/home/deploy/.ssh")
    cas = list(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for ca in cas:
        shutil.copy(ca, r / "usr/local/share/ca-certificates" / ca.name)
    if cas:
        _run("chroot", r, "update-ca-certificates")


class Vps:
    """One booted container; `exec` runs a command inside (all namespaces), `ssh` goes through sshd.

    Another name and port boot a second VPS from the same image (a stack split across two hosts):
    its sshd port comes from a bind-mounted config, its host name from nspawn."""

    def __init__(self, name: str = NAME, ssh_port: int = SSH_PORT) -> None:
        self.name, self.ssh_port = name, ssh_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = WORK / f"nspawn-{name}.log"
        self.pidfile = WORK / f"nspawn-{name}.pid"
        self.leader = 0

    def boot(self, timeout: float = 60) -> float:
        stop_stale(self.pidfile)
        t0 = time.monotonic()
        extra = []
        if (self.name, self.ssh_port) != (NAME, SSH_PORT):
            conf = WORK / f"sshd-{self.name}.conf"
            conf.write_text(SSHD_CONFIG.format(port=self.ssh_port))
            extra = [f"--bind-ro={conf}:/etc/ssh/sshd_config.d/hean-vps.conf", f"--hostname={self.name}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "-D", str(ROOTFS), "-M", self.name, "--boot", "--register=no",
                 "--keep-unit", "--console=pipe", "--volatile=overlay", *extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.log.read_text()[-2000:]}")
            if not self.leader:
                self.leader = container_init(self.proc.pid)
            if self.leader:
                state = self.exec("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded") and self.ssh("true", check=False).returncode == 0:
                    return time.monotonic() - t0
            time.sleep(0.2)
        raise RuntimeError(f"VPS not up after {timeout}s (state {state!r})")

    def exec(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.leader), "-a", *argv], text=True,
                              capture_output=True, check=check, timeout=timeout)

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return self.exec("/bin/bash", "-c", script, check=check, timeout=timeout).stdout

    def ssh_args(self) -> list[str]:
        return ["-i", str(KEY), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", str(self.ssh_port)]

    def ssh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *self.ssh_args(), "deploy@127.0.0.1", command], text=True,
                              capture_output=True, check=check, timeout=60)

    def inventory_line(self, extra: str = "") -> str:
        return (f"{self.name} ansible_host=127.0.0.1 ansible_port={self.ssh_port} ansible_user=deploy "
                f"ansible_ssh_private_key_file={KEY} ansible_python_interpreter=/usr/bin/python3 "
                f"ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                f"-o ControlPath={WORK}/ssh-%C' {extra}".rstrip() + "\n")

    def inventory(self, path: Path, extra: str = "") -> Path:
        path.write_text("[hean]\n" + self.inventory_line(extra))
        return path

    def shutdown(self) -> None:
        """Power off cleanly; escalate only on the nspawn process we started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.exec("systemctl", "poweroff", "--no-block", check=False)
        try:
            self.proc.wait(30)
            return
        except subprocess.TimeoutExpired:
            pass
        self.proc.terminate()
        time.sleep(1)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def container_init(nspawn_pid: int) -> int:
    """The host PID of the container's PID 1: the child of nspawn that is PID 1 in its namespace.
    (Not just any child: nspawn's short-lived intermediate child comes first, and a leader taken
    from it fails every later nsenter, so boot() waited its full timeout.)"""
    kids = subprocess.run(["pgrep", "-P", str(nspawn_pid)], capture_output=True, text=True, check=False).stdout.split()
    for kid in kids:
        try:
            nspid = re.search(r"(?m)^NSpid:\s+(.*)$", Path(f"/proc/{kid}/status").read_text()).group(1).split()
        except (OSError, AttributeError):
            continue
        if len(nspid) == 2 and nspid[1] == "1":
            return int(kid)
    return 0


def stop_stale(pidfile: Path) -> None:
    """A session killed before its teardown leaves its container running: power off exactly that one."""
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if b"systemd-nspawn" not in cmdline[0] or str(ROOTFS).encode() not in cmdline:
        return
    leader = container_init(pid)
    if leader:
        subprocess.run(["nsenter", "-t", str(leader), "-a", "systemctl", "poweroff", "--no-block"],
                       capture_output=True, check=False)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, 9)
