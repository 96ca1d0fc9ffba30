#!/usr/bin/env bash
# Installs what is missing on a fresh Debian machine, then the npm packages when node_modules is absent
# or older than package-lock.json. The servers always run as throwaway children of the tests, the demo and
# the bench (local-stack/*.ts), never as the system services these packages install.
#
#   bash local-stack/ensure-system-deps.sh [PKG ...]         everything (CI's .ci/run, `npm test`'s pretest):
#       Prosody, Redis, ejabberd, HAProxy, and the checkers of the deployment kit (promtool, a Compose file
#       validator, kubectl for kustomize); each extra PKG is a Debian package to require as well
#   bash local-stack/ensure-system-deps.sh --demo [PKG ...]  only what `npm run demo` runs: Prosody and Redis
#
# Every package it installs is announced on stdout by a line starting with "Installing " (the demo reports
# the time spent on them).
set -euo pipefail
cd "$(dirname "$0")/.."

full=true
if [ "${1:-}" = "--demo" ]; then
  full=false
  shift
fi

missing=()
bare=()
command -v prosody >/dev/null 2>&1 || missing+=(prosody)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if $full; then
  # The local Redis Cluster is created with redis-cli --cluster (redis-tools, a dependency of redis-server).
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  # ejabberdctl and haproxy live in /usr/sbin, which a normal user's PATH may lack: look there too.
  command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || missing+=(ejabberd)
  # The local ejabberd cluster's nodes find each other through a private epmd (erlang-base, ejabberd's dependency).
  command -v epmd >/dev/null 2>&1 || missing+=(erlang-base)
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # `kubectl kustomize` renders deploy/k8s offline; any kubectl will do (Debian's is 1.20).
  command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
  # Validates deploy/docker-compose.yml without a Docker engine. Installed without its recommended
  # packages: those are the Docker engine itself, which the check does not need.
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || bare+=(docker-compose)
fi
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ $((${#missing[@]} + ${#bare[@]})) -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]} ${bare[*]}. Install them (as root: apt-get install -y ${missing[*]}; apt-get install -y --no-install-recommends ${bare[*]})." >&2
    exit 1
  fi
  echo "Installing $(echo "${missing[*]} ${bare[*]}" | xargs) ..."
  apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ${#bare[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
  fi
  # Without a policy-rc.d that forbids it (Docker images have one), installing starts each package's
  # system service: a system ejabberd busy-waits a core and takes 5222/5269/5280/..., Prosody and
  # Redis take their default ports. Stop and disable only what this run just installed.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for pkg in "${missing[@]}"; do
      case "$pkg" in prosody | redis-server | ejabberd | haproxy | prometheus) ;; *) continue ;; esac
      if systemctl is-active --quiet "$pkg" 2>/dev/null; then
        echo "Stopping the system $pkg service that the install started ..."
        systemctl disable --now "$pkg" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "Installing the npm packages (npm ci) ..."
  npm ci --no-audit --no-fund
fi
