#!/bin/bash
# Joins this machine to the Swarm as a worker of an autoscaler pool.
# Runs at first boot (user-data) and installs itself to run at every later boot, so a
# warm-pool machine that is started again joins too. Settings are in the header above.
set -euo pipefail

LOG=${AUTOSCALER_LOG:-/var/log/autoscaler-join.log}
SYSTEMD_DIR=${AUTOSCALER_SYSTEMD_DIR:-/etc/systemd/system}
SELF=${AUTOSCALER_SELF:-/usr/local/sbin/autoscaler-join}
PATH=$PATH:/snap/bin   # where the AWS CLI snap installed below lands
log() { echo "$(date -u +%FT%TZ) autoscaler-join: $*" | tee -a "$LOG" >&2; }

retry() {
  # retry ATTEMPTS COMMAND...: exponential backoff capped at 30s
  local attempts=$1 n=1 delay=1
  shift
  until "$@"; do
    if (( n >= attempts )); then return 1; fi
    sleep "$delay"; n=$((n + 1)); delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
  done
}

apt_get() {
  # At first boot the image's own daily apt run may hold the package locks: apt waits for
  # dpkg's lock when told to (DPkg::Lock::Timeout), never for the package lists' one, so
  # callers retry `update`.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"
}

install_docker() {
  if command -v docker >/dev/null 2>&1; then return 0; fi
  log "installing Docker"
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y docker
  elif command -v yum >/dev/null 2>&1; then
    yum install -y docker
  elif command -v apt-get >/dev/null 2>&1; then
    { retry 10 apt_get update -y && retry 3 apt_get install -y docker.io; } ||
      { log "could not install Docker"; return 1; }
  else
    log "no package manager to install Docker with"; return 1
  fi
  systemctl enable --now docker
}

install_aws_cli() {
  if command -v aws >/dev/null 2>&1; then return 0; fi
  log "installing the AWS CLI"
  if command -v dnf >/dev/null 2>&1; then dnf install -y awscli
  elif command -v apt-get >/dev/null 2>&1; then
    # the package lists of a fresh image (Docker preinstalled: none fetched above) are empty;
    # releases without the awscli package have the snap; snapd refuses installs until it
    # has seeded the image's snaps ("too early for operation"), which a first boot may not
    { retry 10 apt_get update -y && apt_get install -y awscli; } ||
      { command -v snap >/dev/null 2>&1 && snap wait system seed.loaded &&
          snap install aws-cli --classic; }
  else log "no package manager to install the AWS CLI with"; return 1
  fi
}

wait_docker() { retry 30 docker info >/dev/null 2>&1; }

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

# set once a manager has answered and issued the node's certificate
swarm_node_id() { docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true; }

