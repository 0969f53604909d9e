import {
  BreakerInput,
  BreakerInputType,
  BreakerLimits,
  BreakerState,
  BreakerStateName,
  RiskEvent,
  assertNever,
  lossLevel,
  transition,
} from '../../src/domain/breaker';

const limits: BreakerLimits = { warningPct: '3', thresholdPct: '5', autoClosePositions: false };
const at = '2026-01-01T00:00:00.000Z';
const later = '2026-01-02T00:00:00.000Z';

/** Every state shape, each cause of Warning and of Triggered, and Triggered with no valuation at all (nulls). */
const states = {
  Active: { name: 'Active' },
  WarningLoss: { name: 'Warning', since: at, cause: 'loss' },
  WarningBlind: { name: 'Warning', since: at, cause: 'blind' },
  TriggeredLossInProgress: {
    name: 'Triggered', at, cause: 'loss', reason: 'loss 5.50 % of capital (threshold 5 %)', lossPct: '5.5', totalValue: '9450', shutdown: 'inProgress',
  },
  TriggeredLossFlat: {
    name: 'Triggered', at, cause: 'loss', reason: 'loss 5.50 % of capital (threshold 5 %)', lossPct: '5.5', totalValue: '9450', shutdown: 'flat', flatAt: at,
  },
  TriggeredBlindInProgress: {
    name: 'Triggered', at, cause: 'blind', reason: 'valuation blind for 900 s: binance: never valued', lossPct: null, totalValue: null, shutdown: 'inProgress',
  },
  TriggeredHaltFlat: {
    name: 'Triggered', at, cause: 'halt', reason: 'halted by bob: fat finger', lossPct: '-1.25', totalValue: '10125', shutdown: 'flat', flatAt: later,
  },
  Disabled: { name: 'Disabled', at, operator: 'ops', reason: 'maintenance' },
} satisfies Record<string, BreakerState>;
type StateKey = keyof typeof states;
const triggeredKeys = ['TriggeredLossInProgress', 'TriggeredLossFlat', 'TriggeredBlindInProgress', 'TriggeredHaltFlat'] as const;

type PortfolioUpdate = Extract<BreakerInput, { type: 'PortfolioUpdate' }>;
const update = (lossPct: string | null, blind?: PortfolioUpdate['blind']): PortfolioUpdate => ({
  type: 'PortfolioUpdate',
  at: later,
  lossPct,
  totalValue: lossPct === null ? null : '9900',
  ...(blind ? { blind } : {}),
});
const blindWarning = { level: 'warning', reason: 'valuation blind for 300 s: okx: holdings 300 s old' } as const;
const blindBreach = { level: 'breach', reason: 'valuation blind for 900 s: binance: never valued' } as const;
const op = { at: later, operator: 'alice', reason: 'checked' };

/** Every input kind: PortfolioUpdate at every combination of loss level and blind level that decides something. */
const inputs = {
  'update ok': update('1'),
  'update loss warning': update('3.5'),
  'update loss breach': update('5.5'),
  'update null loss, not blind': update(null),
  'update blind warning': update(null, blindWarning),
  'update blind breach': update(null, blindBreach),
  'update ok loss + blind breach': update('1', blindBreach),
  'update loss breach + blind warning': update('5.5', blindWarning),
  'update loss warning + blind warning (tie)': update('3.5', blindWarning),
  'update loss warning + blind breach': update('3.5', blindBreach),
  'update loss breach + blind breach (tie)': update('5.5', blindBreach),
  reset: { type: 'ResetRequested', ...op },
  halt: { type: 'HaltRequested', ...op, lossPct: '2.5', totalValue: '9750' },
  disable: { type: 'DisableRequested', ...op },
  enable: { type: 'EnableRequested', ...op },
  'shutdown confirmed': { type: 'ShutdownConfirmed', at: later },
  recalled: { type: 'TripRecalled', at: later, reason: 'the audit log holds a trip at 2026-01-01 not yet reset', lossPct: '6', totalValue: '9400' },
} satisfies Record<string, BreakerInput>;
type InputLabel = keyof typeof inputs;
const updateLabels = (Object.keys(inputs) as InputLabel[]).filter((l) => inputs[l].type === 'PortfolioUpdate');

/** A state in one word: its name, and the cause (and shutdown progress) where it has one. */
function summary(state: BreakerState): string {
  switch (state.name) {
    case 'Active':
    case 'Disabled':
      return state.name;
    case 'Warning':
      return `Warning(${state.cause})`;
    case 'Triggered':
      return `Triggered(${state.cause}, ${state.shutdown})`;
    default:
      return assertNever(state);
  }
}

