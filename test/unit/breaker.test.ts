import { BreakerInput, BreakerLimits, BreakerState, lossLevel, transition } from '../../src/domain/breaker';

const limits: BreakerLimits = { warningPct: '3', thresholdPct: '5', autoClosePositions: false };
const at = '2026-01-01T00:00:00.000Z';

const states: Record<string, BreakerState> = {
  Active: { name: 'Active' },
  Warning: { name: 'Warning', since: at },
  TriggeredInProgress: { name: 'Triggered', at, lossPct: '5.5', totalValue: '9450', shutdown: 'inProgress' },
  TriggeredFlat: { name: 'Triggered', at, lossPct: '5.5', totalValue: '9450', shutdown: 'flat', flatAt: at },
  Disabled: { name: 'Disabled', at, operator: 'ops', reason: 'maintenance' },
};
const update = (lossPct: string): BreakerInput => ({ type: 'PortfolioUpdate', at: '2026-01-02T00:00:00.000Z', lossPct, totalValue: '1' });
const op = { at: '2026-01-02T00:00:00.000Z', operator: 'alice', reason: 'checked' };

type Row = [stateKey: string, inputLabel: string, input: BreakerInput, nextState: string | 'rejected', events: string[], commands: string[]];

// Every state × every input kind (PortfolioUpdate at the three loss levels), with the expected outcome.
const table: Row[] = [
  ['Active', 'update ok', update('2'), 'Active', [], []],
  ['Active', 'update warning', update('3.5'), 'Warning', ['WarningTriggered'], []],
  ['Active', 'update breach', update('5.5'), 'Triggered', ['CircuitBreakerTriggered'], ['EmergencyShutdown']],
  ['Active', 'reset', { type: 'ResetRequested', ...op }, 'rejected', [], []],
  ['Active', 'disable', { type: 'DisableRequested', ...op }, 'Disabled', ['BreakerDisabled'], []],
  ['Active', 'enable', { type: 'EnableRequested', ...op }, 'rejected', [], []],
  ['Active', 'shutdown confirmed', { type: 'ShutdownConfirmed', at }, 'Active', [], []],

  ['Warning', 'update ok', update('1'), 'Active', ['WarningCleared'], []],
  ['Warning', 'update warning', update('4.2'), 'Warning', [], []],
  ['Warning', 'update breach', update('7'), 'Triggered', ['CircuitBreakerTriggered'], ['EmergencyShutdown']],
  ['Warning', 'reset', { type: 'ResetRequested', ...op }, 'rejected', [], []],
  ['Warning', 'disable', { type: 'DisableRequested', ...op }, 'Disabled', ['BreakerDisabled'], []],
  ['Warning', 'enable', { type: 'EnableRequested', ...op }, 'rejected', [], []],
  ['Warning', 'shutdown confirmed', { type: 'ShutdownConfirmed', at }, 'Warning', [], []],

  ...(['TriggeredInProgress', 'TriggeredFlat'] as const).flatMap((key): Row[] => [
    [key, 'update ok (latched)', update('-10'), 'Triggered', [], []],
    [key, 'update warning (latched)', update('3.5'), 'Triggered', [], []],
    [key, 'update breach (no second trigger)', update('50'), 'Triggered', [], []],
    [key, 'reset', { type: 'ResetRequested', ...op }, 'Active', ['CircuitBreakerReset'], []],
    [key, 'disable', { type: 'DisableRequested', ...op }, 'rejected', [], []],
    [key, 'enable', { type: 'EnableRequested', ...op }, 'rejected', [], []],
    [key, 'shutdown confirmed', { type: 'ShutdownConfirmed', at }, 'Triggered', key === 'TriggeredFlat' ? [] : ['SystemShutdown'], []],
  ]),

  ['Disabled', 'update ok', update('1'), 'Disabled', [], []],
  ['Disabled', 'update warning', update('4'), 'Disabled', [], []],
  ['Disabled', 'update breach', update('99'), 'Disabled', [], []],
  ['Disabled', 'reset', { type: 'ResetRequested', ...op }, 'rejected', [], []],
  ['Disabled', 'disable', { type: 'DisableRequested', ...op }, 'rejected', [], []],
  ['Disabled', 'enable', { type: 'EnableRequested', ...op }, 'Active', ['BreakerEnabled'], []],
  ['Disabled', 'shutdown confirmed', { type: 'ShutdownConfirmed', at }, 'Disabled', [], []],
];

describe('transition: every state × input', () => {
  it.each(table)('%s + %s', (stateKey, _label, input, next, events, commands) => {
    const state = states[stateKey]!;
    const result = transition(state, input, limits);
    if (next === 'rejected') {
      expect(result.rejection).toEqual(expect.any(String));
      expect(result.state).toBe(state);
    } else {
      expect(result.rejection).toBeUndefined();
      expect(result.state.name).toBe(next);
    }
    expect(result.events.map((e) => e.type)).toEqual(events);
    expect(result.commands.map((c) => c.type)).toEqual(commands);
  });

  it('covers every state and every input type', () => {
    const inputTypes = new Set(table.map((r) => r[2].type));
    expect([...inputTypes].sort()).toEqual(['DisableRequested', 'EnableRequested', 'PortfolioUpdate', 'ResetRequested', 'ShutdownConfirmed']);
    expect(new Set(table.map((r) => r[0]))).toEqual(new Set(Object.keys(states)));
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

  it('a loss of exactly 5.00 % trips from Active and from Warning', () => {
    expect(transition(states.Active!, update('5.00'), limits).state.name).toBe('Triggered');
    expect(transition(states.Warning!, update('5.00'), limits).state.name).toBe('Triggered');
  });

  it('a loss of exactly 3.00 % warns', () => {
    expect(transition(states.Active!, update('3.00'), limits).state.name).toBe('Warning');
  });
});

describe('trigger details', () => {
  it('carries the loss and value that tripped it and asks to close positions when configured', () => {
    const result = transition({ name: 'Active' }, { type: 'PortfolioUpdate', at, lossPct: '5.5', totalValue: '9450' }, { ...limits, autoClosePositions: true });
    expect(result.state).toEqual({ name: 'Triggered', at, lossPct: '5.5', totalValue: '9450', shutdown: 'inProgress' });
    expect(result.commands).toEqual([{ type: 'EmergencyShutdown', closePositions: true }]);
  });

  it('is latched through any sequence of updates until a reset', () => {
    let state: BreakerState = transition({ name: 'Active' }, update('6'), limits).state;
    for (const loss of ['0', '-50', '3', '4.9', '100']) {
      const result = transition(state, update(loss), limits);
      expect(result.state.name).toBe('Triggered');
      expect(result.commands).toEqual([]);
      state = result.state;
    }
    expect(transition(state, { type: 'ResetRequested', ...op }, limits).state).toEqual({ name: 'Active' });
  });

  it('round-trips every state through JSON', () => {
    for (const state of Object.values(states)) expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
