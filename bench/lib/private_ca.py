"""A private certificate authority for benchmarks, made with the openssl CLI.

PrivateCA(directory).create() writes ca.key and ca.pem; issue(name, sans)
writes NAME.key and NAME.pem, a server certificate for `name` with the
given subjectAltNames (DNS names), signed by the CA. ECDSA P-256 keys,
valid for two days. Nothing is installed anywhere: whoever should trust the
CA is given ca.pem.
"""

import os
import subprocess

OPENSSL = "openssl"


def _run(args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {r.stdout.strip()}")


class PrivateCA:
    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        self.key = os.path.join(self.dir, "ca.key")
        self.certificate = os.path.join(self.dir, "ca.pem")

    def create(self):
        os.makedirs(self.dir, exist_ok=True)
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-days", "2", "-subj", "/CN=bench private CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-keyout", self.key, "-out", self.certificate], self.dir)
        os.chmod(self.dir, 0o755)
        os.chmod(self.certificate, 0o644)
        return self

    def issue(self, name, sans=()):
        """A server certificate for name (and sans); returns (cert, key)."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.pem")
        ext = os.path.join(self.dir, f"{name}.ext")
        names = [name, *[s for s in sans if s != name]]
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-subj", f"/CN={name}", "-keyout", key, "-out", csr], self.dir)
        _run(["x509", "-req", "-in", csr, "-CA", self.certificate, "-CAkey", self.key,
              "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert], self.dir)
        # Readable by the servers' unprivileged processes (Postfix's smtpd
        # reads its key as root before dropping privileges; Dovecot too).
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)
        return cert, key
