import type { RedisStore } from "../redis/client.js";
import { side } from "./judge.js";
import { WAVE_TARGET, type WaveDevice, type WaveRollback, type WaveState, type WaveTotals, type WaveView } from "./wave.js";

/** A wave's settings as created; the rest of its record (state, counts, rollback) is written later. */
export interface NewWave {
  id: string;
  createdAtMs: number;
  windowMs: number;
  maxErrorRateIncrease: number;
  minRequests: number;
}

/** What a flush answers: the wave's state and its counts after this instance's were added. */
export interface WaveProgress {
  state: WaveState;
  /** A rollback is under way (claimed and not yet expired): the wave is not judged meanwhile. */
  claimed: boolean;
  totals: WaveTotals;
}

export type ClaimOutcome = "ok" | "missing" | "claimed" | WaveState;

/** Lists answer the newest waves only: a bound on one request, whatever the history. */
export const WAVE_LIST_MAX = 1000;

/**
 * Adds this instance's counts (ARGV[1..4]: wave requests, wave errors, baseline requests, baseline errors)
 * while the wave is watched, and answers its state, claim and counts. KEYS: the wave. Answers nothing for a
 * wave that does not exist. Counts that arrive once the wave ended are dropped: what it shows is frozen.
 */
const FLUSH_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {} end
if state == 'watching' then
  local fields = {'wr', 'we', 'br', 'be'}
  for i = 1, 4 do
    local n = tonumber(ARGV[i])
    if n ~= 0 then redis.call('HINCRBY', KEYS[1], fields[i], n) end
  end
end
return redis.call('HMGET', KEYS[1], 'state', 'claim', 'claimUntil', 'wr', 'we', 'br', 'be')`;

/**
 * The compare-and-set that lets exactly one instance roll a wave back: the wave must be watching (or, with
 * ARGV[4] = '1', completed: an operator's rollback) and not claimed by a rollback whose lease (ARGV[2], now,
 * in ms) is still running; then it is claimed for ARGV[1] until now + ARGV[3]. KEYS: the wave. Answers 'ok',
 * 'missing', 'claimed', or the state that refused it.
 */
const CLAIM_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= 'watching' and not (ARGV[4] == '1' and state == 'completed') then return state end
local holder = redis.call('HGET', KEYS[1], 'claim')
local leased = tonumber(redis.call('HGET', KEYS[1], 'claimUntil') or '0') or 0
if holder and holder ~= '' and leased > tonumber(ARGV[2]) then return 'claimed' end
redis.call('HSET', KEYS[1], 'claim', ARGV[1], 'claimUntil', tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 'ok'`;

/** Extends the claim ARGV[1] holds to ARGV[2] (ms); 0 when it holds it no longer. KEYS: the wave. */
const RENEW_SCRIPT = `
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'claimUntil', ARGV[2])
return 1`;

/**
 * Ends a rollback claimed by ARGV[1]: the wave becomes rolled-back with its rollback (ARGV[2], JSON) and end
 * (ARGV[3]). KEYS: the wave. Answers the state it had, or '' when the claim was lost (expired and taken).
 */
const FINISH_ROLLBACK_SCRIPT = `
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return '' end
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'state', 'rolled-back', 'rollback', ARGV[2], 'endedAt', ARGV[3], 'claim', '', 'claimUntil', '0')
return state`;

/**
 * Completes a watching wave whose window passed, unless a rollback holds it (lease still running at
 * ARGV[2], ms). KEYS: the wave. Answers 1 when this call completed it.
 */
const COMPLETE_SCRIPT = `
if redis.call('HGET', KEYS[1], 'state') ~= 'watching' then return 0 end
local holder = redis.call('HGET', KEYS[1], 'claim')
local leased = tonumber(redis.call('HGET', KEYS[1], 'claimUntil') or '0') or 0
if holder and holder ~= '' and leased > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'completed', 'endedAt', ARGV[1])
return 1`;

/**
 * Migration waves in Redis, shared by every instance (README, "Redis keys, and Redis Cluster"). A wave is a
 * hash under its own tag (`wave:{w1}`, its devices beside it in `wavedevices:{w1}`): every script touches
 * that one key, so it runs on a Cluster. The index of waves, the set of those watched and the ended counts
 * are single keys written in separate steps, each tolerated half-done: a wave in the watched set that is no
 * longer watching is dropped from it by the next evaluator that reads it; an ended count may miss one wave
 * whose instance died between the two steps.
 */
