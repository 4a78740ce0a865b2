"""The worker's user-data: rendered settings are inert data, the script is valid bash."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from autoscaler.userdata import JoinSettings, render_user_data
from autoscaler.userdata.render import MAX_USER_DATA
from tests.realparts import missing_real_part

BASE = JoinSettings(
    pool="web",
    cluster="shiny",
    region="eu-west-1",
    join_parameter="/autoscaler/swarm/worker-join",
    images=("ghcr.io/org/app:1.2", "rocker/shiny:4"),
)


def header_values(script: str, *names: str) -> list[str]:
    """Run only the rendered header in bash and print the variables it set."""
    header = script.split("set -euo pipefail")[0]
    show = "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    out = subprocess.run(["bash", "-c", header + show], capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


def test_script_is_valid_bash() -> None:
    script = render_user_data(BASE)
    assert script.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)


def test_settings_are_in_the_header() -> None:
    script = render_user_data(BASE)
    assert header_values(
        script,
        "AUTOSCALER_POOL",
        "AUTOSCALER_IMAGES",
        "AUTOSCALER_JOIN_PARAMETER",
        "AUTOSCALER_WARM",
    ) == ["web", "ghcr.io/org/app:1.2 rocker/shiny:4", "/autoscaler/swarm/worker-join", "0"]
    warm = render_user_data(JoinSettings(**{**BASE.__dict__, "warm": True}))
    assert header_values(warm, "AUTOSCALER_WARM") == ["1"]


def test_values_cannot_inject_commands() -> None:
    nasty = "web'; echo INJECTED; x='$(echo INJECTED)`echo INJECTED`"
    script = render_user_data(JoinSettings(**{**BASE.__dict__, "pool": nasty}))
    (value,) = header_values(script, "AUTOSCALER_POOL")
    assert value == nasty


def test_the_script_reads_the_token_from_ssm_never_holds_it() -> None:
    script = render_user_data(BASE)
    assert "ssm get-parameter" in script and "--with-decryption" in script
    assert "SWMTKN" not in script
    assert "set -x" not in script  # the token must not be traced into logs


def test_bad_variable_names_and_oversize_are_refused() -> None:
    with pytest.raises(ValueError, match="not a shell variable name"):
        render_user_data(JoinSettings(**{**BASE.__dict__, "extra_env": {"A B": "1"}}))
    many = tuple(f"registry.example.com/team/app-{i}:1.0.0" for i in range(600))
    with pytest.raises(ValueError, match=f"exceeds EC2's {MAX_USER_DATA // 1024} KiB"):
        render_user_data(JoinSettings(**{**BASE.__dict__, "images": many}))


def test_the_script_passes_shellcheck(tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        missing_real_part("shellcheck is not installed (apt-get install shellcheck)")
    path = tmp_path / "user-data.sh"
    path.write_text(render_user_data(BASE))
    # SC2034: AUTOSCALER_CLUSTER is for people reading the machine's user-data
    out = subprocess.run(
        ["shellcheck", "--severity=info", "--exclude=SC2034", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout


def test_control_characters_in_values_are_refused() -> None:
    with pytest.raises(ValueError, match="AUTOSCALER_POOL: control characters"):
        render_user_data(JoinSettings(**{**BASE.__dict__, "pool": "web\nAUTOSCALER_WARM=1"}))


# ---------------------------------------------------------------- the script, run
#
# The boot script runs here with the machine's commands replaced by small scripts that
# record their arguments (docker, the AWS CLI, systemctl, apt-get, poweroff), in a PATH
# that holds nothing else: what it installs, which token it joins with, what it logs and
# what a reboot does. tests/test_userdata_lab.py runs it for real against a lab Swarm.

TOKEN = "SWMTKN-1-0123456789abcdef-secret"
VALUE = json.dumps({"token": TOKEN, "managers": ["10.0.0.5:2377", "10.0.0.6:2377"]})
TOOLS = (
    "date",
    "tee",
    "sed",
    "install",
    "python3",
    "cat",
    "sync",
    "env",
    "touch",
    "chmod",
    "grep",
)
STUBS = {
    "docker": """
