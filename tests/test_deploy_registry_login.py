"""docs/deploy.md: every deploy that may bring a new autoscaler image logs the manager in to
its registry first. `--with-registry-auth` hands the swarm the login the CLI holds; an ECR
login lasts 12 hours, and one made on another machine (step 6) is not on the manager."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shiny-autoscaler:0.1.0"


def shell_blocks() -> list[str]:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def deploys_of_new_images() -> list[str]:
    """The first deploy and the upgrade: the blocks that compute CONFIG_VERSION and deploy."""
    return [b for b in shell_blocks() if "CONFIG_VERSION=" in b and "docker stack deploy" in b]


def test_the_first_deploy_and_an_upgrade_log_in_to_the_registry_before_deploying() -> None:
    blocks = deploys_of_new_images()
    assert len(blocks) == 2
    for block in blocks:
        lines = block.splitlines()
        deploy = next(i for i, line in enumerate(lines) if "docker stack deploy" in line)
        assert "--with-registry-auth" in lines[deploy]
        logins = [line for line in lines[:deploy] if "docker login" in line]
        assert logins, block
        assert "aws ecr get-login-password" in logins[0]


def test_the_manager_has_what_the_login_needs() -> None:
    blocks = shell_blocks()
    (manager,) = [b for b in blocks if "docker swarm init" in b]
    assert "aws-cli" in manager or "awscli" in manager
    (env,) = [b for b in blocks if "export AUTOSCALER_IMAGE=" in b]
    assert re.search(r"^export AWS_REGION=\S+", env, flags=re.M)


def test_the_login_line_logs_in_to_the_images_registry(tmp_path: Path) -> None:
    """The documented line run by bash, with `aws` and `docker` recording what they get."""
    (login,) = {
        line
        for block in deploys_of_new_images()
        for line in block.splitlines()
        if "docker login" in line
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bash = shutil.which("bash")
    assert bash
    (bin_dir / "aws").write_text(f'#!{bash}\necho "$*" > "$OUT/aws-args"; echo s3cr3t\n')
    (bin_dir / "docker").write_text(
        f'#!{bash}\necho "$*" > "$OUT/docker-args"; cat > "$OUT/password"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    cat = shutil.which("cat")
    assert cat
    (bin_dir / "cat").symlink_to(cat)
    env = {"PATH": str(bin_dir), "OUT": str(tmp_path), "AUTOSCALER_IMAGE": IMAGE}
    done = subprocess.run(
        [bash, "-o", "pipefail", "-c", login], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "aws-args").read_text().split() == ["ecr", "get-login-password"]
    registry = IMAGE.split("/")[0]
    assert (tmp_path / "docker-args").read_text().split() == [
        "login",
        "--username",
        "AWS",
        "--password-stdin",
        registry,
    ]
    assert (tmp_path / "password").read_text() == "s3cr3t\n"
