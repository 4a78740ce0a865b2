"""The autoscaler's Dockerfile and build context.

No registry is reachable here, so the image itself is not built. What can break a build or
the image is checked instead: the structure of the Dockerfile (two stages, the same base,
a non-root user, a healthcheck, the `autoscaler` entry point), and the build stage's
`pip install .` is repeated on exactly the files that .dockerignore lets into the context.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def _pattern(p: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match plus `**`)."""
    p = p.strip().strip("/")
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif p.startswith("**", i):
            out, i = out + ".*", i + 2
        elif p[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif p[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(p[i]), i + 1
    return re.compile(out + "$")


def build_context() -> list[str]:
    """Files of the repository that .dockerignore lets into the build context."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _pattern(line.lstrip("!"))))
    included = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            rel = str((Path(dirpath) / name).relative_to(ROOT))
            parts = rel.split("/")
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            excluded = False
            for negate, rx in rules:
                if any(rx.match(c) for c in candidates):
                    excluded = not negate
            if not excluded:
                included.append(rel)
    return sorted(included)


# ---------------------------------------------------------------- the Dockerfile


def test_two_stages_on_the_same_base_image() -> None:
    froms = [s[0][1] for s in stages()]
    assert len(froms) == 2
    base = froms[0].split()[0]
    assert froms[0] == f"{base} AS build"
    # The virtualenv's interpreter is a link into the base image: both stages must match.
    assert froms[1] == base
    assert any(
        i == ("ARG", f"{base.strip('${}')}=python:3.11-slim-bookworm") for i in instructions()
    )


def test_runtime_stage_runs_as_an_unprivileged_user_with_a_healthcheck() -> None:
    final = dict(stages()[-1])
    assert final["USER"] not in ("root", "0", "0:0")
    assert final["USER"] == "10001"
    assert "/healthz" in final["HEALTHCHECK"]
    assert final["ENTRYPOINT"] == '["autoscaler"]'
    assert final["CMD"] == '["run"]'
    assert "EXPOSE" in final
    # Only the virtualenv comes from the build stage; no compilers in the runtime image.
    copies = [args for ins, args in stages()[-1] if ins == "COPY"]
    assert copies == ["--from=build /venv /venv"]


def test_the_image_defaults_match_the_stack() -> None:
    env = " ".join(args for ins, args in stages()[-1] if ins == "ENV")
    assert "AUTOSCALER_RULES=/etc/autoscaler/rules" in env
    assert "AUTOSCALER_LEDGER=/var/lib/autoscaler/decisions.jsonl" in env
    stack = (ROOT / "stack.yml").read_text(encoding="utf-8")
    assert 'user: "10001:${DOCKER_GID}"' in stack
    assert "autoscaler-ledger:/var/lib/autoscaler" in stack


# ---------------------------------------------------------------- the build context


def test_the_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    context = build_context()
    sources = []
    for ins, args in instructions():
        if ins == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources
    for src in sources:
        src = src.rstrip("/")
        assert any(f == src or f.startswith(src + "/") for f in context), src
    tops = {f.split("/")[0] for f in context}
    assert tops == {"pyproject.toml", "README.md", "autoscaler"}
    assert not [f for f in context if "__pycache__" in f or f.endswith(".pyc")]


def test_the_build_stage_installs_from_that_context(tmp_path: Path) -> None:
    # The build stage runs `pip install .` on the copied files. Running the build back-end
    # on the same files, without the network, proves nothing it needs was left out.
    context = tmp_path / "context"
    for rel in build_context():
        dest = context / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    out = tmp_path / "metadata"
    out.mkdir()
    # setuptools' egg_info reads pyproject.toml the way `pip install .` does and lists the
    # package's files and entry points.
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "egg_info",
            "--egg-base",
            str(out),
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    egg_info = next(out.glob("*.egg-info"))
    entry_points = (egg_info / "entry_points.txt").read_text(encoding="utf-8")
    assert re.search(r"^autoscaler ?= ?autoscaler\.cli:main$", entry_points, re.M)
    metadata = (egg_info / "PKG-INFO").read_text(encoding="utf-8")
    assert "Name: shiny-swarm-autoscaler" in metadata
    sources = (egg_info / "SOURCES.txt").read_text(encoding="utf-8").split()
    assert "autoscaler/cli.py" in sources
    assert "autoscaler/rules/schema.py" in sources
    assert "README.md" in sources
    assert not [s for s in sources if s.startswith("tests/")]
