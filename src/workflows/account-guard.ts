/**
 * The guard: one long-lived workflow per trading account, and an interpreter only. Every message (a signal, an
 * update, a query's data, an activity's result, a timer) goes through the pure decider `decide()` in
 * src/domain/guard.ts; every command it returns runs here on its own, as an activity or a timer, and reports back
 * as a message. No effect is awaited by another: an alert webhook that hangs delays nothing, and continue-as-new
 * never waits for anything but handlers, because whatever is under way is in the carried state and is started
 * again by the next run.
 *
 * A cancellation request is recorded and ignored (see the README): every effect runs in a non-cancellable scope,
 * so a click on "Request Cancellation" neither stops protection nor fails workflow tasks.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GuardActivities } from '../activities';
import {
  BreakerAccountAttribute,
  BreakerLossPctAttribute,
  BreakerStateAttribute,
  GuardInput,
  GuardStateView,
  ReportAnswer,
  approveUpdate,
  balanceReportSignal,
  disableUpdate,
  enableUpdate,
  eventsQuery,
  haltUpdate,
  reportBalancesUpdate,
  resetUpdate,
  resyncSeqUpdate,
  snapshotQuery,
  stateQuery,
  watcherObservationSignal,
} from '../api/contract';
import { isUndecodable } from '../api/undecodable';
import { parseCarriedState } from '../domain/carried-state';
import { parseGuardInputConfig } from '../domain/config';
import { GuardCommand, GuardFeatures, GuardMessage, GuardReply, GuardState, OperatorAction, createGuardState, decide, passUnderWay } from '../domain/guard';
import { clip } from '../domain/limits';
import { viewOf } from '../domain/view';

const { readVenue } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '30 seconds',
  // Bounded, so that an update waiting for a read always gets its answer; the periodic valuation tries again.
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

const { cancelAllOpenOrders, closePositions } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat every 400 ms; a worker killed mid-pass is noticed within 2 s and the pass is retried
  // on a live worker, where it redoes what is left (cancel-all and reduce-only closes are idempotent). Measured
  // (bench section B): with 3 s and a 500 ms first retry, kill → flat was p99 4.0–4.7 s, because the SDK throttles
  // heartbeats to 80 % of the timeout and the timeout then runs from the last one. A worker stalled for longer
  // than this (a long GC pause) only causes a second, harmless attempt.
  heartbeatTimeout: '2 seconds',
  // Unlimited attempts: network trouble never ends a shutdown. Auth failures and rejected requests are raised as
  // non-retryable failures by the activity and come back to the decider at once.
  retry: { initialInterval: '100 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

const { checkVenueBindings } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

const { watchAccount } = proxyActivities<GuardActivities>({
  // The watcher hands over on its own after a few hours (src/activities/watcher.ts); this only bounds a stuck one.
  startToCloseTimeout: '8 hours',
  // It heartbeats every second: a worker that dies is noticed within 5 s and the watcher restarts on a live worker.
  heartbeatTimeout: '5 seconds',
  // A watcher replaced (the breaker tripped, continue-as-new) is asked to stop; the guard does not wait for it.
  cancellationType: ActivityCancellationType.TRY_CANCEL,
  // A few quick retries (a crashed worker); a watcher that keeps failing comes back to the decider, which alerts
  // and starts it again with a backoff.
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 3 },
});

const { loadTrust } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '10 seconds',
  // Bounded: a failure comes back to the decider, which alerts and tries again later. Operators wait for it.
  retry: { initialInterval: '500 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 3 },
});

const { appendAudit } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '30 seconds',
  // Bounded: entries that cannot be written stay in the guard's state and are sent again (AUDIT_RETRY_SECONDS).
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

const { sendAlert } = proxyActivities<GuardActivities>({
  startToCloseTimeout: '15 seconds',
  // Bounded: an alert that cannot be delivered comes back as AlertFailed; the decider keeps it and retries later.
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

const now = () => new Date().toISOString();

/** How long continue-as-new waits for a quiet moment (no pass under way) once Temporal suggests it. */
const CONTINUE_AS_NEW_GRACE = '30 seconds';

function failureOf(err: unknown): { type: string; message: string } {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? 'Error') : cause instanceof Error ? cause.name : 'Error';
  return { type, message: clip(cause instanceof Error ? cause.message : String(cause), 400) };
}

const refuse = (reply: GuardReply | undefined) => {
  if (reply?.rejection) throw ApplicationFailure.nonRetryable(reply.rejection.message, reply.rejection.type);
};

