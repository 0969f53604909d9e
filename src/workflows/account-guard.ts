/**
 * The guard: one long-lived workflow per trading account. A thin shell around the pure guard aggregate
 * (src/domain/guard.ts): handlers turn messages into domain operations, the main loop runs what the domain asks for
 * (venue reads, the emergency shutdown) as activities and timers, and continues as new with the state snapshot.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GuardActivities, VenueReading } from '../activities';
import {
  BreakerAccountAttribute,
  BreakerLossPctAttribute,
  BreakerStateAttribute,
  Alert,
  GuardInput,
  GuardStateView,
  OperatorRequest,
  balanceReportSignal,
  disableUpdate,
  enableUpdate,
  eventsQuery,
  reportBalancesUpdate,
  resetUpdate,
  snapshotQuery,
  stateQuery,
} from '../api/contract';
import { parseAccountConfig } from '../domain/config';
import {
  GuardState,
  Step,
  VenueShutdownProgress,
  confirmShutdown,
  createGuardState,
  evaluate,
  operate,
  receiveReport,
  receiveVenueHoldings,
  recordReadFailure,
  recordShutdownProgress,
  recordSweep,
  rejectReport,
  venuesNeedingValuation,
} from '../domain/guard';
import { Decimal, toDecimalString } from '../domain/money';
import { parseBalanceReport } from '../domain/report';
import { VenueFailureType } from '../api/failures';

const { readVenue } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '30 seconds',
  // A read that keeps failing is reported as an event; the next timer tries again.
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

const { cancelAllOpenOrders, closePositions } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat every second; a worker killed mid-pass is noticed within 3 s and the pass is retried
  // on a live worker, where it redoes what is left (cancel-all and reduce-only closes are idempotent).
  heartbeatTimeout: '3 seconds',
  // Unlimited attempts: network trouble never ends a shutdown. Auth failures and rejected requests are raised as
  // non-retryable failures by the activity and come back to the workflow at once.
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

const { sendAlert } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

/** Pause between passes while a venue still shows open orders or positions (a bot still placing orders). */
const PASS_INTERVAL = '1 second';

const now = () => new Date().toISOString();

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}
function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** The `state` query's view of the guard. */
export function viewOf(state: GuardState, flattening: boolean): GuardStateView {
  const v = state.lastValuation;
  return {
    accountId: state.config.accountId,
    state: state.breaker.name,
    breaker: state.breaker,
    referenceCurrency: state.config.referenceCurrency,
    initialCapital: state.config.initialCapital,
    warningPct: state.config.warningPct,
    thresholdPct: state.config.thresholdPct,
    lossPct: v ? toDecimalString(new Decimal(v.lossPct), 2) : null,
    totalValue: v ? v.totalValue : null,
    pnl: v ? v.pnl : null,
    lastValuationAt: v ? v.at : null,
    perVenueValue: v ? v.perVenue : {},
    lastSeq: Object.fromEntries(Object.entries(state.venues).map(([venue, s]) => [venue, s.lastSeq])),
    shutdown: state.shutdown,
    shutdownInProgress: state.pendingShutdown !== undefined || (flattening && state.breaker.name === 'Triggered'),
    counters: state.counters,
  };
}

function requireOperator(request: OperatorRequest): void {
  for (const field of ['operator', 'reason'] as const) {
    const value = (request as unknown as Record<string, unknown> | null)?.[field];
    if (typeof value !== 'string' || value.trim().length === 0 || value.length > 500) {
      throw ApplicationFailure.nonRetryable(`${field} is required: a non-empty string of at most 500 characters`, 'InvalidOperatorRequest');
    }
  }
}

/**
 * The `accountGuard` workflow. Runs until cancelled or terminated; continues as new when Temporal suggests it.
 * @param input the account configuration (validated here) and, after continue-as-new, the carried state
 */
