#!/bin/sh
# Entry point of the container stack's Prosody: creates the device accounts listed in accounts.txt
# ("username password" per line, for the domain in XMPP_VHOST), then runs Prosody in the foreground as the
# container's main process.
set -eu
config=/etc/prosody/prosody.cfg.lua
vhost="${XMPP_VHOST:-localhost}"
mkdir -p /var/lib/prosody/data /var/lib/prosody/certs
while read -r user password; do
  case "$user" in '' | '#'*) continue ;; esac
  # register sets the password of an account that exists already: every start applies the file as it is.
  prosodyctl --config "$config" register "$user" "$vhost" "$password"
done </etc/prosody/accounts.txt
# The shared configuration logs to a file; copy it to the container's output for `docker-compose logs`.
touch /var/lib/prosody/prosody.log
tail -F -n 0 /var/lib/prosody/prosody.log &
exec prosody --config "$config" -F