case "$1" in
  info)
    case "${3:-}" in
      *NodeID*) cat "$STATE/node-id" 2>/dev/null || true ;;
      *) cat "$STATE/swarm" ;;
    esac
    exit 0 ;;
  pull) echo "pull $*" >> "$STATE/calls"; exit 0 ;;
  login) echo "docker $*" >> "$STATE/calls"; cat > "$STATE/login-password"; exit 0 ;;
  swarm)
    manager=${*: -1}
    echo "docker swarm $2 $manager" >> "$STATE/calls"
    case "$2" in
      leave) echo inactive > "$STATE/swarm"; exit 0 ;;
      join)
        # the engine: one join at a time ("already part of a swarm" while one goes on)
        [ "$(cat "$STATE/swarm")" = inactive ] || exit 1
        if grep -qxF "$manager" "$STATE/silent" 2>/dev/null; then
          echo pending > "$STATE/swarm"; exit 1   # timed out: goes on in the background
        fi
        if grep -qxF "$manager" "$STATE/slow" 2>/dev/null; then
          # answered and issued the certificate, but the node is not ready within 20 s
          echo pending > "$STATE/swarm"; echo n0de1d > "$STATE/node-id"; exit 1
        fi
        printf '%s\n' "$@" > "$STATE/join-args"; echo active > "$STATE/swarm"; exit 0 ;;
    esac ;;
esac
exit 1
""",
    "sleep": 'echo "sleep $*" >> "$STATE/calls"',
    "aws": 'echo "aws $*" >> "$STATE/calls"; cat "$STATE/value"',
    "systemctl": 'echo "systemctl $*" >> "$STATE/calls"',
    "poweroff": 'echo poweroff >> "$STATE/calls"',
    # apt as it locks: the image's own daily run may hold the package lists' lock or dpkg's
    # for a number of attempts (state files lists-held, dpkg-held); only dpkg's is waited
    # for, and only with DPkg::Lock::Timeout
    "apt-get": """
echo "apt-get $*" >> "$STATE/calls"
wait_lock=0
while [ "${1:-}" = -o ]; do
  case "$2" in DPkg::Lock::Timeout=*) wait_lock=${2#*=} ;; esac
  shift 2
done
held() {
  local n=0
  [ -f "$STATE/$1-held" ] && n=$(cat "$STATE/$1-held")
  [ "$n" -gt 0 ] || return 1
  echo $((n - 1)) > "$STATE/$1-held"
}
case "$1" in
  update)
    if held lists; then echo "E: Could not get lock /var/lib/apt/lists/lock" >&2; exit 100; fi
    touch "$STATE/lists" ;;
  install)
    if [ "$wait_lock" -gt 0 ]; then echo 0 > "$STATE/dpkg-held"
    elif held dpkg; then echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2; exit 100
    fi
    [ -f "$STATE/lists" ] || exit 100
    case "$*" in
      *awscli*) [ -f "$STATE/no-awscli" ] && exit 100
        printf '#!/bin/bash\necho "aws $*" >> "$STATE/calls"; cat "$STATE/value"\n' > "$BIN/aws"
        chmod +x "$BIN/aws" ;;
      *docker.io*) install -m 0755 "$STATE/docker.pkg" "$BIN/docker" ;;
    esac ;;
esac
""",
    # snapd refuses installs until it has seeded the image's snaps
    "snap": """
echo "snap $*" >> "$STATE/calls"
case "$1" in
  wait) touch "$STATE/seeded" ;;
  install)
    [ -f "$STATE/seeded" ] || { echo "error: too early for operation" >&2; exit 1; }
    printf '#!/bin/bash\necho "aws $*" >> "$STATE/calls"; cat "$STATE/value"\n' > "$BIN/aws"
    chmod +x "$BIN/aws" ;;
