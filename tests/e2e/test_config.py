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

from peers import private_ca
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


# --- what the daemon would refuse at start, the check catches --------------------

def valid_config(tmp_path: Path, **overrides) -> dict:
    config = default_config(free_ports(3))
    config.update(overrides)
    return config


def check_and_start(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess,
                                                       subprocess.CompletedProcess]:
    """The check's verdict, and what the daemon does with the same file."""
    path = tmp_path / "stokend.yaml"
    path.write_text(text)
    checked = check_config(path, tmp_path)
    try:
        started = subprocess.run([str(STOKEND), "--config", str(path)], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("stokend started with a configuration its check refuses")
    return checked, started


def only_error(result: subprocess.CompletedProcess) -> tuple[int, int, str]:
    errors = error_lines(result.stdout + result.stderr, "stokend.yaml")
    assert len(errors) == 1, result.stdout + result.stderr
    return errors[0]


def test_dns_servers_garbage_is_refused_by_the_check_and_the_daemon_never_aborts(tmp_path):
    config = valid_config(tmp_path, dns={"servers": "ns1.example.net", "timeout": "1s"})
    checked, started = check_and_start(tmp_path, to_yaml(config))
    line = to_yaml(config).splitlines().index('  servers: "ns1.example.net"') + 1
    assert checked.returncode == 1
    assert only_error(checked)[:2] == (line, 12)
    assert "dns.servers: 'ns1.example.net' is not a DNS server address" in only_error(checked)[2]
    # The daemon says the same and exits 1 (it used to abort on it: SIGABRT).
    assert started.returncode == 1, started.stderr
    assert only_error(started) == only_error(checked)
    assert "terminate called" not in started.stderr


def test_a_certificate_that_is_not_pem_and_a_key_that_does_not_match_are_refused(tmp_path):
    _, issued = private_ca(tmp_path / "ca", ["mx.example.test", "other.example.test"])
    certificate, key = issued["mx.example.test"]
    _, other_key = issued["other.example.test"]
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("a certificate, supposedly\n")

    config = valid_config(tmp_path, tls={"certificate": str(not_pem), "private_key": str(key)})
    checked, started = check_and_start(tmp_path, to_yaml(config))
    line, _, message = only_error(checked)
    assert message == (f"tls.certificate: '{not_pem}' is not a PEM certificate "
                       "(expected a '-----BEGIN CERTIFICATE-----' block)")
    assert to_yaml(config).splitlines()[line - 1].strip().startswith("certificate:")
    assert started.returncode == 1

    config = valid_config(tmp_path, tls={"certificate": str(certificate),
                                         "private_key": str(other_key)})
    checked, started = check_and_start(tmp_path, to_yaml(config))
    line, _, message = only_error(checked)
    assert message == (f"tls.private_key: the key in '{other_key}' does not belong to the "
                       f"certificate in '{certificate}'")
    assert to_yaml(config).splitlines()[line - 1].strip().startswith("private_key:")
    assert started.returncode == 1


def test_a_tab_in_the_indentation_is_reported_at_the_tab(tmp_path):
    text = to_yaml(valid_config(tmp_path)).replace("\n  max_recipients:", "\n\tmax_recipients:")
    line = text.splitlines().index("\tmax_recipients: 100") + 1
    checked, started = check_and_start(tmp_path, text)
    assert checked.returncode == 1
    assert only_error(checked) == (line, 1, "a tab in the indentation: YAML indents with spaces "
                                            "only, replace the tab with spaces")
    assert started.returncode == 1


def test_an_unclosed_brace_is_reported_on_its_line(tmp_path):
    text = to_yaml(valid_config(tmp_path))
    lines = text.splitlines()
    dns = next(i for i, l in enumerate(lines) if l.startswith("dns:"))
    lines[dns] = 'dns: {servers: "127.0.0.1:53", timeout: 1s'  # no closing brace
    del lines[dns + 1:dns + 3]
    text = "\n".join(lines) + "\n"
    checked, started = check_and_start(tmp_path, text)
    assert checked.returncode == 1
    line, column, message = only_error(checked)
    assert (line, column) == (dns + 1, 6)
    assert message.startswith("this '{' is never closed: a flow map needs its '}'")
    assert started.returncode == 1


def test_a_users_file_the_daemon_would_refuse_fails_the_check(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "users").write_text("this line has no password hash\n")
    checked, started = check_and_start(tmp_path, to_yaml(valid_config(tmp_path)))
    assert checked.returncode == 1
    assert re.search(r"^users_file: var/users:1: ", checked.stderr, re.M), checked.stderr
    assert started.returncode == 1
    assert "var/users:1: " in started.stderr