type Row = [stateKey: StateKey, input: InputLabel, next: string | 'rejected', events: RiskEvent['type'][], commands: string[]];
const TRIP = ['CircuitBreakerTriggered'] as RiskEvent['type'][];
const SHUTDOWN = ['EmergencyShutdown'];

/** What Active and both Warnings do with a portfolio update: the worse of loss and blindness decides; loss wins a tie. */
const fromActiveOrWarning = (key: 'Active' | 'WarningLoss' | 'WarningBlind'): Row[] => {
  const warned = key !== 'Active';
  // Entering Warning records an event; a Warning that only changes its cause records none.
  const warn = (cause: 'loss' | 'blind'): Row[2] => `Warning(${cause})`;
  const warnEvents = warned ? [] : (['WarningTriggered'] as RiskEvent['type'][]);
  const clear: Row = warned ? [key, 'update ok', 'Active', ['WarningCleared'], []] : [key, 'update ok', 'Active', [], []];
  return [
    clear,
    [key, 'update loss warning', warn('loss'), warnEvents, []],
    [key, 'update loss breach', 'Triggered(loss, inProgress)', TRIP, SHUTDOWN],
    // No loss known and not (yet) blind under the policy: no news, so nothing warns and nothing clears.
    [key, 'update null loss, not blind', warned ? warn(key === 'WarningBlind' ? 'blind' : 'loss') : 'Active', [], []],
    [key, 'update blind warning', warn('blind'), warnEvents, []],
    [key, 'update blind breach', 'Triggered(blind, inProgress)', TRIP, SHUTDOWN],
    [key, 'update ok loss + blind breach', 'Triggered(blind, inProgress)', TRIP, SHUTDOWN],
    [key, 'update loss breach + blind warning', 'Triggered(loss, inProgress)', TRIP, SHUTDOWN],
    [key, 'update loss warning + blind warning (tie)', warn('loss'), warnEvents, []],
    [key, 'update loss warning + blind breach', 'Triggered(blind, inProgress)', TRIP, SHUTDOWN],
    [key, 'update loss breach + blind breach (tie)', 'Triggered(loss, inProgress)', TRIP, SHUTDOWN],
    [key, 'reset', 'rejected', [], []],
    [key, 'halt', 'Triggered(halt, inProgress)', TRIP, SHUTDOWN],
    [key, 'disable', 'Disabled', ['BreakerDisabled'], []],
    [key, 'enable', 'rejected', [], []],
    [key, 'shutdown confirmed', summary(states[key]), [], []],
    [key, 'recalled', 'Triggered(recalled, inProgress)', TRIP, SHUTDOWN],
  ];
};

// Every state × every input kind, with the expected outcome.
const table: Row[] = [
  ...fromActiveOrWarning('Active'),
  ...fromActiveOrWarning('WarningLoss'),
  ...fromActiveOrWarning('WarningBlind'),

  ...triggeredKeys.flatMap((key): Row[] => {
    const state = states[key];
    return [
      // Latched: no update, however good, bad or blind, leaves Triggered or trips it a second time.
      ...updateLabels.map((label): Row => [key, label, summary(state), [], []]),
      [key, 'reset', 'Active', ['CircuitBreakerReset'], []],
      [key, 'halt', 'rejected', [], []],
      [key, 'disable', 'rejected', [], []],
      [key, 'enable', 'rejected', [], []],
      state.shutdown === 'flat'
        ? [key, 'shutdown confirmed', summary(state), [], []]
        : [key, 'shutdown confirmed', `Triggered(${state.cause}, flat)`, ['SystemShutdown'], []],
      // Already latched: a recalled trip changes nothing.
      [key, 'recalled', summary(state), [], []],
    ];
  }),

  // Disabled ignores valuations (even blind breaches) but not an operator's halt: a halt only tightens protection.
  ...updateLabels.map((label): Row => ['Disabled', label, 'Disabled', [], []]),
  ['Disabled', 'reset', 'rejected', [], []],
  ['Disabled', 'halt', 'Triggered(halt, inProgress)', TRIP, SHUTDOWN],
  ['Disabled', 'disable', 'rejected', [], []],
  ['Disabled', 'enable', 'Active', ['BreakerEnabled'], []],
  ['Disabled', 'shutdown confirmed', 'Disabled', [], []],
  // A trip the audit log remembers wins over Disabled: a disable cannot follow a trip without a reset in between, so
  // only a history reset or a restart can have brought Disabled back.
  ['Disabled', 'recalled', 'Triggered(recalled, inProgress)', TRIP, SHUTDOWN],
];