export class WaveStore {
  private readonly flushScript: (...args: Array<string | number>) => Promise<Array<string | null>>;
  private readonly claimScript: (...args: Array<string | number>) => Promise<string>;
  private readonly renewScript: (...args: Array<string | number>) => Promise<number>;
  private readonly finishScript: (...args: Array<string | number>) => Promise<string>;
  private readonly completeScript: (...args: Array<string | number>) => Promise<number>;

  constructor(private readonly redis: RedisStore) {
    this.flushScript = redis.script("waveFlush", 1, FLUSH_SCRIPT);
    this.claimScript = redis.script("waveClaim", 1, CLAIM_SCRIPT);
    this.renewScript = redis.script("waveRenew", 1, RENEW_SCRIPT);
    this.finishScript = redis.script("waveFinishRollback", 1, FINISH_ROLLBACK_SCRIPT);
    this.completeScript = redis.script("waveComplete", 1, COMPLETE_SCRIPT);
  }

  /** A new wave id: `w1`, `w2`, … */
  async nextId(): Promise<string> {
    return `w${await this.redis.run((c) => c.incr(this.redis.keys.waveSequence()))}`;
  }

  /**
   * Records a wave as watching, with the devices it is about to move; then lists it and has every instance
   * watch it. Written before any device moves: a rollback always knows where each device came from.
   */
  async create(wave: NewWave, devices: readonly WaveDevice[]): Promise<void> {
    const { keys } = this.redis;
    const createdAt = new Date(wave.createdAtMs).toISOString();
    const watchUntilMs = wave.createdAtMs + wave.windowMs;
    await this.setDevices(wave.id, devices);
    await this.redis.run((c) =>
      c.hset(keys.wave(wave.id), {
        id: wave.id,
        state: "watching",
        createdAt,
        watchUntil: new Date(watchUntilMs).toISOString(),
        watchUntilMs: String(watchUntilMs),
        to: WAVE_TARGET,
        windowMs: String(wave.windowMs),
        maxErrorRateIncrease: String(wave.maxErrorRateIncrease),
        minRequests: String(wave.minRequests),
        rollback: "",
        endedAt: "",
        claim: "",
        claimUntil: "0",
        wr: "0",
        we: "0",
        br: "0",
        be: "0",
      }),
    );
    await this.redis.run((c) => c.zadd(keys.waves(), wave.createdAtMs, wave.id));
    await this.redis.run((c) => c.sadd(keys.wavesWatching(), wave.id));
  }

  /** The wave's devices, as moved (each with the transport it had before). */
  async setDevices(id: string, devices: readonly WaveDevice[]): Promise<void> {
    const { keys } = this.redis;
    await this.redis.run((c) => c.set(keys.waveDevices(id), JSON.stringify(devices)));
    await this.redis.run((c) => c.hset(keys.wave(id), "devices", String(devices.length)));
  }

  async devices(id: string): Promise<WaveDevice[]> {
    const json = await this.redis.run((c) => c.get(this.redis.keys.waveDevices(id)));
    return json === null ? [] : (JSON.parse(json) as WaveDevice[]);
  }

  async get(id: string): Promise<WaveView | undefined> {
    const fields = await this.redis.run((c) => c.hgetall(this.redis.keys.wave(id)));
    return fields.state === undefined ? undefined : toView(fields);
  }

  /** The newest waves first (at most WAVE_LIST_MAX), without their device lists. */
  async list(): Promise<WaveView[]> {
    const ids = await this.redis.run((c) => c.zrevrange(this.redis.keys.waves(), 0, WAVE_LIST_MAX - 1));
    const waves = await Promise.all(ids.map((id) => this.get(id)));
    return waves.filter((w): w is WaveView => w !== undefined);
  }

  /** The ids in the watched set (possibly a wave that just ended: its state says). */
  async watchingIds(): Promise<string[]> {
    return this.redis.run((c) => c.smembers(this.redis.keys.wavesWatching()));
  }

  /** Drops an ended wave from the watched set. */
  async unwatch(id: string): Promise<void> {
    await this.redis.run((c) => c.srem(this.redis.keys.wavesWatching(), id));
  }

