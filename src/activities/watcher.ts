/**
 * The watcher: a long-running, heartbeating activity that follows an account's venues live and tells its guard.
 *
 * Per venue it listens to ccxt's Binance WebSocket streams (trades and tickers of the markets that price its
 * holdings, balances, positions on USDⓈ-M, and while the breaker is Triggered, orders), and falls back to REST
 * polling every `pollIntervalSeconds` whenever a stream fails or its tickers fall silent (Binance pushes
 * `<symbol>@ticker` every second, so silence means a dead feed, not a quiet market). Every `snapshotIntervalSeconds`
 * it reads each venue over REST anyway, which corrects whatever a stream missed.
 *
 * At every change it values the account with the pure core (src/domain/live-valuation.ts) and decides only whether
 * to speak (src/domain/watcher.ts `reasonToSpeak`); the guard, signalled with a `watcherObservation`, values the
 * account again and is the one place where a decision becomes durable.
 *
 * Positions are marked to the last trade of their perpetual between REST reads (the venue's own unrealized P&L,
 * from its mark price, comes with every REST read): the stream of account updates carries P&L only when the
 * position changes, so without this a falling market would go unseen until the next read.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Exchange } from 'ccxt';
import { guardWorkflowId, watcherObservationSignal } from '../api/contract';
import { VenueFailureType } from '../api/failures';
import type { VenueReading } from '../domain/guard';
import { LiveValuation } from '../domain/live-valuation';
import { clip } from '../domain/limits';
import { Decimal, DecimalString, toDecimalString } from '../domain/money';
import { PricingMarket, planPrices, priceAssets } from '../domain/pricing';
import type { PositionReport } from '../domain/report';
import { FeedMode, ObservationReason, Spoken, WatchedVenue, WatcherObservation, WatcherPlan, reasonToSpeak } from '../domain/watcher';
import type { VenueClient } from '../exchanges/ccxt-factory';
import { redactRequestSecrets } from '../exchanges/redact';

/** A watcher hands over to a fresh one after this long, so that no activity attempt lives for days. */
export const WATCHER_RUN_MS = 6 * 3_600_000;
const TICK_MS = 1_000;
/** A tick this much later than due means the process was stalled (see the silence check). */
const STALL_MS = 500;

export interface WatcherDeps {
  venues: ReadonlyMap<string, VenueClient>;
  /** Why a venue may not be acted on for this workflow (src/activities/index.ts `bindingProblem`). */
  bindingProblem: (venue: string, workflowId: string) => string | undefined;
  /** One REST read of a venue (src/activities/index.ts `readVenueNow`). */
  read: (client: VenueClient, referenceCurrency: string) => Promise<VenueReading>;
  /** The markets that can price a venue's holdings (src/activities/index.ts `pricingMarkets`). */
  markets: (client: VenueClient) => PricingMarket[];
  /** Whether the account's audit log holds an unreset trip (absent on a worker without an audit log). */
  latched?: (accountId: string) => Promise<boolean>;
}

/** How often an untripped watcher looks in the audit log for a trip its guard has forgotten (a history reset). */
const LATCH_CHECK_MS = 30_000;

/** How long the first call of a stream may take (a subscription or snapshot that never answers). */
const STREAM_START_TIMEOUT_MS = 15_000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An error as the guard sees it (feed state, events): signatures and keys redacted, clipped. */
const message = (err: unknown) => clip(redactRequestSecrets(err instanceof Error ? `${err.name}: ${err.message}` : String(err)), 300);

/** A decimal string from whatever ccxt hands over (strings with `number: String`, numbers otherwise), or undefined. */
function decimal(value: unknown): DecimalString | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  try {
    const d = new Decimal(value);
    return d.isFinite() ? toDecimalString(d) : undefined;
  } catch {
    return undefined;
  }
}

/** What the watcher holds of one venue. */
class VenueFeed {
  mode: FeedMode = 'polling';
  /** Monotonic ms of the freshest data (a stream event or a good REST read). */
  freshMs: number | null = null;
  /** Monotonic ms of the last ticker or trade event: the price streams' pulse. */
  pulseMs: number | null = null;
  fallbacks = 0;
  lastError: string | null = null;
  balances: Record<string, DecimalString> = {};
  /** Last trade or ticker price per market symbol. */
  last: Record<string, string> = {};
  prices: Record<string, DecimalString> = {};
  positions: PositionReport[] = [];
  read = false;
  ordersOpened = 0;
  lastPollMs = 0;
  /** A REST read under way: one at a time per venue (a slow read must not be overtaken by a newer one). */
  polling = false;
  /** The markets that price the holdings, and the symbols to follow, for the assets held now (cached). */
  pricing: { key: string; markets: PricingMarket[]; symbols: string[] } | null = null;
  readonly seenOrders = new Set<string>();
  /**
   * @param client the account's own client (balances, positions, orders, REST reads)
   * @param market the client public market data is followed through: one per exchange and host on this worker,
   *   shared by every watcher, so that 1,000 accounts holding BTC parse each BTC trade once, not 1,000 times
   */
  constructor(
    readonly client: VenueClient,
    readonly market: Exchange,
  ) {}
}

/**
 * The client whose public streams (trades, tickers) every watcher of this exchange and host follows: the first venue
 * client of that kind this worker has. Public market data carries nothing of any account.
 */
function marketClientFor(client: VenueClient, all: Iterable<VenueClient>): Exchange {
  const key = (c: VenueClient) => `${c.exchange.id} ${c.mode} ${JSON.stringify(c.exchange.urls.api.ws)}`;
  const wanted = key(client);
  for (const candidate of all) if (key(candidate) === wanted) return candidate.exchange;
  return client.exchange;
}

/**
 * Follows the plan's venues until cancelled (the guard replaced this watcher, or its run ended) or for
 * {@link WATCHER_RUN_MS}, then returns so that the guard starts the next one.
 */
