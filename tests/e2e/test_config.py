"""Configuration checking.

Proves that `stokend --check-config` accepts the sample configuration shipped
in etc/ and the configurations these tests use (durations as "500ms"/"2s"/"5m"
or integer seconds); that for a broken file it prints one FILE:LINE:COL line per
error (unknown key, port out of range, wrong type, bad duration) pointing at the
right line, and exits non-zero; and that the daemon refuses to start with such a
file.
"""

import re
import subprocess
from pathlib import Path

import pytest

from stokend_daemon import REPO, STOKENCTL, STOKEND, default_config, free_ports, require_binaries, to_yaml

BROKEN = """\
hostname: mx.example.test
local_domains: [example.test]
frobnicate: yes
listeners:
  - role: mx
    address: 127.0.0.1
    port: 70000
    tls: starttls
limits:
  max_recipients: lots
timeouts:
  idle: soon
"""
# (line, text the message must mention)
BROKEN_ERRORS = [(3, "frobnicate"), (7, None), (10, None), (12, None)]


def says_ok(output: str) -> bool:
    """A valid file: nothing, or one line ending in "ok"."""
    lines = output.strip().splitlines()
    return not lines or (len(lines) == 1 and lines[0].strip().lower().endswith("ok"))


def check_config(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    require_binaries()
    return subprocess.run([str(STOKEND), "--check-config", str(path)], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def error_lines(output: str, file_name: str) -> list[tuple[int, int, str]]:
    pattern = re.compile(r"^(?:.*/)?" + re.escape(file_name) + r":(\d+):(\d+): (.+)$")
    found = []
    for line in output.splitlines():
        match = pattern.match(line.strip())
        if match:
            found.append((int(match.group(1)), int(match.group(2)), match.group(3)))
    return found


def test_both_programs_print_the_project_version(tmp_path):
    require_binaries()
    declared = re.search(r"project\(stokend VERSION (\S+)", (REPO / "CMakeLists.txt").read_text())
    assert declared, "CMakeLists.txt declares no version"
    for program, name in ((STOKEND, "stokend"), (STOKENCTL, "stokenctl")):
        result = subprocess.run([str(program), "--version"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{name} {declared.group(1)}\n", result.stdout


def test_sample_config_is_valid(tmp_path):
    sample = REPO / "etc" / "stokend.yaml"
    assert sample.is_file(), "etc/stokend.yaml is missing"
    result = check_config(sample, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert says_ok(result.stdout), result.stdout


@pytest.mark.parametrize("timeouts", [
    {},
    {"idle": 300, "command": 300, "data": 600, "tls_handshake": 30,
     "auth_failure_base_delay": 1, "auth_failure_max_delay": 16},
    {"idle": "500ms", "command": "2s", "data": "5m"},
])
def test_test_configs_are_valid(tmp_path, timeouts):
    config = default_config(free_ports(3))
    config["timeouts"].update(timeouts)
    path = tmp_path / "good.yaml"
    path.write_text(to_yaml(config))
    result = check_config(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert says_ok(result.stdout), result.stdout


def test_broken_config_reports_every_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = check_config(path, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = error_lines(output, "broken.yaml")
    lines = [line for line, _, _ in errors]
    for line, mention in BROKEN_ERRORS:
        assert line in lines, f"no error reported at line {line}:\n{output}"
        if mention:
            message = next(m for l, _, m in errors if l == line)
            assert mention in message, f"line {line}: {message}"
    assert all(col >= 1 for _, col, _ in errors), errors
    assert set(lines) <= {line for line, _ in BROKEN_ERRORS}, f"errors at unexpected lines:\n{output}"


def test_unknown_nested_key_is_reported(tmp_path):
    path = tmp_path / "nested.yaml"
    config = to_yaml(default_config(free_ports(3)))
    config = config.replace("limits:\n", "limits:\n  max_recipents: 5\n", 1)
    path.write_text(config)
    expected_line = config.splitlines().index("  max_recipents: 5") + 1
    result = check_config(path, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = error_lines(output, "nested.yaml")
    assert [(line, col) for line, col, _ in errors] == [(expected_line, 3)], output


def test_missing_config_file(tmp_path):
    result = check_config(tmp_path / "absent.yaml", tmp_path)
    assert result.returncode != 0
    assert "absent.yaml" in result.stdout + result.stderr


def test_daemon_refuses_broken_config(tmp_path):
    require_binaries()
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    try:
        result = subprocess.run([str(STOKEND), "--config", str(path)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("stokend kept running with a broken config")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert error_lines(output, "broken.yaml"), f"no FILE:LINE:COL error printed:\n{output}"
    assert not (tmp_path / "var" / "mail").exists()
