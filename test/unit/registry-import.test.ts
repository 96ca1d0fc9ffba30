/**
 * The devices file (GATEWAY_DEVICES_FILE): JSON or YAML lists, every bad entry reported with its index and
 * field in one ConfigError, then an upsert of every entry.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../lib/env.js";
import { GatewayError } from "../../gateway/errors.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { importDevices, loadDevicesFile, parseDevicesFile } from "../../gateway/registry/import.js";
import { LegacyAddressConflict } from "../../gateway/registry/redis-registry.js";
import { thrownBy } from "../helpers/thrown.js";

const YAML = `
# two devices
- id: dev-1
  transport: xmpp
  legacyAddress: 10.0.0.1:8080
- id: old-meter
  transport: http
  httpTarget: http://10.0.0.2:80
  timeoutMs: 5000
  maxInFlight: 2
`;

const JSON_TEXT = JSON.stringify([
  { id: "dev-1", transport: "xmpp", legacyAddress: "10.0.0.1:8080" },
  { id: "old-meter", transport: "http", httpTarget: "http://10.0.0.2:80", timeoutMs: 5000, maxInFlight: 2 },
]);

const EXPECTED: DeviceRecord[] = [
  { id: "dev-1", transport: "xmpp", legacyAddress: "10.0.0.1:8080" },
  { id: "old-meter", transport: "http", httpTarget: "http://10.0.0.2:80", timeoutMs: 5000, maxInFlight: 2 },
];

function configError(fn: () => unknown): ConfigError {
  const err = thrownBy(fn);
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  for (const line of err.problems) assert.match(line, /^GATEWAY_DEVICES_FILE\b/, line);
  return err;
}

describe("parseDevicesFile", () => {
  it("reads a YAML list", () => {
    assert.deepEqual(parseDevicesFile(YAML, "devices.yaml"), EXPECTED);
  });

  it("reads a JSON array, as .json and as YAML", () => {
    assert.deepEqual(parseDevicesFile(JSON_TEXT, "devices.json"), EXPECTED);
    assert.deepEqual(parseDevicesFile(JSON_TEXT, "devices.yml"), EXPECTED);
  });

  it("reads an empty list", () => {
    assert.deepEqual(parseDevicesFile("[]", "d.json"), []);
  });

  it("reports every bad entry with its index and field, in one error", () => {
    const text = JSON.stringify([
      { id: "ok-1", transport: "xmpp" },
      { id: "bad id", transport: "xmpp" },
      { id: "d2", transport: "http" },
      "not an object",
      { id: "d4", transport: "xmpp", timeoutMs: 0, colour: "red" },
      { id: "ok-1", transport: "xmpp" },
    ]);
    const err = configError(() => parseDevicesFile(text, "d.json"));
    const lines = err.problems;
    assert.equal(lines.length, 6, lines.join("\n"));
    assert.match(lines[0] ?? "", /entry 1 .*field id:/);
    assert.match(lines[1] ?? "", /entry 2 \(id "d2"\): field httpTarget:/);
    assert.match(lines[2] ?? "", /entry 3: must be an object/);
    assert.ok(lines.some((l) => /entry 4 \(id "d4"\): field timeoutMs:/.test(l)));
    assert.ok(lines.some((l) => /entry 4 \(id "d4"\): field colour:/.test(l)));
    assert.match(lines[5] ?? "", /entry 5 \(id "ok-1"\): field id: .*also entry 0/);
  });

  it("refuses two entries with one legacy address (in any spelling)", () => {
    const err = configError(() =>
      parseDevicesFile(
        JSON.stringify([
          { id: "a", transport: "xmpp", legacyAddress: "Host.LAN:80" },
          { id: "b", transport: "xmpp", legacyAddress: "host.lan:080" },
        ]),
        "d.json",
      ),
    );
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0] ?? "", /entry 1 \(id "b"\): field legacyAddress: host\.lan:80 is also entry 0/);
  });

  it("refuses a YAML number where an id string is needed, naming the entry", () => {
    const err = configError(() => parseDevicesFile("- id: 123\n  transport: xmpp\n", "d.yaml"));
    assert.match(err.problems[0] ?? "", /entry 0: field id:/);
  });

  it("refuses text that does not parse, or is not a list", () => {
    assert.match(configError(() => parseDevicesFile("[{", "d.json")).message, /not valid JSON/);
    assert.match(configError(() => parseDevicesFile("a: [", "d.yaml")).message, /not valid YAML/);
    for (const text of ["{}", "null", '"x"', ""]) {
      assert.match(configError(() => parseDevicesFile(text, "d.yaml")).message, /must hold a list/, JSON.stringify(text));
    }
    assert.match(configError(() => parseDevicesFile("{}", "d.json")).message, /must hold a list/);
  });
});

describe("loadDevicesFile", () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  async function file(name: string, text: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "gw-devices-"));
    dirs.push(dir);
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it("reads a JSON file and a YAML file from disk", async () => {
    assert.deepEqual(await loadDevicesFile(await file("devices.json", JSON_TEXT)), EXPECTED);
    assert.deepEqual(await loadDevicesFile(await file("devices.yaml", YAML)), EXPECTED);
  });

  it("reports a file that cannot be read as a ConfigError naming the variable", async () => {
    await assert.rejects(loadDevicesFile("/nonexistent/devices.yaml"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^GATEWAY_DEVICES_FILE="\/nonexistent\/devices.yaml" cannot be read/);
      return true;
    });
  });
});

describe("importDevices", () => {
  it("upserts every entry and counts created and replaced ones", async () => {
    const stored = new Map<string, DeviceRecord>([["dev-1", { id: "dev-1", transport: "http", httpTarget: "http://x" }]]);
    const store = {
      upsert: (record: DeviceRecord) => {
        const created = !stored.has(record.id);
        stored.set(record.id, record);
        return Promise.resolve({ created, record });
      },
    };
    assert.deepEqual(await importDevices(store, EXPECTED), { created: 1, replaced: 1 });
    assert.deepEqual([...stored.values()], EXPECTED);
  });

  it("writes the others and reports every legacy-address conflict together", async () => {
    const written: string[] = [];
    const store = {
      upsert: (record: DeviceRecord) => {
        if (record.id.startsWith("clash")) return Promise.reject(new LegacyAddressConflict(record.legacyAddress ?? "", "someone-else"));
        written.push(record.id);
        return Promise.resolve({ created: true, record });
      },
    };
    const records: DeviceRecord[] = [
      { id: "clash-1", transport: "xmpp", legacyAddress: "10.0.0.1:80" },
      { id: "fine", transport: "xmpp" },
      { id: "clash-2", transport: "xmpp", legacyAddress: "10.0.0.2:80" },
    ];
    await assert.rejects(importDevices(store, records), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 2);
      assert.match(err.problems[0] ?? "", /entry 0 \(id "clash-1"\): field legacyAddress: .*someone-else/);
      assert.match(err.problems[1] ?? "", /entry 2 \(id "clash-2"\)/);
      return true;
    });
    assert.deepEqual(written, ["fine"]);
  });

  it("stops at a store failure (Redis down) instead of reporting it as an entry problem", async () => {
    const store = { upsert: async () => Promise.reject(new GatewayError("GW_STORE_UNAVAILABLE")) };
    await assert.rejects(
      importDevices(store, EXPECTED),
      (err: unknown) => err instanceof GatewayError && err.code === "GW_STORE_UNAVAILABLE",
    );
  });
});