esac
""",
}


class Machine:
    """A folder standing for the machine: its commands, its systemd units, its state."""

    def __init__(self, root: Path, without: tuple[str, ...] = ()) -> None:
        self.root = root
        self.bin = root / "bin"
        self.state = root / "state"
        self.units = root / "systemd"
        for d in (self.bin, self.state, self.units):
            d.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (self.bin / tool).symlink_to(found)
        for name, body in STUBS.items():
            script = f"#!{shutil.which('bash')}\n{body}"
            if name not in without:
                (self.bin / name).write_text(script)
                (self.bin / name).chmod(0o755)
            else:  # what the package manager installs
                (self.state / f"{name}.pkg").write_text(script)
        (self.state / "swarm").write_text("inactive\n")
        (self.state / "value").write_text(VALUE)
        self.self_copy = root / "autoscaler-join"
        self.log = root / "join.log"

    def run(self, script: Path) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": str(self.bin),
            "STATE": str(self.state),
            "BIN": str(self.bin),
            "AUTOSCALER_LOG": str(self.log),
            "AUTOSCALER_SYSTEMD_DIR": str(self.units),
            "AUTOSCALER_SELF": str(self.self_copy),
        }
        bash = shutil.which("bash")
        assert bash
        return subprocess.run(
            [bash, str(script)], env=env, capture_output=True, text=True, timeout=60
        )

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def joined_with(self) -> list[str]:
        path = self.state / "join-args"
        return path.read_text().splitlines() if path.exists() else []


def first_boot(tmp_path: Path, settings: JoinSettings, **kw: tuple[str, ...]) -> Machine:
    machine = Machine(tmp_path, **kw)
    user_data = tmp_path / "part-001"
    script = render_user_data(settings)
    # never the host's own /etc/systemd/system and /usr/local/sbin
    assert "${AUTOSCALER_SYSTEMD_DIR:-" in script and "${AUTOSCALER_SELF:-" in script
    user_data.write_text(script)
    out = machine.run(user_data)
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout + out.stderr
    return machine


def test_joins_with_the_token_from_ssm_and_never_logs_it(tmp_path: Path) -> None:
    machine = first_boot(tmp_path, BASE)
    assert machine.joined_with() == ["swarm", "join", "--token", TOKEN, "10.0.0.5:2377"]
    (get,) = [c for c in machine.calls() if c.startswith("aws ")]
    assert "ssm get-parameter --name /autoscaler/swarm/worker-join --with-decryption" in get
    assert "--region eu-west-1" in get
    log = machine.log.read_text()
    assert "joined pool web" in log and TOKEN not in log
    pulled = [c.split()[-1] for c in machine.calls() if c.startswith("pull ")]
    assert pulled == ["ghcr.io/org/app:1.2", "rocker/shiny:4"]


def test_a_reboot_runs_the_installed_copy_and_joins_no_second_time(tmp_path: Path) -> None:
    machine = first_boot(tmp_path, BASE)
    unit = (machine.units / "autoscaler-join.service").read_text()
    assert f"ExecStart={machine.self_copy}" in unit.splitlines()
    assert "systemctl enable autoscaler-join.service" in machine.calls()
    (machine.state / "join-args").unlink()
    out = machine.run(machine.self_copy)  # what systemd starts at the next boot
    assert out.returncode == 0, out.stderr
    assert machine.joined_with() == []
    assert machine.log.read_text().splitlines()[-1].endswith("already in the Swarm")


def test_a_warm_machine_powers_off_and_joins_once_started(tmp_path: Path) -> None:
    machine = first_boot(tmp_path, JoinSettings(**{**BASE.__dict__, "warm": True}))
    assert "poweroff" in machine.calls() and machine.joined_with() == []
    assert not [c for c in machine.calls() if c.startswith("aws ")]  # no token on a warm one
    assert "AUTOSCALER_WARM=0" in machine.self_copy.read_text().splitlines()
    out = machine.run(machine.self_copy)  # started by a launch
    assert out.returncode == 0, out.stderr
    assert machine.joined_with()[:4] == ["swarm", "join", "--token", TOKEN]


def test_the_pool_name_cannot_add_to_the_systemd_unit(tmp_path: Path) -> None:
    settings = JoinSettings(**{**BASE.__dict__, "pool": "web %h $(id) ;x"})
    machine = first_boot(tmp_path, settings)
    unit = (machine.units / "autoscaler-join.service").read_text()
    (description,) = [line for line in unit.splitlines() if line.startswith("Description=")]
    assert (
        description == "Description=Join the Swarm as a worker of autoscaler pool web__h___id___x"
    )


def test_the_aws_cli_is_installed_from_fresh_package_lists(tmp_path: Path) -> None:
    # Docker comes with the image, so nothing ran apt-get update before the AWS CLI
    if Path("/snap/bin/aws").exists():
        pytest.skip("this host has the AWS CLI snap, which the script finds")
    machine = first_boot(tmp_path, BASE, without=("aws",))
    apt = [c for c in machine.calls() if c.startswith("apt-get")]
    assert apt[0].split()[-2:] == ["update", "-y"] and "awscli" in apt[-1]
    assert machine.joined_with()[:4] == ["swarm", "join", "--token", TOKEN]


ECR = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"


def test_images_from_ecr_are_pulled_after_a_login_with_the_instance_role(tmp_path: Path) -> None:
    # the worker role may pull from ECR, but Docker itself has no credentials for it: without
    # a login every pull of a private image fails, and a warm machine keeps none
    images = (f"{ECR}/shiny/app:1.4", f"{ECR}/shiny/api:2", "rocker/shiny:4")
    machine = first_boot(
        tmp_path, JoinSettings(**{**BASE.__dict__, "images": images, "warm": True})
    )
    calls = machine.calls()
    logins = [i for i, c in enumerate(calls) if c.startswith("docker login ")]
    assert [calls[i] for i in logins] == [f"docker login --username AWS --password-stdin {ECR}"]
    assert "aws ecr get-login-password --region eu-central-1" in calls
    pulls = [i for i, c in enumerate(calls) if c.startswith("pull ")]
    assert len(pulls) == 3 and logins[0] < pulls[0]
    # the password (here the stub's answer) went through stdin, and into no log
    assert (machine.state / "login-password").read_text() == VALUE
    assert TOKEN not in machine.log.read_text()
    assert not [c for c in calls if c.startswith("aws ssm")]  # still no join token on a warm one


def test_a_join_that_times_out_is_cancelled_and_the_next_manager_tried(tmp_path: Path) -> None:
    # the first manager never answers: Docker gives up waiting after 20 s but goes on trying
    # that manager in the background, and refuses any other join until that one is cancelled
    machine = Machine(tmp_path)
    (machine.state / "silent").write_text("10.0.0.5:2377\n")
    user_data = tmp_path / "part-001"
    user_data.write_text(render_user_data(BASE))
    out = machine.run(user_data)
    assert out.returncode == 0, out.stderr
    swarm = [c for c in machine.calls() if c.startswith("docker swarm")]
    assert swarm == [
        "docker swarm join 10.0.0.5:2377",
        "docker swarm leave --force",
        "docker swarm join 10.0.0.6:2377",
    ]
    assert machine.joined_with() == ["swarm", "join", "--token", TOKEN, "10.0.0.6:2377"]
    log = machine.log.read_text()
    assert "no answer via 10.0.0.5:2377" in log and "joined pool web" in log


def test_a_membership_restored_at_boot_is_waited_for_never_left(tmp_path: Path) -> None:
    # a rebooted worker whose engine is still reconnecting to the Swarm keeps its identity
    machine = Machine(tmp_path)
    (machine.state / "swarm").write_text("pending\n")
    user_data = tmp_path / "part-001"
    user_data.write_text(render_user_data(BASE))
    out = machine.run(user_data)
    assert out.returncode != 0  # still not connected: the next boot's run tries again
    assert not [c for c in machine.calls() if c.startswith(("docker swarm", "aws ssm"))]
    assert "waiting for the Swarm membership" in machine.log.read_text()


def test_a_first_boot_waits_out_the_package_locks_of_the_images_own_apt_run(
    tmp_path: Path,
) -> None:
    # a fresh Ubuntu runs its daily apt job at boot, beside the user-data
    machine = Machine(tmp_path, without=("docker",))
    (machine.state / "lists-held").write_text("2")
    (machine.state / "dpkg-held").write_text("1")
    user_data = tmp_path / "part-001"
    user_data.write_text(render_user_data(BASE))
    out = machine.run(user_data)
    assert out.returncode == 0, out.stderr
    assert "systemctl enable --now docker" in machine.calls()
    assert machine.joined_with() == ["swarm", "join", "--token", TOKEN, "10.0.0.5:2377"]


def test_the_aws_cli_snap_is_installed_once_snapd_has_seeded(tmp_path: Path) -> None:
    # releases without the awscli package (Ubuntu 24.04): the snap, which a first boot may
    # ask for before snapd has seeded the image
    if Path("/snap/bin/aws").exists():
        pytest.skip("this host has the AWS CLI snap, which the script finds")
    machine = Machine(tmp_path, without=("aws",))
    (machine.state / "no-awscli").touch()
    user_data = tmp_path / "part-001"
    user_data.write_text(render_user_data(BASE))
    out = machine.run(user_data)
    assert out.returncode == 0, out.stderr
    snap = [c for c in machine.calls() if c.startswith("snap ")]
    assert snap == ["snap wait system seed.loaded", "snap install aws-cli --classic"]
    assert machine.joined_with()[:4] == ["swarm", "join", "--token", TOKEN]


def test_a_join_a_manager_answered_is_left_to_finish(tmp_path: Path) -> None:
    # the manager registered the node: cancelling would leave a node behind in the Swarm
    machine = Machine(tmp_path)
    (machine.state / "slow").write_text("10.0.0.5:2377\n")
    user_data = tmp_path / "part-001"
    user_data.write_text(render_user_data(BASE))
    machine.run(user_data)
    swarm = [c for c in machine.calls() if c.startswith("docker swarm")]
    assert swarm == ["docker swarm join 10.0.0.5:2377"]
    log = machine.log.read_text()
    assert "registered via 10.0.0.5:2377" in log
    assert "waiting for the Swarm membership" in log  # the next attempt waits for it too
