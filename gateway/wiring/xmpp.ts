import type { Tracing } from "../../lib/tracing/tracing.js";
import type { Config } from "../config.js";
import { PendingExchanges } from "../correlation/pending.js";
import { ReplyBus } from "../correlation/reply-bus.js";
import { CorrelationStore } from "../correlation/store.js";
import { StreamRoutes } from "../correlation/stream-routes.js";
import type { ByteBudget } from "../limits/byte-budget.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { PresenceTracker } from "../presence/tracker.js";
import { XmppComponent } from "../xmpp/component.js";
import { XmppExchanger } from "../xmpp/exchange.js";
import { ReplyRouter } from "../xmpp/reply-router.js";
import { MAX_PARKED_CHUNKS } from "../settings.js";
import type { Stores } from "./stores.js";

/**
 * The XMPP side: the component connection (XEP-0114), the exchanges of this instance, the routing of
 * device replies between instances (README, "Running several instances"), and device presence.
 */
export function buildXmpp(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  stores: Stores,
  deps: {
    budget: ByteBudget;
    onAvailable: (jid: string) => void;
    /** A reply forwarded to the instance that owns its exchange is a span of that exchange's trace. */
    tracing: Tracing | undefined;
  },
) {
  const { redis } = stores;
  const { instanceId } = config;
  // This instance's connection closed (stopped, lost, replaced): the others are told, once it is gone.
  let departure: Promise<void> = Promise.resolve();
  const component = new XmppComponent(config.xmpp, {
    logger,
    onOnlineChange: (online) => {
      metrics.xmppConnected.set(online ? 1 : 0);
      // The replies to this instance's exchanges now reach another instance (or none): their records must be
      // there to be found. Nothing is recorded while offline (no IQ leaves).
      if (!online) store.writeHeld();
    },
    onStanza: (stanza) => {
      router.fromServer(stanza);
      tracker.handle(stanza);
    },
    onClosed: () => {
      departure = bus
        .announceDeparture()
        .catch((err: unknown) =>
          logger.warn(
            { event: "departure-not-announced", err: (err as Error).message },
            "component departure not announced (Redis unreachable)",
          ),
        );
    },
  });
  const store = new CorrelationStore(redis, logger, config.exchange.recordHoldMs);
  // However an exchange ends, the exchanger cleans up after it (its stream, its reply's bytes, its record).
  const pending = new PendingExchanges({ onTimeout: () => metrics.iqTimeouts.inc(), onSettled: (p) => exchanger.ended(p) });
  // A reply's body parked as JSON <chunk> elements takes about 4/3 of its bytes (base64): twice the reply
  // limit, plus room for the elements around small bodies, is what one exchange's early chunks may hold.
  const streamRoutes = new StreamRoutes(redis, {
    parkTtlMs: config.exchange.timeoutMs,
    maxParked: MAX_PARKED_CHUNKS,
    maxParkedBytes: 2 * config.exchange.maxReplyBytes + 65536,
  });
  const exchanger = new XmppExchanger({
    component,
    store,
    streamRoutes,
    pending,
    metrics,
    logger,
    instanceId,
    limits: config.exchange,
    budget: deps.budget,
  });
  const bus = new ReplyBus(redis, instanceId, logger, {
    onForwarded: (stanza) => router.fromBus(stanza),
    // A reply routed to another instance's connection as it closed is gone: what may be sent again, is.
    onDeparture: (departed) => exchanger.resendUnanswered(departed),
  });
  const router = new ReplyRouter({
    bus,
    exchanger,
    pending,
    store,
    streamRoutes,
    metrics,
    instanceId,
    tracing: deps.tracing,
    recordWriteBoundMs: config.redis.commandTimeoutMs,
  });
  const tracker = new PresenceTracker(
    stores.presence,
    logger,
    { registry: stores.registry, jidTemplate: config.devices.jidTemplate },
    deps.onAvailable,
  );
  return {
    component,
    store,
    pending,
    exchanger,
    /**
     * The drain bound: exchanges still waiting end "outcome unknown" (their Idempotency-Keys are kept: the
     * device may act on them yet); nothing is sent any more (GW_SHUTTING_DOWN, keys freed).
     */
    shutDown: () => exchanger.shutDown(),
    async start(): Promise<void> {
      await bus.start();
      await component.start();
    },
    async stop(): Promise<void> {
      await component.stop();
      await departure;
      // Replies that arrived while the component was closing may still be on their way to their owner.
      await router.settle(config.redis.commandTimeoutMs * 2);
      // Records and removals still waiting go now, while Redis is still open (a failure is logged by flush).
      void store.flush();
      await bus.stop();
    },
  };
}

export type Xmpp = ReturnType<typeof buildXmpp>;
