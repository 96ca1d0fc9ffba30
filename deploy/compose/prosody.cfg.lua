-- Prosody of the container stack (deploy/docker-compose.yml), rendered from deploy/prosody/prosody.cfg.lua.
-- Edit the template, not this file, then run: node --import tsx deploy/compose/render.ts
--

-- The tests run as root; a production Prosody runs as its own user: remove this line there.
run_as_root = true
pidfile = "/var/lib/prosody/prosody.pid"
data_path = "/var/lib/prosody/data"
-- Production: point this at real certificates and delete the two *_require_encryption/plain lines below.
certificates = "/var/lib/prosody/certs"
log = { { levels = { min = "info" }, to = "file", filename = "/var/lib/prosody/prosody.log" } }

-- Devices connect out to c2s (5222). The component port carries the gateway: XEP-0114 authenticates it
-- with a shared secret but does not encrypt, so it listens on loopback or a private network only.
interfaces = { "*" }
c2s_ports = { 5222 }
component_ports = { 5347 }
component_interface = "*"
s2s_ports = { }
c2s_direct_tls_ports = { }
admin_socket = "/var/lib/prosody/data/prosody.sock"
-- A fleet reconnecting at once (after a restart of this server) queues its connections in the kernel's
-- accept backlog; at the default of 128 the rest are dropped and retried a second later.
network_settings = { tcp_backlog = 1024 }

-- ping: XEP-0199, answered for devices' keepalives. admin_shell: bulk account creation (prosodyctl shell).
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "admin_shell"; "posix" }
-- No offline storage: an IQ to a device that is not connected must bounce at once (the gateway answers
-- 503 GW_DEVICE_OFFLINE without waiting for its deadline), and requests are not messages to keep.
modules_disabled = { "s2s"; "offline" }
authentication = "internal_plain"
storage = "internal"
-- Loopback only. Production: c2s_require_encryption = true, and remove allow_unencrypted_plain_auth.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

VirtualHost "localhost"

-- One block per component domain. component_conflict_resolve says what happens when a second connection
-- claims the domain: "kick_new" (Prosody's default) refuses it, so a second gateway waits as a hot
-- standby; "kick_old" hands the domain to the newcomer, for rolling replacements (the gateway that was
-- replaced stays off XMPP and finishes its exchanges through the new one).
Component "gateway.localhost"
    component_secret = "compose-component-secret"
    component_conflict_resolve = "kick_new"
