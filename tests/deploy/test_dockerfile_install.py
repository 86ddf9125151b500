"""The Dockerfile's install step, run outside Docker: its COPY set and pip line build a working `onecode`.

No Docker daemon is needed: the builder stage's COPY instructions are replayed into a temporary
build context, and its `pip install` lines run there with a fresh virtualenv's pip. What this proves is
what the image build depends on: the copied files are enough to build the package, the constraints
file resolves, and the installed entry point starts.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_deploy_files import ROOT, dockerfile_stages, instruction

# Local state that a COPY of a package directory would carry in from a developer's tree; the image
# build excludes it through deploy/Dockerfile.dockerignore.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".seed", ".onecode")
INSTALL_TIMEOUT_S = 300


def replay_copies(context: Path) -> None:
    """Lay out the builder stage's COPY instructions (from the repository root) under `context`."""
    builder = dockerfile_stages()[0]
    for copy in instruction(builder, "COPY"):
        *sources, destination = shlex.split(copy)
        assert not any(source.startswith("--") for source in sources), f"unexpected COPY flag: {copy}"
        target = context / destination
        for source in sources:
            origin = ROOT / source
            into = target / origin.name if destination.endswith("/") else target
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=IGNORED)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


def pip_install_lines() -> list[list[str]]:
    """The builder's `RUN pip install ...` lines as argument lists (without the leading `pip`)."""
    lines = []
    for run in instruction(dockerfile_stages()[0], "RUN"):
        words = shlex.split(run)
        if words[:2] == ["pip", "install"]:
            lines.append(words[1:])
    return lines


@pytest.mark.slow
def test_builder_install_step_yields_a_working_cli(tmp_path: Path) -> None:
    """`pip install -c requirements.lock .` on the copied context installs an `onecode` that runs."""
    installs = pip_install_lines()
    assert installs, "the builder stage has no `RUN pip install` line"
    context = tmp_path / "context"
    context.mkdir()
    replay_copies(context)

    venv = tmp_path / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtualenv here: {made.stderr.strip()[-500:]}")
    python = venv / "bin" / "python"

    # The image sets PIP_NO_CACHE_DIR to keep its layers small; here the machine's cache saves minutes.
    env = {key: value for key, value in os.environ.items() if key not in {"PIP_NO_CACHE_DIR", "VIRTUAL_ENV"}}
    for args in installs:
        done = subprocess.run(
            [str(python), "-m", "pip", *args],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (
            f"pip {shlex.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )

    onecode = venv / "bin" / "onecode"
    # `onecode serve --help` reads the settings first, which may generate a master key: keep it here.
    env["ONECODE_HOME"] = str(tmp_path / "home")
    helped = subprocess.run(
        [str(onecode), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "migrate", "backup", "restore", "partitions"):
        assert command in helped.stdout
    serve = subprocess.run(
        [str(onecode), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert serve.returncode == 0, serve.stderr
    assert "--no-migrate" in serve.stdout
    # Installed, not pointing back at the source tree: the image has no source tree.
    where = subprocess.run(
        [str(python), "-c", "import service; print(service.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout
