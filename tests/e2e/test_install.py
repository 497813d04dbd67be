"""Installation as a system service (cmake/install.cmake, etc/systemd/).

- `cmake --install` of the build into a DESTDIR puts the programs in sbin,
  the packaged configuration in SYSCONFDIR/stokend/stokend.yaml, the three
  manual pages and the systemd unit, and nothing of the tests; the
  installed configuration passes `stokend --check-config`; the manual pages
  render with groff without a warning.
- `systemd-analyze verify` accepts the unit (pointed at the built binary).

These check what third-party tools read, so they run once, in the normal
build. The Debian package itself is built by scripts/build-deb (a whole
build of its own, too slow for the suite); README.md says how to check it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stokend_daemon import REPO, STOKEND, require_binaries

pytestmark = pytest.mark.once

UNIT = REPO / "etc" / "systemd" / "stokend.service"


def build_folder() -> Path:
    build = STOKEND.parent
    if not (build / "cmake_install.cmake").is_file():
        pytest.skip(f"{build} is not a CMake build folder with install rules")
    return build


def cache_value(build: Path, name: str) -> str:
    match = re.search(rf"^{name}:[A-Z]+=(.*)$", (build / "CMakeCache.txt").read_text(), re.M)
    assert match, f"{name} not in the CMake cache"
    return match.group(1)


def test_install_puts_programs_config_manuals_and_unit_in_place(tmp_path):
    require_binaries()
    build = build_folder()
    root = tmp_path / "root"
    result = subprocess.run(["cmake", "--install", str(build)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "DESTDIR": str(root)})
    assert result.returncode == 0, result.stdout + result.stderr

    prefix = cache_value(build, "CMAKE_INSTALL_PREFIX").lstrip("/")
    sysconf = "etc" if prefix == "usr" else f"{prefix}/etc"
    expected = {
        f"{prefix}/sbin/stokend", f"{prefix}/sbin/stokenctl",
        f"{sysconf}/stokend/stokend.yaml",
        f"{prefix}/share/man/man8/stokend.8", f"{prefix}/share/man/man8/stokenctl.8",
        f"{prefix}/share/man/man5/stokend.yaml.5",
        f"{prefix}/lib/systemd/system/stokend.service",
    }
    installed = {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}
    assert installed == expected, installed ^ expected
    for program in ("stokend", "stokenctl"):
        path = root / prefix / "sbin" / program
        assert os.access(path, os.X_OK)
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                                 timeout=10)
        assert version.returncode == 0 and version.stdout.startswith(program + " "), version

    # The packaged configuration: absolute paths under /var and /run, the
    # service user. As-is it names the user stokend, which a test machine
    # need not have: checked with nobody instead.
    config = (root / sysconf / "stokend" / "stokend.yaml").read_text()
    for line in ("spool_directory: /var/spool/stokend", "users_file: /var/lib/stokend/users",
                 "control_socket: /run/stokend/stokend.sock", "user: stokend",
                 "allow_root: false"):
        assert re.search(rf"^{re.escape(line)}$", config, re.M), line
    checked = tmp_path / "stokend.yaml"
    checked.write_text(config.replace("user: stokend", "user: nobody"))
    result = subprocess.run([str(STOKEND), "--check-config", str(checked)], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr

    for page in ("man8/stokend.8", "man8/stokenctl.8", "man5/stokend.yaml.5"):
        path = root / prefix / "share" / "man" / page
        rendered = subprocess.run(["groff", "-man", "-t", "-Tutf8", "-ww", str(path)],
                                  capture_output=True, text=True, timeout=30)
        assert rendered.returncode == 0 and rendered.stderr == "", f"{page}:\n{rendered.stderr}"
        text = re.sub(r".\x08", "", rendered.stdout)  # grotty's overstrike bold
        assert "NAME" in text and "SEE ALSO" in text, text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    require_binaries()
    unit = UNIT.read_text()
    # The binary the unit names must exist: point it at the one built.
    assert "ExecStart=/usr/sbin/stokend --config /etc/stokend/stokend.yaml" in unit
    for setting in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=stokend",
                    "AmbientCapabilities=CAP_NET_BIND_SERVICE", "ProtectSystem=strict",
                    "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes"):
        assert re.search(rf"^{re.escape(setting)}$", unit, re.M), setting
    copy = tmp_path / "stokend.service"
    copy.write_text(unit.replace("/usr/sbin/stokend", str(STOKEND.resolve())))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "stokend.service" not in output, f"systemd-analyze has remarks:\n{output}"