install_at_boot() {
  # Keep a copy that runs at every boot (cloud-init runs user-data only once).
  local self=$SELF
  [ "${AUTOSCALER_INSTALL_AT_BOOT:-1}" = 1 ] && [ -d "$SYSTEMD_DIR" ] || return 0
  [ -f "$0" ] && [ "$0" != "$self" ] || return 0
  install -m 0700 "$0" "$self"
  sed -i 's/^AUTOSCALER_WARM=1$/AUTOSCALER_WARM=0/' "$self"
  # the pool's name is the rules author's text: only plain characters go into the unit (a
  # newline would add a directive, a % is a systemd specifier)
  cat > "$SYSTEMD_DIR/autoscaler-join.service" <<UNIT
[Unit]
Description=Join the Swarm as a worker of autoscaler pool ${AUTOSCALER_POOL//[^A-Za-z0-9._-]/_}
After=docker.service network-online.target
Wants=network-online.target
[Service]
Type=oneshot
ExecStart=$self
[Install]
WantedBy=multi-user.target
UNIT
  { systemctl daemon-reload && systemctl enable autoscaler-join.service; } || true
}

read_join() {
  # The parameter's value: {"token": "...", "managers": ["10.0.0.5:2377", ...]}
  local args=(ssm get-parameter --name "$AUTOSCALER_JOIN_PARAMETER" --with-decryption
              --query Parameter.Value --output text)
  [ -n "$AUTOSCALER_REGION" ] && args+=(--region "$AUTOSCALER_REGION")
  [ -n "$AUTOSCALER_SSM_ENDPOINT" ] && args+=(--endpoint-url "$AUTOSCALER_SSM_ENDPOINT")
  aws "${args[@]}"
}

field() {
  # field NAME < json: one value per line (managers is a list)
  python3 -c '
import json, sys
value = json.load(sys.stdin)[sys.argv[1]]
print("\n".join(value) if isinstance(value, list) else value)' "$1"
}

ecr_login() {
  # Docker has no credentials for a private ECR registry (the instance role may pull, but
  # only through a login): one login per registry of the images, with the role's token.
  # The password goes through a pipe, never an argument or a log.
  local image registry region seen=" "
  for image in $AUTOSCALER_IMAGES; do
    registry=${image%%/*}
    case "$registry" in *.dkr.ecr.*.amazonaws.com|*.dkr.ecr.*.amazonaws.com.cn) ;; *) continue ;; esac
    case "$seen" in *" $registry "*) continue ;; esac
    seen="$seen$registry "
    install_aws_cli || { log "no AWS CLI: cannot log in to $registry"; return 0; }
    region=${registry#*.dkr.ecr.}; region=${region%%.*}   # ACCOUNT.dkr.ecr.REGION.amazonaws.com
    if aws ecr get-login-password --region "$region" |
        docker login --username AWS --password-stdin "$registry" >/dev/null 2>&1; then
      log "logged in to $registry"
    else
      log "could not log in to $registry"
    fi
  done
}

pull_images() {
  local image
  ecr_login
  for image in $AUTOSCALER_IMAGES; do
    log "pulling $image"
    retry 3 docker pull --quiet "$image" >/dev/null || log "could not pull $image (joining anyway)"
  done
}

swarm_active() { [ "$(swarm_state)" = active ]; }

join_via() {
  # join_via TOKEN MANAGER. A join that times out (20 s) goes on in the background, through
  # that manager alone, and meanwhile the engine refuses every other join ("already part of
  # a swarm"): it is given about 30 s more, then, if that manager never answered, cancelled
  # so the next one is tried (one that did answer has registered the node: left to finish).
  docker swarm join --token "$1" "$2" >/dev/null 2>&1 && return 0
  case "$(swarm_state)" in
    active) return 0 ;;
    inactive) return 1 ;;
  esac
  retry 6 swarm_active && return 0
  if [ -n "$(swarm_node_id)" ]; then log "registered via $2, still connecting"; return 1; fi
  log "no answer via $2: cancelling that join"
  docker swarm leave --force >/dev/null 2>&1 || true
  return 1
}

join() {
  local value token manager
  case "$(swarm_state)" in
    pending|error)
      # a membership the engine restored at boot and is reconnecting: never cancelled here
      log "waiting for the Swarm membership of this machine"
      retry 6 swarm_active
      return ;;
  esac
  value=$(retry "$AUTOSCALER_JOIN_ATTEMPTS" read_join) || { log "cannot read the join parameter"; return 1; }
  token=$(field token <<<"$value")
  for manager in $(field managers <<<"$value"); do
    log "joining via $manager"
    if join_via "$token" "$manager"; then
      log "joined pool $AUTOSCALER_POOL"; return 0
    fi
    [ "$(swarm_state)" = inactive ] || return 1   # a join still going on: no other one
  done
  return 1
}

main() {
  install_docker
  wait_docker
  install_at_boot
  pull_images
  if [ "$AUTOSCALER_WARM" = 1 ]; then
    log "warm pool machine: images pulled, powering off"
    sync; poweroff || shutdown -h now
    return 0
  fi
  if [ "$(swarm_state)" = active ]; then log "already in the Swarm"; return 0; fi
  install_aws_cli
  retry 5 join
}

main "$@"