  /** Adds this instance's counts (while the wave is watched) and answers where the wave stands. */
  async flush(id: string, add: WaveTotals, nowMs: number): Promise<WaveProgress | undefined> {
    const row = await this.flushScript(this.redis.keys.wave(id), add.waveRequests, add.waveErrors, add.baseRequests, add.baseErrors);
    const [state, claim, claimUntil, ...counts] = row;
    if (state === undefined || state === null) return undefined;
    const n = (i: number) => Number(counts[i] ?? 0);
    return {
      state: state as WaveState,
      claimed: claim !== null && claim !== undefined && claim !== "" && Number(claimUntil ?? 0) > nowMs,
      totals: { waveRequests: n(0), waveErrors: n(1), baseRequests: n(2), baseErrors: n(3) },
    };
  }

  claim(id: string, holder: string, nowMs: number, leaseMs: number, evenCompleted: boolean): Promise<ClaimOutcome> {
    return this.claimScript(this.redis.keys.wave(id), holder, nowMs, leaseMs, evenCompleted ? "1" : "0") as Promise<ClaimOutcome>;
  }

  async renew(id: string, holder: string, untilMs: number): Promise<boolean> {
    return (await this.renewScript(this.redis.keys.wave(id), holder, untilMs)) === 1;
  }

  /** Answers the state the wave had before, or undefined when `holder` no longer holds its claim. */
  async finishRollback(id: string, holder: string, rollback: WaveRollback, endedAt: string): Promise<WaveState | undefined> {
    const before = await this.finishScript(this.redis.keys.wave(id), holder, JSON.stringify(rollback), endedAt);
    return before === "" ? undefined : (before as WaveState);
  }

  async complete(id: string, endedAt: string, nowMs: number): Promise<boolean> {
    return (await this.completeScript(this.redis.keys.wave(id), endedAt, nowMs)) === 1;
  }

  /** A wave ended: `from` (watching or completed) to `to`; the ended counts follow. */
  async countEnd(from: WaveState, to: "completed" | "rolled-back"): Promise<void> {
    const key = this.redis.keys.waveCounts();
    await this.redis.run((c) => c.hincrby(key, to, 1));
    if (from === "completed") await this.redis.run((c) => c.hincrby(key, "completed", -1));
  }

  /** How many waves are in each state (watching: the watched set, which may still hold a wave just ended). */
  async counts(): Promise<Record<WaveState, number>> {
    const { keys } = this.redis;
    const [ended, watching] = await Promise.all([
      this.redis.run((c) => c.hgetall(keys.waveCounts())),
      this.redis.run((c) => c.scard(keys.wavesWatching())),
    ]);
    return { watching, completed: Number(ended.completed ?? 0), "rolled-back": Number(ended["rolled-back"] ?? 0) };
  }

  /** The watched waves and the ended counts, for `GET /admin/migration`. */
  async summary(): Promise<{ watching: WaveView[]; completed: number; rolledBack: number }> {
    const [ids, counts] = await Promise.all([this.watchingIds(), this.counts()]);
    const waves = await Promise.all(ids.map((id) => this.get(id)));
    const watching = waves
      .filter((w): w is WaveView => w?.state === "watching")
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    return { watching, completed: counts.completed, rolledBack: counts["rolled-back"] };
  }
}

function toView(f: Record<string, string>): WaveView {
  const num = (name: string) => Number(f[name] ?? 0);
  return {
    id: f.id ?? "",
    state: f.state as WaveState,
    createdAt: f.createdAt ?? "",
    watchUntil: f.watchUntil ?? "",
    to: WAVE_TARGET,
    devices: num("devices"),
    windowMs: num("windowMs"),
    maxErrorRateIncrease: num("maxErrorRateIncrease"),
    minRequests: num("minRequests"),
    observed: { wave: side(num("wr"), num("we")), baseline: side(num("br"), num("be")) },
    rollback: f.rollback ? (JSON.parse(f.rollback) as WaveRollback) : null,
    endedAt: f.endedAt ? f.endedAt : null,
  };
}

/** The settings a wave is judged by, from its view. */
export function limitsOf(w: WaveView): { minRequests: number; maxErrorRateIncrease: number; watchUntilMs: number } {
  return { minRequests: w.minRequests, maxErrorRateIncrease: w.maxErrorRateIncrease, watchUntilMs: Date.parse(w.watchUntil) };
}