export async function accountGuard(input: GuardInput): Promise<void> {
  const parsed = parseAccountConfig(input.config);
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.error, 'InvalidAccountConfig');
  // The config is re-validated on every run, so that a run continued from an older version's state gets the
  // defaults of fields added since.
  let state: GuardState = input.state ? { ...input.state, config: parsed.value } : createGuardState(parsed.value);

  /** Venues the guard must read itself before the next evaluation. */
  const toRead = new Set<string>(input.state ? [] : state.config.venues);
  let readRounds = 0;
  /** A shutdown or sweep is under way (continue-as-new waits for it). */
  let flattening = false;
  let alertsInFlight = 0;
  /**
   * A shutdown attempt or sweep is wanted: set by a trigger, and by a durable timer after each attempt. Scheduling
   * is done with timers and flags only, never by comparing Date.now() in a condition, so that replay decides
   * exactly as the original run did. A run that starts Triggered (continue-as-new) sweeps at once.
   */
  let flattenWanted = state.breaker.name === 'Triggered';
  let published = { state: '', lossPct: '' };

  function publish(): void {
    const lossPct = state.lastValuation ? toDecimalString(new Decimal(state.lastValuation.lossPct), 2) : '';
    if (published.state === state.breaker.name && published.lossPct === lossPct) return;
    published = { state: state.breaker.name, lossPct };
    upsertSearchAttributes([
      { key: BreakerStateAttribute, value: state.breaker.name },
      { key: BreakerAccountAttribute, value: state.config.accountId },
      // A search attribute, not money: a double is what Temporal indexes for range queries.
      ...(lossPct ? [{ key: BreakerLossPctAttribute, value: Number(lossPct) }] : []),
    ]);
  }

  function apply(step: Step): void {
    state = step.state;
    publish();
    if (step.commands.some((c) => c.type === 'EmergencyShutdown') && state.breaker.name === 'Triggered') {
      flattenWanted = true;
      alert('CircuitBreakerTriggered', `loss ${toDecimalString(new Decimal(state.breaker.lossPct), 2)} % of capital; cancelling every open order on every venue`);
    }
  }

  /** Values the account; if something is unknown, asks the main loop to read those venues. */
  function evaluateNow(): void {
    const step = evaluate(state, now());
    apply(step);
    for (const venue of venuesNeedingValuation(step.valuation)) toRead.add(venue);
  }

  function acceptReport(raw: unknown): 'accepted' | 'duplicate' | 'stale' | 'rejected' {
    const parsedReport = parseBalanceReport(raw, state.config.venues);
    if (!parsedReport.ok) {
      state = rejectReport(state, parsedReport.error, now());
      log.warn('balance report rejected', { error: parsedReport.error });
      return 'rejected';
    }
    const received = receiveReport(state, parsedReport.value, now());
    state = received.state;
    if (received.outcome === 'accepted') {
      // A fresh bot snapshot makes a pending read of that venue redundant (and a read queued before the report,
      // e.g. the start-up read, would replace the newer report); evaluateNow re-queues it if prices are missing.
      toRead.delete(parsedReport.value.venue);
      evaluateNow();
    }
    return received.outcome;
  }

  function validateReport(raw: unknown): void {
    const parsedReport = parseBalanceReport(raw, state.config.venues);
    if (!parsedReport.ok) throw ApplicationFailure.nonRetryable(parsedReport.error, 'InvalidReport');
  }

  // Handlers first, so that no message delivered with the first workflow task is missed.
  setHandler(stateQuery, () => viewOf(state, flattening));
  setHandler(eventsQuery, () => state.events);
  setHandler(snapshotQuery, () => state);

  // Invalid signals cannot be refused (signals have no validator); they are dropped and recorded instead.
  setHandler(balanceReportSignal, (raw) => {
    acceptReport(raw);
  });

  // An update, not a signal, because a bot that wants to know the outcome (or be told its payload is wrong) needs
  // an answer; the validator rejects bad payloads before they reach history.
  setHandler(
    reportBalancesUpdate,
    async (raw) => {
      const outcome = acceptReport(raw) as 'accepted' | 'duplicate' | 'stale';
      if (outcome === 'accepted' && toRead.size > 0) {
        const round = readRounds;
        await condition(() => readRounds > round);
      }
      return { ...viewOf(state, flattening), outcome };
    },
    { validator: validateReport },
  );

  const operatorUpdate = (type: 'ResetRequested' | 'DisableRequested' | 'EnableRequested') => ({
    validator: (request: OperatorRequest) => {
      requireOperator(request);
      const step = operate(state, { type, at: now(), operator: request.operator, reason: request.reason });
      if (step.rejection) throw ApplicationFailure.nonRetryable(step.rejection, 'NotAllowedInThisState');
    },
    handler: (request: OperatorRequest) => {
      const step = operate(state, { type, at: now(), operator: request.operator.trim(), reason: request.reason.trim() });
      // The state may have changed between validation and handling; a rejection here leaves it untouched.
      if (step.rejection) throw ApplicationFailure.nonRetryable(step.rejection, 'NotAllowedInThisState');
      apply(step);
      if (type !== 'DisableRequested') evaluateNow();
      return viewOf(state, flattening);
    },
  });
  for (const [definition, type] of [
    [resetUpdate, 'ResetRequested'],
    [disableUpdate, 'DisableRequested'],
    [enableUpdate, 'EnableRequested'],
  ] as const) {
    const { validator, handler } = operatorUpdate(type);
    setHandler(definition, handler, { validator });
  }

  async function readVenues(): Promise<void> {
    const venues = [...toRead];
    toRead.clear();
    const seqAtRequest = venues.map((venue) => state.venues[venue]?.lastSeq ?? null);
    const results = await Promise.allSettled(venues.map((venue) => readVenue(venue, state.config.referenceCurrency)));
    results.forEach((result, i) => {
      const venue = venues[i]!;
      if (result.status === 'fulfilled') {
        const reading: VenueReading = result.value;
        state = receiveVenueHoldings(state, venue, { ...reading, source: 'guard' }, seqAtRequest[i] ?? null);
      } else {
        state = recordReadFailure(state, venue, failureMessage(result.reason), now());
      }
    });
    const step = evaluate(state, now());
    apply(step);
    readRounds += 1;
  }

  function alert(kind: Alert['kind'], message: string, venue?: string): void {
    // Not awaited: an alert channel that is down must not delay a shutdown. The activity retries on its own;
    // continue-as-new waits for alerts in flight, which would otherwise be dropped with the run.
    alertsInFlight += 1;
    sendAlert({ kind, accountId: state.config.accountId, message, at: now(), ...(venue ? { venue } : {}) })
      .catch((err) => log.error('alert could not be delivered', { kind, error: failureMessage(err) }))
      .finally(() => (alertsInFlight -= 1));
  }

  function progress(venue: string, update: Partial<VenueShutdownProgress>): void {
    const current: VenueShutdownProgress = state.shutdown[venue] ?? { status: 'pending', cancelled: 0, openOrders: null, attempts: 0, updatedAt: now() };
    state = recordShutdownProgress(state, venue, { ...current, ...update, updatedAt: now() });
  }

  /**
   * Cancels (and, with auto-close, closes positions) on one venue until it confirms zero open orders (and zero
   * positions). Network trouble is retried inside the activity; a refusal (credentials, permissions) ends this
   * attempt with the venue marked failed and an alert, and the main loop tries again after the sweep interval.
   * @returns orders cancelled by this call, or 'failed'
   */
  async function flattenVenue(venue: string, closing: boolean): Promise<number | 'failed'> {
    let cancelledHere = 0;
    while (state.breaker.name === 'Triggered') {
      // A sweep of a venue that is already flat stays "flat" unless it finds something.
      const wasFlat = state.shutdown[venue]?.status === 'flat';
      progress(venue, { status: wasFlat ? 'flat' : 'cancelling', attempts: (state.shutdown[venue]?.attempts ?? 0) + 1 });
      try {
        const pass = await cancelAllOpenOrders(venue);
        // pass.cancelled counts from this activity's start (including its own retries).
        cancelledHere += pass.cancelled;
        const foundOrders = pass.cancelled > 0 || pass.openAfter > 0;
        progress(venue, {
          cancelled: (state.shutdown[venue]?.cancelled ?? 0) + pass.cancelled,
          openOrders: pass.openAfter,
          ...(foundOrders ? { status: 'cancelling' as const } : {}),
        });
        if (pass.openAfter > 0) {
          await sleep(PASS_INTERVAL);
          continue;
        }
        if (closing) {
          if (!wasFlat) progress(venue, { status: 'closing' });
          const close = await closePositions(venue);
          progress(venue, { positionsClosed: (state.shutdown[venue]?.positionsClosed ?? 0) + close.closed, openPositions: close.remaining });
          if (close.remaining > 0) {
            await sleep(PASS_INTERVAL);
            continue;
          }
        }
        progress(venue, { status: 'flat', lastError: undefined });
        return cancelledHere;
      } catch (err) {
        const type = failureType(err) ?? 'Error';
        const error = `${type}: ${failureMessage(err)}`;
        const firstFailure = state.shutdown[venue]?.status !== 'failed';
        progress(venue, { status: 'failed', lastError: error });
        if (firstFailure) alert(type === VenueFailureType.AuthFailed ? 'VenueAuthFailed' : 'VenueRejected', `${venue} refused the emergency shutdown: ${error}`, venue);
        return 'failed';
      }
    }
    return cancelledHere;
  }

  /**
   * Flattens every venue in parallel. As the shutdown after a trigger, confirms it (SystemShutdown, once) when every
   * venue is flat; as a sweep, records what it found. Either way a failed venue is retried at the next sweep.
   */
  async function flattenAll(kind: 'shutdown' | 'sweep'): Promise<void> {
    flattening = true;
    try {
      const closing = state.pendingShutdown?.closePositions ?? state.config.autoClosePositions;
      const results = await Promise.all(state.config.venues.map((venue) => flattenVenue(venue, closing)));
      if (state.breaker.name !== 'Triggered') return;
      if (kind === 'sweep') {
        results.forEach((cancelled, i) => {
          if (typeof cancelled === 'number') state = recordSweep(state, state.config.venues[i]!, cancelled, now());
        });
      }
      if (results.every((r) => r !== 'failed') && state.pendingShutdown) {
        apply({ state: confirmShutdown(state, now()), commands: [] });
        alert('ShutdownComplete', `every venue confirmed zero open orders${closing ? ' and zero positions' : ''}`);
      }
    } finally {
      flattening = false;
      // The next sweep (or retry of a refused venue); a timer that fires after a reset finds nothing to do.
      void sleep(`${state.config.sweepIntervalSeconds} seconds`).then(() => {
        flattenWanted = true;
      });
    }
  }

  publish();
  // The guard values the account itself on a durable timer, whatever bots report.
  void (async () => {
    for (;;) {
      await sleep(`${state.config.valuationIntervalSeconds} seconds`);
      for (const venue of state.config.venues) toRead.add(venue);
    }
  })();
  const flattenDue = () => flattenWanted && !flattening && state.breaker.name === 'Triggered';
  for (;;) {
    if (flattenDue()) {
      flattenWanted = false;
      // Not awaited: reports, queries and valuations go on while venues are being flattened.
      void flattenAll(state.pendingShutdown ? 'shutdown' : 'sweep');
    }
    await condition(() => toRead.size > 0 || flattenDue() || (workflowInfo().continueAsNewSuggested && !flattening));
    if (toRead.size > 0) await readVenues();
    if (workflowInfo().continueAsNewSuggested && !flattening) {
      await condition(() => allHandlersFinished() && alertsInFlight === 0);
      await continueAsNew<typeof accountGuard>({ config: state.config, state });
    }
  }
}