/** The exact event each input records whenever it records one: causes, reasons and figures included. */
const recorded: Partial<Record<InputLabel, RiskEvent>> = {
  'update ok': { type: 'WarningCleared', at: later, lossPct: '1', totalValue: '9900' },
  'update loss warning': {
    type: 'WarningTriggered', at: later, cause: 'loss', reason: 'loss 3.50 % of capital (warning at 3 %)', lossPct: '3.5', totalValue: '9900',
  },
  'update blind warning': { type: 'WarningTriggered', at: later, cause: 'blind', reason: blindWarning.reason, lossPct: null, totalValue: null },
  'update loss warning + blind warning (tie)': {
    type: 'WarningTriggered', at: later, cause: 'loss', reason: 'loss 3.50 % of capital (warning at 3 %)', lossPct: '3.5', totalValue: '9900',
  },
  'update loss breach': {
    type: 'CircuitBreakerTriggered', at: later, cause: 'loss', reason: 'loss 5.50 % of capital (threshold 5 %)', lossPct: '5.5', totalValue: '9900',
  },
  'update blind breach': { type: 'CircuitBreakerTriggered', at: later, cause: 'blind', reason: blindBreach.reason, lossPct: null, totalValue: null },
  'update ok loss + blind breach': {
    type: 'CircuitBreakerTriggered', at: later, cause: 'blind', reason: blindBreach.reason, lossPct: '1', totalValue: '9900',
  },
  'update loss breach + blind warning': {
    type: 'CircuitBreakerTriggered', at: later, cause: 'loss', reason: 'loss 5.50 % of capital (threshold 5 %)', lossPct: '5.5', totalValue: '9900',
  },
  'update loss warning + blind breach': {
    type: 'CircuitBreakerTriggered', at: later, cause: 'blind', reason: blindBreach.reason, lossPct: '3.5', totalValue: '9900',
  },
  'update loss breach + blind breach (tie)': {
    type: 'CircuitBreakerTriggered', at: later, cause: 'loss', reason: 'loss 5.50 % of capital (threshold 5 %)', lossPct: '5.5', totalValue: '9900',
  },
  halt: {
    type: 'CircuitBreakerTriggered', at: later, cause: 'halt', reason: 'halted by alice: checked', lossPct: '2.5', totalValue: '9750', operator: 'alice',
  },
  reset: { type: 'CircuitBreakerReset', ...op },
  disable: { type: 'BreakerDisabled', ...op },
  enable: { type: 'BreakerEnabled', ...op },
  'shutdown confirmed': { type: 'SystemShutdown', at: later },
  recalled: { type: 'CircuitBreakerTriggered', at: later, cause: 'recalled', reason: 'the audit log holds a trip at 2026-01-01 not yet reset', lossPct: '6', totalValue: '9400' },
};

/** The union's members, spelt out: adding an input type or a state name fails to compile until it is listed here. */
const everyInputType = {
  PortfolioUpdate: true,
  ResetRequested: true,
  HaltRequested: true,
  DisableRequested: true,
  EnableRequested: true,
  ShutdownConfirmed: true,
  TripRecalled: true,
} satisfies Record<BreakerInputType, true>;

