"""`assay keys create|list|revoke`: key printed once on the last line, hashed at rest, bad input exit 2."""

from __future__ import annotations

import hashlib
import sqlite3

from tests.conftest import run_cli


def test_keys_cli_create_list_revoke_and_bad_input(tmp_path):
    env = {"ASSAY_DATA_DIR": str(tmp_path / "data")}
    made = run_cli("keys", "create", "--org", "Acme Bank", "--role", "auditor", "--label", "ci", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    _, key_id, secret = key.split("_", 2)
    assert "not shown again" in made.stderr and key not in made.stderr
    with sqlite3.connect(tmp_path / "data" / "assay.db") as db:
        salt, digest, role = db.execute(
            "SELECT salt, hash, role FROM api_keys WHERE id = ?", (key_id,)
        ).fetchone()
        dump = repr(db.execute("SELECT * FROM api_keys").fetchall())
        log = db.execute("SELECT action, target FROM audit_log").fetchall()
    assert digest == hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest() and role == "auditor"
    assert secret not in dump and ("key.create", key_id) in log

    listed = run_cli("keys", "list", "--org", "Acme Bank", env=env)
    assert listed.returncode == 0 and key_id in listed.stdout and "active" in listed.stdout
    assert secret not in listed.stdout

    revoked = run_cli("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    with sqlite3.connect(tmp_path / "data" / "assay.db") as db:
        assert db.execute("SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,)).fetchone()[0] is not None
        assert ("key.revoke", key_id) in db.execute("SELECT action, target FROM audit_log").fetchall()

    for args, needle in (
        (("keys", "create", "--org", "Acme Bank", "--role", "root"), "unknown role 'root'"),
        (("keys", "create", "--org", "   ", "--role", "viewer"), "organisation name is empty"),
        (("keys", "create", "--org", "x" * 201, "--role", "viewer"), "at most 200 characters"),
        (("keys", "list", "--org", "Nobody"), "no organisation named 'Nobody'"),
        (("keys", "revoke", "nope"), "no key with id 'nope'"),
    ):
        res = run_cli(*args, env=env)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_bad_database_settings_exit_2_without_leaking_the_password(tmp_path):
    base = {"ASSAY_DATA_DIR": str(tmp_path / "data")}
    cases = (
        ({"ASSAY_DATABASE_URL": "nonsense://"}, "not a usable database URL"),
        ({"ASSAY_DATABASE_URL": "postgresql://me:hunter2@127.0.0.1:1/assay"}, "cannot open the database"),
    )
    for extra, needle in cases:
        for args in (("keys", "create", "--org", "a", "--role", "viewer"), ("serve", "--port", "1")):
            res = run_cli(*args, env={**base, **extra})
            assert res.returncode == 2, (args, res.stderr)
            assert needle in res.stderr and "ASSAY_DATABASE_URL" in res.stderr, res.stderr
            assert "hunter2" not in res.stderr + res.stdout and "Traceback" not in res.stderr
