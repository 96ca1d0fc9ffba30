#!/bin/sh
# Entry point of one Sentinel of the Compose stack's Sentinel variant (compose/sentinel.yml):
#   sh /usr/local/etc/redis/sentinel-start.sh NAME
# NAME is the Sentinel's service name, which it announces to its peers and to clients instead of its
# container's address.
set -eu
name="$1"
template="${SENTINEL_TEMPLATE:-/usr/local/etc/redis/sentinel.conf}"
conf="${SENTINEL_DIR:-/data}/sentinel.conf"
# Sentinel rewrites its configuration file as it learns (replicas, peers, the current primary after a
# failover), so it runs on a writable copy of the read-only mounted one. The copy is made once, in the
# container's /data volume: a restarted Sentinel keeps what it learnt instead of naming the first primary
# again. `docker compose down -v` drops it.
if [ ! -e "$conf" ]; then
  cp "$template" "$conf"
fi
# The image's entry point runs redis-server as the user redis, owner of /data.
exec docker-entrypoint.sh redis-server "$conf" --sentinel announce-ip "$name"
