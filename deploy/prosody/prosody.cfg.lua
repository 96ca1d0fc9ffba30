-- Prosody for the gateway: one virtual host for the devices, one component for the gateway.
-- local-stack/prosody.ts (tests, demo, bench) renders this file, filling in the @NAME@ placeholders;
-- for a production server, fill them in by hand and turn on TLS (see the comments).

-- The tests run as root; a production Prosody runs as its own user: remove this line there.
run_as_root = true
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
-- Production: point this at real certificates and delete the two *_require_encryption/plain lines below.
certificates = "@DIR@/certs"
log = { { levels = { min = "info" }, to = "file", filename = "@DIR@/prosody.log" } }

-- Devices connect out to c2s (5222). The component port carries the gateway: XEP-0114 authenticates it
-- with a shared secret but does not encrypt, so it listens on loopback or a private network only.
interfaces = { "@INTERFACE@" }
c2s_ports = { @C2S_PORT@ }
component_ports = { @COMPONENT_PORT@ }
component_interface = "@INTERFACE@"
s2s_ports = { }
c2s_direct_tls_ports = { }
admin_socket = "@DIR@/data/prosody.sock"
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

VirtualHost "@VHOST@"

-- One block per component domain. component_conflict_resolve says what happens when a second connection
-- claims the domain: "kick_new" (Prosody's default) refuses it, so a second gateway waits as a hot
-- standby; "kick_old" hands the domain to the newcomer, for rolling replacements (the gateway that was
-- replaced stays off XMPP and finishes its exchanges through the new one).
@COMPONENTS@