export async function watchAccount(deps: WatcherDeps, plan: WatcherPlan): Promise<{ ended: 'handover' | 'guardGone' }> {
  const ctx = Context.current();
  const workflowId = ctx.info.workflowExecution?.workflowId ?? '';
  if (workflowId !== guardWorkflowId(plan.accountId)) {
    throw ApplicationFailure.create({ type: VenueFailureType.NotBound, message: `a watcher of ${plan.accountId} runs only for ${guardWorkflowId(plan.accountId)}`, nonRetryable: true });
  }
  const problems = plan.venues.map((v) => deps.bindingProblem(v, workflowId)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw ApplicationFailure.create({ type: VenueFailureType.NotBound, message: problems.join('; '), nonRetryable: true });

  const started = performance.now();
  const feeds = new Map(plan.venues.map((v) => [v, new VenueFeed(deps.venues.get(v)!, marketClientFor(deps.venues.get(v)!, deps.venues.values()))]));
  const live = new LiveValuation({
    venues: plan.venues,
    initialCapital: plan.initialCapital,
    reference: plan.referenceCurrency,
    limits: { warningPct: plan.warningPct, thresholdPct: plan.thresholdPct, autoClosePositions: false },
    ignoreAssets: plan.ignoreAssets,
  });
  const guard = ctx.client.workflow.getHandle(workflowId);
  let stopped = false;
  let spoken: Spoken | null = null;
  let speaking = false;
  let again = false;
  let guardGone = false;
  /** Nothing is said before the start-up reads are done and the streams started (the feeds' mode is known). */
  let ready = false;
  /** The audit log holds a trip this untripped watcher's guard does not know (said once, then again each check). */
  let latchNews = false;
  let latchCheckedMs = -Infinity;
  const checkLatch = async () => {
    if (!deps.latched || plan.triggered) return;
    latchCheckedMs = performance.now();
    try {
      if (await deps.latched(plan.accountId)) {
        latchNews = true;
        void consider();
      }
    } catch (err) {
      ctx.log.warn(`watcher ${plan.accountId}: reading the audit log failed: ${message(err)}`);
    }
  };

  /** Re-prices a venue's holdings from its last trade prices and marks its positions; feeds the live valuation. */
  const apply = (feed: VenueFeed) => {
    const { markets } = pricingOf(feed);
    const held = Object.keys(feed.balances);
    const priced = priceAssets(held, plan.referenceCurrency, markets, feed.last);
    feed.prices = { ...feed.prices, ...priced.prices };
    for (const [asset, price] of Object.entries(feed.prices)) live.setPrice(asset, price);
    const positions = feed.positions.map((p) => {
      const last = feed.last[p.symbol];
      if (last === undefined || p.entryPrice === undefined) return p;
      const sign = p.side === 'long' ? 1 : -1;
      return { ...p, unrealizedPnl: toDecimalString(new Decimal(last).minus(p.entryPrice).times(p.contracts).times(sign)), markPrice: last };
    });
    feed.positions = positions;
    live.setHoldings(feed.client.id, { balances: feed.balances, positions });
  };

  const observation = (reason: ObservationReason, level: WatcherObservation['level']): WatcherObservation => {
    const now = performance.now();
    const venues: Record<string, WatchedVenue> = {};
    for (const [id, f] of feeds) {
      venues[id] = {
        feed: { mode: f.mode, dataAgeSeconds: f.freshMs === null ? null : Math.max(0, (now - f.freshMs) / 1000), fallbacks: f.fallbacks, lastError: f.lastError },
        ...(f.read ? { reading: { balances: f.balances, prices: pickHeld(f.prices, f.balances), positions: f.positions } } : {}),
        ordersOpened: f.ordersOpened,
      };
    }
    return { generation: plan.generation, reason, level, venues };
  };

  /** Decides whether to speak now, and does (one signal at a time; a change meanwhile is looked at right after). */
  const consider = async (): Promise<void> => {
    if (!ready) return;
    if (speaking) {
      again = true;
      return;
    }
    speaking = true;
    try {
      do {
        again = false;
        const check = live.check();
        const modes = Object.fromEntries([...feeds].map(([id, f]) => [id, f.mode]));
        const ordersOpened = [...feeds.values()].reduce((n, f) => n + f.ordersOpened, 0);
        const level = check.complete ? check.level : null;
        const nowMs = performance.now();
        const reason = latchNews ? 'latched' : reasonToSpeak(spoken, { nowMs, startedMs: started, level, modes, ordersOpened }, plan.snapshotIntervalSeconds);
        if (reason === null || stopped) continue;
        const sent = { ...observation(reason, level), ...(latchNews ? { latched: true } : {}) };
        latchNews = false;
        try {
          await guard.signal(watcherObservationSignal, sent);
          spoken = { atMs: nowMs, level, modes };
          for (const f of feeds.values()) f.ordersOpened = 0;
        } catch (err) {
          // The guard is gone (terminated): nothing left to watch for.
          if (err instanceof Error && err.name === 'WorkflowNotFoundError') {
            guardGone = true;
            stopped = true;
          } else ctx.log.warn(`watcher ${plan.accountId}: signalling the guard failed: ${message(err)}`);
        }
      } while (again && !stopped);
    } finally {
      speaking = false;
    }
  };

  const fallBack = (feed: VenueFeed, error: string) => {
    if (feed.mode === 'streaming') feed.fallbacks += 1;
    feed.mode = 'polling';
    feed.lastError = error;
    void consider();
  };

  /** A REST read: the start, polling while streams are down, and the periodic reconciliation. One at a time. */
  const poll = async (feed: VenueFeed) => {
    if (feed.polling) return;
    feed.polling = true;
    feed.lastPollMs = performance.now();
    try {
      const reading = await deps.read(feed.client, plan.referenceCurrency);
      feed.balances = reading.balances;
      feed.positions = reading.positions;
      // The read's prices are the venue's own (bridges included); trade prices refine them until the next read.
      feed.prices = reading.prices;
      for (const p of reading.positions) if (p.markPrice !== undefined) feed.last[p.symbol] = p.markPrice;
      feed.read = true;
      feed.freshMs = performance.now();
      live.setHoldings(feed.client.id, { balances: feed.balances, positions: feed.positions });
      for (const [asset, price] of Object.entries(feed.prices)) live.setPrice(asset, price);
    } catch (err) {
      feed.lastError = `REST read failed: ${message(err)}`;
    } finally {
      feed.polling = false;
    }
    void consider();
  };

  /**
   * Runs one stream until the watcher stops: each event updates the feed; a failure falls back to polling. `next`
   * waits for one event and applies it, or returns false when the stream has nothing to follow yet.
   */
  const stream = async (feed: VenueFeed, name: string, next: () => Promise<boolean>) => {
    while (!stopped) {
      try {
        if (!(await next())) {
          await sleep(TICK_MS);
          continue;
        }
        if (stopped) return;
        feed.freshMs = performance.now();
        if (feed.mode === 'polling' && feed.read && feed.pulseMs !== null && performance.now() - feed.pulseMs < plan.streamSilenceSeconds * 1000) {
          // Streams are back: read once over REST to catch up on what was missed, then trust them again.
          feed.mode = 'streaming';
          feed.lastError = null;
          await poll(feed);
        }
        void consider();
      } catch (err) {
        if (stopped) return;
        fallBack(feed, `${name} stream: ${message(err)}`);
        await sleep(plan.pollIntervalSeconds * 1000);
      }
    }
  };

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  /**
   * The pricing markets and the symbols to follow, recomputed only when the held assets, the positions or the loaded
   * markets change: a tick must not re-plan over thousands of markets.
   */
  const pricingOf = (feed: VenueFeed): NonNullable<VenueFeed['pricing']> => {
    const marketCount = Object.keys(feed.client.exchange.markets ?? {}).length;
    const key = `${marketCount}|${Object.keys(feed.balances).sort().join(',')}|${feed.positions.map((p) => p.symbol).sort().join(',')}`;
    if (feed.pricing?.key !== key) {
      const markets = deps.markets(feed.client);
      const planned = planPrices(Object.keys(feed.balances), plan.referenceCurrency, markets);
      feed.pricing = { key, markets, symbols: [...new Set([...planned.symbolsToFetch, ...feed.positions.map((p) => p.symbol)])] };
    }
    return feed.pricing;
  };
  const symbolsOf = (feed: VenueFeed): string[] => pricingOf(feed).symbols;

  const startStreams = (feed: VenueFeed) => {
    const ex = feed.client.exchange;
    const market = feed.market;
    // Trades: every price move at once (Binance's <symbol>@trade and USDⓈ-M <symbol>@aggTrade are real-time).
    void stream(feed, 'trades', async () => {
      const symbols = symbolsOf(feed);
      if (symbols.length === 0) return false;
      const trades = (await market.watchTradesForSymbols(symbols)) as { symbol?: string; price?: unknown }[];
      const latest = trades.at(-1);
      const price = decimal(latest?.price);
      if (latest?.symbol && price !== undefined) feed.last[latest.symbol] = price;
      feed.pulseMs = performance.now();
      apply(feed);
      return true;
    });
    // Tickers: pushed every second whatever the market does, so their silence means a dead feed.
    void stream(feed, 'tickers', async () => {
      const symbols = symbolsOf(feed);
      if (symbols.length === 0) return false;
      const tickers = (await market.watchTickers(symbols)) as Record<string, { last?: unknown }>;
      for (const [symbol, t] of Object.entries(tickers)) {
        const price = decimal(t?.last);
        if (price !== undefined) feed.last[symbol] = price;
      }
      feed.pulseMs = performance.now();
      apply(feed);
      return true;
    });
    // Balances: Binance sends absolute amounts of the assets that changed (outboundAccountPosition; ACCOUNT_UPDATE
    // wallet balances on USDⓈ-M), merged over the last REST read.
    void stream(feed, 'balances', async () => {
      const balance = (await ex.watchBalance()) as { total?: Record<string, unknown> };
      for (const [asset, total] of Object.entries(balance.total ?? {})) {
        const amount = decimal(total);
        if (amount === undefined) continue;
        if (new Decimal(amount).isZero()) delete feed.balances[asset];
        else feed.balances[asset] = amount;
      }
      apply(feed);
      return true;
    });
    if (feed.client.kind === 'perp') {
      let first = true;
      void stream(feed, 'positions', async () => {
        // ccxt's first watchPositions() answers from a REST snapshot and, when that fails, never settles: bounded.
        const call = ex.watchPositions();
        const positions = (first ? await withTimeout(call, STREAM_START_TIMEOUT_MS, 'the positions snapshot') : await call) as { symbol?: string; side?: string; contracts?: unknown; entryPrice?: unknown }[];
        const bySymbol = new Map(feed.positions.map((p) => [`${p.symbol} ${p.side}`, p]));
        for (const p of positions) {
          const contracts = decimal(p.contracts);
          if (!p.symbol || contracts === undefined || (p.side !== 'long' && p.side !== 'short')) continue;
          const key = `${p.symbol} ${p.side}`;
          if (new Decimal(contracts).isZero()) bySymbol.delete(key);
          else bySymbol.set(key, { ...(bySymbol.get(key) ?? { unrealizedPnl: '0' }), symbol: p.symbol, side: p.side, contracts, ...(decimal(p.entryPrice) ? { entryPrice: decimal(p.entryPrice)! } : {}) });
        }
        first = false;
        feed.positions = [...bySymbol.values()];
        apply(feed);
        return true;
      });
    }
  };

  /** While Triggered, an order that opens is news: the guard cancels it now rather than at the next sweep. */
  const watchOrders = (feed: VenueFeed) => {
    void stream(feed, 'orders', async () => {
      const orders = (await feed.client.exchange.watchOrders()) as { id?: string; status?: string }[];
      for (const o of orders) {
        if (!o.id || o.status !== 'open' || feed.seenOrders.has(o.id)) continue;
        feed.seenOrders.add(o.id);
        feed.ordersOpened += 1;
      }
      return true;
    });
  };

  // Start: the order streams first on a Triggered account (subscribed while the start-up reads run, so that they are
  // up when this watcher first speaks and the guard sweeps once), one REST read per venue (the streams' baseline),
  // then the other streams.
  if (plan.triggered) for (const feed of feeds.values()) watchOrders(feed);
  await Promise.all([...feeds.values()].map((f) => poll(f)));
  for (const feed of feeds.values()) {
    feed.mode = 'streaming';
    startStreams(feed);
  }
  ready = true;
  void checkLatch();
  void consider();

  const cancelled = ctx.cancelled.catch((err: unknown) => err);
  const deadline = started + WATCHER_RUN_MS;
  /** Until when silence is not judged: this process itself was stalled, so the streams' events were late here too. */
  let stalledUntil = 0;
  try {
    while (!stopped && performance.now() < deadline) {
      const tickStarted = performance.now();
      const tick = await Promise.race([sleep(TICK_MS).then(() => null), cancelled]);
      if (tick !== null) throw tick instanceof CancelledFailure ? tick : new CancelledFailure(String(tick));
      ctx.heartbeat({ generation: plan.generation });
      const now = performance.now();
      // A tick more than half a second late means an overloaded event loop, not dead streams: polling every venue
      // of the worker at once would load it further (seen at 1,000 guards on one worker).
      if (now - tickStarted - TICK_MS > STALL_MS) stalledUntil = now + plan.streamSilenceSeconds * 1000;
      for (const feed of feeds.values()) {
        const hasPrices = symbolsOf(feed).length > 0;
        const silentFor = now - (feed.pulseMs ?? feed.freshMs ?? now);
        if (feed.mode === 'streaming' && hasPrices && now >= stalledUntil && silentFor > plan.streamSilenceSeconds * 1000) {
          fallBack(feed, `price stream silent for more than ${plan.streamSilenceSeconds} s`);
        }
        const every = feed.mode === 'polling' ? plan.pollIntervalSeconds : plan.snapshotIntervalSeconds;
        if (now - feed.lastPollMs >= every * 1000) void poll(feed);
      }
      if (now - latchCheckedMs >= LATCH_CHECK_MS) void checkLatch();
      void consider();
    }
  } finally {
    stopped = true;
  }
  return { ended: guardGone ? 'guardGone' : 'handover' };
}

function pickHeld(prices: Record<string, DecimalString>, balances: Record<string, DecimalString>): Record<string, DecimalString> {
  return Object.fromEntries(Object.entries(prices).filter(([asset]) => asset in balances));
}
