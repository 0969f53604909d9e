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
  confirmShutdown,
  createGuardState,
  evaluate,
  operate,
  receiveReport,
  receiveVenueHoldings,
  recordReadFailure,
  recordShutdownProgress,
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

const { cancelAllOpenOrders } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '2 minutes',
  // A worker killed mid-pass is noticed within the heartbeat timeout and the pass resumes on another worker.
  heartbeatTimeout: '10 seconds',
  // Unlimited attempts: network trouble never ends a shutdown. Auth and rejected requests are non-retryable
  // failures raised by the activity and come back to the workflow at once.
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/** Pause between cancel passes while a venue still shows open orders (a bot placing orders after the trigger). */
const PASS_INTERVAL = '1 second';
/** Pause before retrying a venue whose credentials or requests were refused; an operator must fix it meanwhile. */
const FAILED_VENUE_RETRY = '30 seconds';

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
export function viewOf(state: GuardState, shutdownRunning: boolean): GuardStateView {
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
    shutdownInProgress: shutdownRunning || state.pendingShutdown !== undefined,
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
  let state: GuardState = input.state ?? createGuardState(parsed.value);

  /** Venues the guard must read itself before the next evaluation. */
  const toRead = new Set<string>(input.state ? [] : state.config.venues);
  let readRounds = 0;
  let shutdownRunning = false;
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
  setHandler(stateQuery, () => viewOf(state, shutdownRunning));
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
      return { ...viewOf(state, shutdownRunning), outcome };
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
      return viewOf(state, shutdownRunning);
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

  /** Cancels and verifies one venue until it shows zero open orders; retries a refused venue until it works. */
  async function flattenVenue(venue: string): Promise<void> {
    let cancelled = state.shutdown[venue]?.cancelled ?? 0;
    let attempts = state.shutdown[venue]?.attempts ?? 0;
    while (state.breaker.name === 'Triggered') {
      attempts += 1;
      state = recordShutdownProgress(state, venue, { status: 'cancelling', cancelled, openOrders: state.shutdown[venue]?.openOrders ?? null, attempts, updatedAt: now() });
      try {
        const pass = await cancelAllOpenOrders(venue);
        cancelled += pass.cancelled;
        const flat = pass.openAfter === 0;
        state = recordShutdownProgress(state, venue, { status: flat ? 'flat' : 'cancelling', cancelled, openOrders: pass.openAfter, attempts, updatedAt: now() });
        if (flat) return;
        await sleep(PASS_INTERVAL);
      } catch (err) {
        const type = failureType(err);
        const error = `${type ?? 'Error'}: ${failureMessage(err)}`;
        state = recordShutdownProgress(state, venue, { status: 'failed', cancelled, openOrders: state.shutdown[venue]?.openOrders ?? null, attempts, lastError: error, updatedAt: now() });
        log.error('venue shutdown failed; retrying later', { venue, error, alert: type === VenueFailureType.AuthFailed });
        await sleep(FAILED_VENUE_RETRY);
      }
    }
  }

  async function runShutdown(): Promise<void> {
    shutdownRunning = true;
    try {
      await Promise.all(state.config.venues.map((venue) => flattenVenue(venue)));
      if (state.breaker.name === 'Triggered' && state.config.venues.every((v) => state.shutdown[v]?.status === 'flat')) {
        apply({ state: confirmShutdown(state, now()), commands: [] });
      }
    } finally {
      shutdownRunning = false;
    }
  }

  publish();
  const interval = `${state.config.valuationIntervalSeconds} seconds` as const;
  for (;;) {
    if (state.pendingShutdown && !shutdownRunning && state.breaker.name === 'Triggered') {
      // Not awaited: reports, queries and valuations go on while venues are being flattened.
      void runShutdown();
    }
    const woken = await condition(
      () =>
        toRead.size > 0 ||
        (state.pendingShutdown !== undefined && !shutdownRunning && state.breaker.name === 'Triggered') ||
        (workflowInfo().continueAsNewSuggested && !shutdownRunning),
      interval,
    );
    if (!woken) for (const venue of state.config.venues) toRead.add(venue);
    if (toRead.size > 0) await readVenues();
    if (workflowInfo().continueAsNewSuggested && !shutdownRunning) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof accountGuard>({ config: state.config, state });
    }
  }
}