describe('transition: every state × input', () => {
  it.each(table)('%s + %s -> %s', (stateKey, label, next, events, commands) => {
    const state = states[stateKey];
    const result = transition(state, inputs[label], limits);
    if (next === 'rejected') {
      expect(result.rejection).toEqual(expect.any(String));
      expect(result.state).toBe(state);
    } else {
      expect(result.rejection).toBeUndefined();
      expect(summary(result.state)).toBe(next);
    }
    expect(result.events.map((e) => e.type)).toEqual(events);
    expect(result.commands).toEqual(commands.map(() => ({ type: 'EmergencyShutdown', closePositions: false })));

    // Whatever is recorded is exactly what this input records: cause, reason, figures, operator.
    expect(result.events).toEqual(events.length === 0 ? [] : [recorded[label]]);
    // A trip's state carries what its event says, and the shutdown starts.
    const tripped = result.events.find((e): e is Extract<RiskEvent, { type: 'CircuitBreakerTriggered' }> => e.type === 'CircuitBreakerTriggered');
    if (tripped) {
      const { at: trippedAt, cause, reason, lossPct, totalValue } = tripped;
      expect(result.state).toEqual({ name: 'Triggered', at: trippedAt, cause, reason, lossPct, totalValue, shutdown: 'inProgress' });
    }
    // An outcome that names the same state as before changed nothing at all.
    if (next === summary(state)) expect(result.state).toEqual(state);
  });

  it('covers every state × every input, and every input type and state name', () => {
    const pairs = table.map(([s, i]) => `${s} + ${i}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    const expected = (Object.keys(states) as StateKey[]).flatMap((s) => (Object.keys(inputs) as InputLabel[]).map((i) => `${s} + ${i}`));
    expect([...pairs].sort()).toEqual([...expected].sort());

    const inputTypes = new Set(table.map(([, label]) => inputs[label].type));
    expect([...inputTypes].sort()).toEqual(Object.keys(everyInputType).sort());
    expect([...inputTypes].sort()).toEqual(['DisableRequested', 'EnableRequested', 'HaltRequested', 'PortfolioUpdate', 'ResetRequested', 'ShutdownConfirmed', 'TripRecalled']);
    expect(new Set(Object.values(states).map((s) => s.name))).toEqual(new Set(Object.values(BreakerStateName)));
  });

  it('reaches every outcome: each trip cause, each warning cause, every event type', () => {
    const outcomes = new Set(table.map((r) => r[2]));
    for (const outcome of ['Triggered(loss, inProgress)', 'Triggered(blind, inProgress)', 'Triggered(halt, inProgress)', 'Warning(loss)', 'Warning(blind)', 'rejected']) {
      expect(outcomes).toContain(outcome);
    }
    const eventTypes = new Set(table.flatMap((r) => r[3]));
    expect([...eventTypes].sort()).toEqual(
      ['BreakerDisabled', 'BreakerEnabled', 'CircuitBreakerReset', 'CircuitBreakerTriggered', 'SystemShutdown', 'WarningCleared', 'WarningTriggered'],
    );
    // Every recorded event is expected by some row: the map holds no dead entries.
    const labelsWithEvents = new Set(table.filter((r) => r[3].length > 0).map((r) => r[1]));
    expect([...labelsWithEvents].sort()).toEqual(Object.keys(recorded).sort());
  });
});

describe('portfolio updates: loss and blindness', () => {
  it('enters Warning at the update time, with the cause', () => {
    expect(transition(states.Active, inputs['update blind warning'], limits).state).toEqual({ name: 'Warning', since: later, cause: 'blind' });
    expect(transition(states.Active, inputs['update loss warning'], limits).state).toEqual({ name: 'Warning', since: later, cause: 'loss' });
  });

  it('a Warning whose cause changes keeps its start time and records nothing', () => {
    const toBlind = transition(states.WarningLoss, inputs['update blind warning'], limits);
    expect(toBlind).toEqual({ state: { name: 'Warning', since: at, cause: 'blind' }, events: [], commands: [] });
    const toLoss = transition(states.WarningBlind, inputs['update loss warning + blind warning (tie)'], limits);
    expect(toLoss).toEqual({ state: { name: 'Warning', since: at, cause: 'loss' }, events: [], commands: [] });
  });

  it('a Warning(blind) clears once neither the loss nor the blindness warns', () => {
    for (const input of [update('1'), update('-4'), update('2.99')]) {
      const result = transition(states.WarningBlind, input, limits);
      expect(result.state).toEqual({ name: 'Active' });
      expect(result.events).toEqual([{ type: 'WarningCleared', at: later, lossPct: input.lossPct, totalValue: input.totalValue }]);
    }
  });

  it('an update with no loss known and no blindness leaves Active as it is', () => {
    const result = transition(states.Active, update(null), limits);
    expect(result).toEqual({ state: states.Active, events: [], commands: [] });
  });

  it('asks to close positions on every trip cause when configured', () => {
    const closing = { ...limits, autoClosePositions: true };
    for (const label of ['update loss breach', 'update blind breach', 'halt'] as const) {
      expect(transition(states.Active, inputs[label], closing).commands).toEqual([{ type: 'EmergencyShutdown', closePositions: true }]);
    }
  });
});

describe('halt', () => {
  it('trips a Disabled breaker, naming the operator and the figures given', () => {
    const result = transition(states.Disabled, { type: 'HaltRequested', at: later, operator: 'bob', reason: 'exchange incident', lossPct: null, totalValue: null }, limits);
    expect(result.rejection).toBeUndefined();
    expect(result.state).toEqual({
      name: 'Triggered', at: later, cause: 'halt', reason: 'halted by bob: exchange incident', lossPct: null, totalValue: null, shutdown: 'inProgress',
    });
    expect(result.events).toEqual([
      { type: 'CircuitBreakerTriggered', at: later, cause: 'halt', reason: 'halted by bob: exchange incident', lossPct: null, totalValue: null, operator: 'bob' },
    ]);
    expect(result.commands).toEqual([{ type: 'EmergencyShutdown', closePositions: false }]);
  });

  it('is refused by a breaker already Triggered, whatever its cause or shutdown progress', () => {
    for (const key of triggeredKeys) {
      const result = transition(states[key], inputs.halt, limits);
      expect(result).toEqual({ state: states[key], events: [], commands: [], rejection: expect.stringContaining('already Triggered') });
    }
  });

  it('operator appears only on a halt event', () => {
    const byLoss = transition(states.Active, inputs['update loss breach'], limits).events[0];
    const byBlind = transition(states.Active, inputs['update blind breach'], limits).events[0];
    expect(byLoss).not.toHaveProperty('operator');
    expect(byBlind).not.toHaveProperty('operator');
    expect(transition(states.Active, inputs.halt, limits).events[0]).toHaveProperty('operator', 'alice');
  });
});

describe('boundaries are inclusive', () => {
  it.each([
    ['2.99', 'ok'],
    ['2.999999999999999999', 'ok'],
    ['3', 'warning'],
    ['3.00', 'warning'],
    ['4.99', 'warning'],
    ['4.999999999999999999', 'warning'],
    ['5', 'breach'],
    ['5.00', 'breach'],
    ['5.01', 'breach'],
    ['-20', 'ok'],
  ])('a loss of %s%% is %s', (loss, level) => {
    expect(lossLevel(loss, limits)).toBe(level);
  });

  it('a loss of exactly 5.00 % trips from Active and from either Warning, as a loss', () => {
    for (const state of [states.Active, states.WarningLoss, states.WarningBlind]) {
      const result = transition(state, update('5.00'), limits);
      expect(summary(result.state)).toBe('Triggered(loss, inProgress)');
      expect(result.events[0]).toMatchObject({ cause: 'loss', reason: 'loss 5.00 % of capital (threshold 5 %)' });
    }
  });

  it('a loss of exactly 3.00 % warns, and wins the tie with a blind warning', () => {
    expect(summary(transition(states.Active, update('3.00'), limits).state)).toBe('Warning(loss)');
    const tie = transition(states.Active, update('3.00', blindWarning), limits);
    expect(tie.state).toEqual({ name: 'Warning', since: later, cause: 'loss' });
    expect(tie.events[0]).toMatchObject({ cause: 'loss', reason: 'loss 3.00 % of capital (warning at 3 %)' });
  });

  it('just under the levels does not act', () => {
    expect(transition(states.Active, update('2.999999999999999999'), limits).state).toEqual({ name: 'Active' });
    expect(summary(transition(states.Active, update('4.999999999999999999'), limits).state)).toBe('Warning(loss)');
  });
});

describe('latch and persistence', () => {
  it('is latched through any sequence of updates, blind ones included, until a reset', () => {
    const tripped = transition(states.Active, update('6'), limits).state;
    let state: BreakerState = tripped;
    const sequence = [update('0'), update('-50'), update(null), update(null, blindWarning), update('1', blindBreach), update('3', blindWarning), update('100', blindBreach)];
    for (const input of sequence) {
      const result = transition(state, input, limits);
      expect(result).toEqual({ state: tripped, events: [], commands: [] });
      state = result.state;
    }
    expect(transition(state, { type: 'ResetRequested', ...op }, limits).state).toEqual({ name: 'Active' });
  });

  it('a breaker tripped by blindness keeps its cause through later good valuations', () => {
    let state: BreakerState = transition(states.Active, inputs['update blind breach'], limits).state;
    state = transition(state, update('-5'), limits).state;
    expect(state).toMatchObject({ name: 'Triggered', cause: 'blind', reason: blindBreach.reason, lossPct: null, totalValue: null });
  });

  it('round-trips every state through JSON, the null-valued and halted shapes and every table outcome included', () => {
    const outcomes = table.map(([key, label]) => transition(states[key], inputs[label], limits).state);
    const all: BreakerState[] = [...Object.values(states), ...outcomes];
    expect(all.some((s) => s.name === 'Triggered' && s.lossPct === null && s.totalValue === null)).toBe(true);
    for (const state of all) expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