/** Parses the start input; a client may start a guard with a config only, never with a state of its own. */
function startState(input: unknown): { state: GuardState; continued: boolean; signedBy: unknown } {
  if (isUndecodable(input)) throw ApplicationFailure.nonRetryable(`input: could not be decoded (${input.error})`, 'InvalidGuardInput');
  const parsed = parseGuardInputConfig(input);
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.error, 'InvalidGuardInput');
  const { config, state: carried, signedBy } = parsed.value;
  const continued = workflowInfo().continuedFromExecutionRunId !== undefined;
  if (carried === undefined) return { state: createGuardState(config), continued: false, signedBy };
  if (!continued) {
    throw ApplicationFailure.nonRetryable(
      'input.state: only continue-as-new may carry a state; start a guard with {"config": {...}} alone',
      'InvalidGuardInput',
    );
  }
  const state = parseCarriedState(carried, config);
  if (!state.ok) throw ApplicationFailure.nonRetryable(state.error, 'InvalidGuardInput');
  return { state: state.value, continued: true, signedBy: undefined };
}

/**
 * The `accountGuard` workflow. Runs until terminated; continues as new when Temporal suggests it.
 * @param input the account configuration and, only after continue-as-new, the carried state
 */
export async function accountGuard(input: GuardInput): Promise<void> {
  const start = startState(input);
  let state = start.state;
  /** The scope of the current watcher: cancelled when a new generation replaces it, and before continue-as-new. */
  let watcherScope: CancellationScope | undefined;

  /**
   * The trust anchor, signed actions and the audit log: asked first, before any handler exists, because until `Started`
   * the decider cannot know whether a request needs a signature, and handlers wait for it (patched: older histories
   * replay as they ran, with handlers that did not wait).
   */
  const trusted = patched('trust-anchor');
  /** What this run does that older runs did not (patched, so that their histories replay). Asked once per run. */
  const features = (): GuardFeatures => ({
    watcher: patched('streamed-watcher'),
    coarseSearchAttributes: patched('coarse-search-attributes'),
    ...(trusted ? { trust: true } : {}),
  });
  /** Resolves once `Started` has been decided: messages that need the trust rules wait for it (trusted runs only). */
  const startedYet = () => condition(() => state.features !== undefined);
  /**
   * Resolves once the run knows whether reports must be signed: Started decided, and the trust view loaded (or its
   * first load failed, and reports are then refused until it loads). A report sent in a guard's first moments waits
   * here instead of being refused.
   */
  const trustSettled = () =>
    condition(() => state.features !== undefined && (state.features.trust !== true || state.trust?.view !== undefined || (state.trust?.failures ?? 0) > 0));
  /** Reads the trust anchor again and lets the decider take it in (before an operator's request is checked). */
  async function refreshTrust(): Promise<void> {
    await startedYet();
    if (!state.trust) return;
    await settle(
      loadTrust(state.config.accountId),
      (result) => ({ type: 'TrustLoaded', at: now(), result }),
      (f) => ({ type: 'TrustLoadFailed', at: now(), error: `${f.type}: ${f.message}` }),
    );
  }

  function dispatch(message: GuardMessage): GuardReply | undefined {
    const decision = decide(state, message);
    state = decision.state;
    for (const command of decision.commands) run(command);
    return decision.reply;
  }

  /**
   * Awaits one effect and dispatches what became of it. The message is built inside the try and dispatched after
   * it, so that a fault in the decider is never mistaken for the effect failing.
   */
  async function settle<T>(effect: Promise<T>, done: (result: T) => GuardMessage, failed: (failure: { type: string; message: string }) => GuardMessage) {
    let message: GuardMessage;
    try {
      const result = await effect;
      // An answer this deployment cannot decode (a worker without the history key, i.e. not one of ours, answering our
      // activities): a failure, never a result: "0 open orders" from a rogue worker must not make the guard believe it.
      message = isUndecodable(result) ? failed({ type: 'UndecodableResult', message: `the activity's result could not be decoded (${result.error}); was it answered by a worker of this deployment?` }) : done(result);
    } catch (err) {
      message = failed(failureOf(err));
    }
    dispatch(message);
  }

  /** Runs one command on its own; its outcome comes back as a message. Never awaited by anything else. */
  function run(command: GuardCommand): void {
    void CancellationScope.nonCancellable(async () => {
      switch (command.type) {
        case 'ReadVenue': {
          const { venue, ticket } = command;
          return settle(
            readVenue(venue, command.referenceCurrency),
            (reading) => ({ type: 'VenueRead', at: now(), venue, ticket, reading }),
            (f) => ({ type: 'VenueReadFailed', at: now(), venue, ticket, error: `${f.type}: ${f.message}` }),
          );
        }
        case 'CancelOrders': {
          const { venue, round } = command;
          return settle(
            cancelAllOpenOrders(venue),
            (pass) => ({ type: 'CancelPassDone', at: now(), venue, round, cancelled: pass.cancelled, openAfter: pass.openAfter }),
            (f) => ({ type: 'PassRefused', at: now(), venue, round, failureType: f.type, error: f.message }),
          );
        }
        case 'ClosePositions': {
          const { venue, round } = command;
          return settle(
            closePositions(venue),
            (pass) => ({ type: 'ClosePassDone', at: now(), venue, round, closed: pass.closed, remaining: pass.remaining }),
            (f) => ({ type: 'PassRefused', at: now(), venue, round, failureType: f.type, error: f.message }),
          );
        }
        case 'SendAlert': {
          const { id } = command.alert;
          return settle(
            sendAlert(command.alert),
            () => ({ type: 'AlertDelivered', at: now(), id }),
            (f) => ({ type: 'AlertFailed', at: now(), id, error: f.message }),
          );
        }
        case 'StartWatcher': {
          watcherScope?.cancel();
          // A child of this non-cancellable scope: only the guard stops it, never a cancellation of the workflow.
          const scope = new CancellationScope();
          watcherScope = scope;
          const { generation } = command.plan;
          return settle(
            scope.run(() => watchAccount(command.plan)),
            () => ({ type: 'WatcherEnded', at: now(), generation, error: null }),
            (f) => ({ type: 'WatcherEnded', at: now(), generation, error: `${f.type}: ${f.message}` }),
          );
        }
        case 'LoadTrust':
          return settle(
            loadTrust(command.accountId),
            (result) => ({ type: 'TrustLoaded', at: now(), result }),
            (f) => ({ type: 'TrustLoadFailed', at: now(), error: `${f.type}: ${f.message}` }),
          );
        case 'WriteAudit': {
          const ids = command.entries.map((e) => e.eventId);
          return settle(
            appendAudit(command.accountId, command.entries),
            () => ({ type: 'AuditWritten', at: now(), ids }),
            (f) => ({ type: 'AuditWriteFailed', at: now(), error: `${f.type}: ${f.message}` }),
          );
        }
        case 'StartTimer':
          await sleep(Math.max(1, Math.round(command.seconds * 1000)));
          dispatch({ type: 'TimerFired', at: now(), timer: command.timer });
          return;
        case 'PublishSearchAttributes':
          upsertSearchAttributes([
            { key: BreakerStateAttribute, value: command.state },
            { key: BreakerAccountAttribute, value: command.accountId },
            // A search attribute, not money: a double is what Temporal indexes for range queries.
            ...(command.lossPct !== null ? [{ key: BreakerLossPctAttribute, value: Number(command.lossPct) }] : []),
          ]);
          return;
      }
    });
  }

  // A continued run first restarts what the previous run left under way, and only then registers its handlers: an
  // update buffered since the continue-as-new runs as soon as its handler exists, and if it tripped the breaker
  // first, the restart would issue that new trip's passes and alert a second time.
  const startedFirst = start.continued && patched('started-before-handlers');
  const runId = workflowInfo().runId;
  if (startedFirst) dispatch({ type: 'Started', at: now(), continued: true, features: features(), ...(trusted ? { runId } : {}) });

  // Handlers next, so that no message delivered with the first workflow task is missed.
  setHandler(stateQuery, () => viewOf(state));
  setHandler(eventsQuery, () => state.events);
  setHandler(snapshotQuery, () => state);

  // Signals cannot be refused (they have no validator): an invalid or undecodable one is dropped and recorded.
  setHandler(balanceReportSignal, (raw: unknown) => {
    const receive = () => dispatch(isUndecodable(raw) ? { type: 'ReportUndecodable', at: now(), error: raw.error } : { type: 'ReportReceived', at: now(), report: raw });
    // A report that arrives before Started waits for it: until then nobody knows whether it must be signed.
    if (trusted) return trustSettled().then(() => void receive());
    receive();
  });

  // The watcher's observations: validated by the decider like any input (any client can send this signal).
  setHandler(watcherObservationSignal, (raw: unknown) => {
    dispatch({ type: 'WatcherObserved', at: now(), observation: raw });
  });

  // An update, not a signal, for a bot that needs the outcome (or to be told its payload is wrong); the validator
  // refuses bad payloads before they reach history, by asking the decider on a copy of the state.
  setHandler(
    reportBalancesUpdate,
    (raw: unknown): Promise<ReportAnswer> =>
      CancellationScope.nonCancellable(async () => {
        if (trusted) await trustSettled();
        const reply = dispatch({ type: 'ReportReceived', at: now(), report: raw });
        refuse(reply);
        const waitFor = Object.entries(reply?.waitFor ?? {});
        // Reads this report asked for (prices it lacks): they started after it, and always finish.
        if (waitFor.length > 0) await condition(() => waitFor.every(([venue, ticket]) => (state.venues[venue]?.reads.done ?? ticket) >= ticket));
        return { ...viewOf(state), outcome: reply?.outcome ?? 'accepted' };
      }),
    {
      validator: (raw: unknown) => {
        if (isUndecodable(raw)) throw ApplicationFailure.nonRetryable(`report: the payload could not be decoded (${raw.error})`, 'InvalidReport');
        refuse(decide(state, { type: 'ReportReceived', at: now(), report: raw, validating: true }).reply);
      },
    },
  );

  const operatorUpdates = [
    [resetUpdate, 'reset'],
    [disableUpdate, 'disable'],
    [enableUpdate, 'enable'],
    [haltUpdate, 'halt'],
    [resyncSeqUpdate, 'resyncSeq'],
    [approveUpdate, 'approve'],
  ] as const;
  for (const [definition, action] of operatorUpdates) {
    const message = (request: unknown, validating = false): GuardMessage => ({
      type: 'OperatorRequested',
      at: now(),
      action: action as OperatorAction,
      request,
      ...(validating ? { validating } : {}),
    });
    const carryOut = (request: unknown): GuardStateView => {
      refuse(dispatch(message(request)));
      return viewOf(state);
    };
    setHandler(
      definition,
      // A trusted run checks the request against the anchor as it is now: read again first, so that a key just
      // revoked no longer works. (Older runs answered at once, and replay so.)
      trusted ? (request: unknown) => CancellationScope.nonCancellable(() => refreshTrust().then(() => carryOut(request))) : carryOut,
      {
        validator: (request: unknown) => {
          if (isUndecodable(request)) throw ApplicationFailure.nonRetryable(`${action}: the payload could not be decoded (${request.error})`, 'InvalidOperatorRequest');
          refuse(decide(state, message(request, true)).reply);
        },
      },
    );
  }

  // Cancellation is a request to stop protecting the account; the decider records it and says no.
  CancellationScope.current().cancelRequested.catch(() => dispatch({ type: 'CancellationRequested', at: now() }));

  // A guard acts only on venues the workers bind to its account: a guard naming another account's venue (or one no
  // worker has) fails at once, with the reason, instead of running without protecting anything. Checked before the
  // run's first decision (handlers already answer queries meanwhile). (patched: recorded histories predate it.)
  if (!start.continued && patched('check-venue-bindings')) {
    const problems = await CancellationScope.nonCancellable(() => checkVenueBindings(state.config.venues));
    if (problems.length > 0) throw ApplicationFailure.nonRetryable(`config.venues: ${clip(problems.join('; '), 400)}`, 'VenueNotBound');
  }

  if (!startedFirst) {
    dispatch({ type: 'Started', at: now(), continued: start.continued, features: features(), ...(trusted ? { runId, signedBy: start.signedBy ?? null } : {}) });
  }

  await CancellationScope.nonCancellable(async () => {
    await condition(() => workflowInfo().continueAsNewSuggested && allHandlersFinished());
    if (patched('quiet-continue-as-new')) {
      // Prefer a moment with no cancel or close pass under way: the next run starts such a pass again, and the old
      // one, still running on a worker, would then work beside it (harmless, but counted twice). Never for long: a
      // pass against a venue that stays down may run for minutes, and history must not grow without bound.
      let graceOver = false;
      void sleep(CONTINUE_AS_NEW_GRACE).then(() => (graceOver = true));
      await condition(() => allHandlersFinished() && (graceOver || !passUnderWay(state)));
    }
    // The next run starts a watcher of its own. This one is not cancelled here: a cancel request and continue-as-new in
    // one workflow task left the task unanswered (it timed out, again and again, on SDK 1.24). The old watcher
    // learns at its next heartbeat that its run is closed, and stops; what it signals meanwhile carries an older
    // generation, which the new run ignores.
    await continueAsNew<typeof accountGuard>({ config: state.config, state });
  });
}
