// Throwaway X.509 certificates for TLS tests, made with the openssl command line (Debian's `openssl`, which
// Prosody's package pulls in through ssl-cert): a CA that lives only as long as its directory, and server
// certificates it signs.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface CertificateAuthority {
  /** PEM certificate: what a client is told to trust. */
  certFile: string;
  keyFile: string;
  /** The certificate's PEM text. */
  pem: string;
}

export interface ServerCertificate {
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd, timeout: 20_000 });
  } catch (err) {
    const e = err as Error & { code?: string; stderr?: string };
    if (e.code === "ENOENT")
      throw new Error("openssl not found: install Debian's openssl package (Prosody's ssl-cert depends on it)", { cause: err });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

// A config of our own, so the system's openssl.cnf adds no extension we did not ask for.
function config(commonName: string, extensions: Record<string, string>): string {
  const lines = ["[req]", "distinguished_name = dn", "prompt = no", "[dn]", `CN = ${commonName}`, "[ext]"];
  for (const [k, v] of Object.entries(extensions)) lines.push(`${k} = ${v}`);
  return `${lines.join("\n")}\n`;
}

// P-256 keys: quick to make, and accepted by Node and by Prosody's LuaSec alike.
const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** A self-signed CA, in `dir`, under the file names `${name}.crt` and `${name}.key`. */
export async function makeCertificateAuthority(dir: string, name: string, commonName = `${name} test CA`): Promise<CertificateAuthority> {
  const cnf = path.join(dir, `${name}.cnf`);
  await writeFile(
    cnf,
    config(commonName, {
      basicConstraints: "critical, CA:TRUE",
      keyUsage: "critical, keyCertSign, cRLSign",
      subjectKeyIdentifier: "hash",
    }),
  );
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await openssl(
    ["req", "-x509", "-config", cnf, "-extensions", "ext", ...NEW_KEY, "-keyout", keyFile, "-out", certFile, "-days", "2"],
    dir,
  );
  return { certFile, keyFile, pem: await readFile(certFile, "utf8") };
}

/**
 * A server certificate signed by `ca`, for the DNS names and IP addresses given (RFC 6125: a client checks
 * the subjectAltName, never the CN).
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  dir: string,
  name: string,
  names: { dns: string[]; ip?: string[] },
  /** Also a client certificate (TLS between servers, e.g. a Redis Cluster's bus, uses it both ways). */
  opts: { clientAuth?: boolean } = {},
): Promise<ServerCertificate> {
  const altNames = [...names.dns.map((d) => `DNS:${d}`), ...(names.ip ?? []).map((ip) => `IP:${ip}`)].join(", ");
  const cnf = path.join(dir, `${name}.cnf`);
  await writeFile(
    cnf,
    config(names.dns[0] ?? name, {
      basicConstraints: "critical, CA:FALSE",
      keyUsage: "critical, digitalSignature",
      extendedKeyUsage: opts.clientAuth ? "serverAuth, clientAuth" : "serverAuth",
      subjectAltName: altNames,
      subjectKeyIdentifier: "hash",
      authorityKeyIdentifier: "keyid",
    }),
  );
  const csr = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await openssl(["req", "-new", "-config", cnf, ...NEW_KEY, "-keyout", keyFile, "-out", csr], dir);
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.certFile,
      "-CAkey",
      ca.keyFile,
      "-set_serial",
      `0x${randomBytes(8).toString("hex")}`,
      "-days",
      "2",
      "-extfile",
      cnf,
      "-extensions",
      "ext",
      "-out",
      certFile,
    ],
    dir,
  );
  return { certFile, keyFile };
}
