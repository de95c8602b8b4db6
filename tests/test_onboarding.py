"""What a newcomer meets first: the Makefile with an S3 data root, `make clean` on S3, the
.env that plain `dagster` commands read, and the simulator's --help."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.envfile import write_env_file
from ml.io.clean import remove_root
from ml.io.store import StorageError, Store
from tests.conftest import ROOT

PRINT = "print-%: ; @echo $($*)"


# A user's shell, not this test run's (`make test` exports both).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "LIVECROSS_HOME")}


def make_var(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), *args, f"--eval={PRINT}", f"print-{name}"],
        capture_output=True, text=True, timeout=60, env=CLEAN_ENV,
    )  # fmt: skip


def test_an_s3_root_keeps_a_local_instance_and_every_target_parses():
    root = "s3://bucket/prefix"
    r = make_var("DAGSTER_HOME", f"LIVECROSS_HOME={root}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(ROOT / ".livecross" / "dagster_home")
    assert make_var("LIVECROSS_HOME", f"LIVECROSS_HOME={root}").stdout.strip() == root
    for target in ("demo", "dev", "tensorboard", "test", "bench", "instance"):
        dry = subprocess.run(
            ["make", "-n", "-C", str(ROOT), target, f"LIVECROSS_HOME={root}"],
            capture_output=True, text=True, timeout=60, env=CLEAN_ENV,
        )  # fmt: skip
        assert dry.returncode == 0 and "target pattern" not in dry.stderr, (target, dry.stderr)


def test_a_local_root_is_made_absolute_and_other_urls_are_refused():
    r = make_var("DAGSTER_HOME", "LIVECROSS_HOME=some/dir")
    assert r.stdout.strip() == str(ROOT / "some" / "dir" / "dagster_home")
    bad = make_var("DAGSTER_HOME", "LIVECROSS_HOME=http://host/x")
    assert bad.returncode != 0 and "use a local directory or s3://bucket/prefix" in bad.stderr
    bad = make_var("DAGSTER_HOME", "DAGSTER_HOME=s3://b/p")
    assert bad.returncode != 0 and "must be a local directory" in bad.stderr


def test_make_clean_refuses_s3_without_force():
    r = subprocess.run(
        ["make", "-C", str(ROOT), "clean", "LIVECROSS_HOME=s3://bucket/prefix"],
        capture_output=True, text=True, timeout=60, env=CLEAN_ENV,
    )  # fmt: skip
    assert r.returncode != 0 and "make clean FORCE=1" in r.stderr


def test_cleaning_an_s3_root_deletes_it_and_nothing_beside_it(s3_env):
    root, beside = f"s3://{s3_env}/livecross", Store(f"s3://{s3_env}/other")
    Store(root).write_bytes("lake/a/x.bin", b"1")
    Store(root).write_bytes("landing/b/y.bin", b"2")
    beside.write_bytes("keep.bin", b"3")
    assert remove_root(root) == 2
    assert not Store(root).exists("lake/a/x.bin") and beside.exists("keep.bin")
    with pytest.raises(StorageError, match="whole bucket"):
        remove_root(f"s3://{s3_env}")


def test_the_env_file_gives_defaults_an_exported_variable_overrides(tmp_path):
    from dotenv import dotenv_values

    env = tmp_path / ".env"
    env.write_text("# mine\nOTHER=1\n")
    write_env_file(env, {"DAGSTER_HOME": "/x/dagster_home", "LIVECROSS_START": "2026-05-01-00:00"})
    text = env.read_text()
    assert "# mine" in text and "OTHER=1" in text  # the user's lines are kept
    assert "DAGSTER_HOME=${DAGSTER_HOME:-/x/dagster_home}" in text
    # as Dagster reads it: the value, unless the variable is exported
    code = "from dotenv import dotenv_values; import sys; print(dotenv_values(sys.argv[1])['DAGSTER_HOME'])"
    out = subprocess.run([sys.executable, "-c", code, str(env)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin"}).stdout.strip()  # fmt: skip
    assert out == "/x/dagster_home"
    out = subprocess.run([sys.executable, "-c", code, str(env)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin", "DAGSTER_HOME": "/mine"}).stdout.strip()  # fmt: skip
    assert out == "/mine"
    assert dotenv_values(env)["OTHER"] == "1"


def test_the_simulator_documents_every_option_with_its_default():
    r = subprocess.run(
        [sys.executable, "-m", "ml.sim", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for option in ("--start", "--hours", "--users", "--seed", "--late-rate", "--dup-rate",
                   "--bad-rate", "--corrupt-files", "--max-lines-per-file", "--threads"):  # fmt: skip
        section = text.split(option, 2)[-1].split(" --", 1)[0]
        assert "(default:" in section, option
    assert "More hours of the same world" in text


NOISE = (
    "is currently in preview",
    "is currently in beta",
    "superseded and its usage is discouraged",
)


@pytest.mark.e2e
def test_user_commands_are_free_of_preview_beta_and_supersession_noise(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "LIVECROSS_HOME": str(tmp_path / "h")}
    bin_ = Path(sys.executable).parent
    for args in (
        [str(bin_ / "dagster"), "asset", "materialize", "--select", "raw_live_events",
         "--partition", "2026-01-01T00", "-m", "assets.definitions"],
        [str(bin_ / "dagster"), "definitions", "validate", "-m", "assets.definitions"],
    ):  # fmt: skip
        r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        for noise in NOISE:
            assert noise not in r.stdout + r.stderr, (args[1:3], noise)


@pytest.mark.e2e
def test_plain_dagster_commands_reach_the_instance_named_in_env(tmp_path):
    """No DAGSTER_HOME exported: the CLI takes it from the .env in its directory."""
    import dagster as dg

    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    (instance_dir / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    write_env_file(tmp_path / ".env", {"DAGSTER_HOME": str(instance_dir)})
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    bin_ = Path(sys.executable).parent
    r = subprocess.run(
        [str(bin_ / "dagster"), "sensor", "start", "landing_ready_sensor",
         "-w", str(ROOT / "workspace.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        states = instance.all_instigator_state()
        assert [(s.name, s.status.value) for s in states] == [("landing_ready_sensor", "RUNNING")]


def test_values_a_env_file_cannot_hold_are_refused(tmp_path):
    from ml.envfile import main

    env = tmp_path / ".env"
    for bad in ("a}b", "line\nbreak", 'q"uote', "$HOME"):
        with pytest.raises(ValueError, match=r"cannot be written to a \.env file"):
            write_env_file(env, {"LIVECROSS_HOME": bad})
    with pytest.raises(ValueError, match="invalid variable name"):
        write_env_file(env, {"1BAD": "x"})
    assert not env.exists()  # nothing half-written
    assert main([str(env), "NOEQUALS"]) == 2 and not env.exists()
    write_env_file(env, {"LIVECROSS_HOME": "/a dir/with space"})  # quoted, still read back
    assert 'LIVECROSS_HOME="${LIVECROSS_HOME:-/a dir/with space}"' in env.read_text()
