import { ApplicationFailure } from '@temporalio/common';
import ccxt from 'ccxt';
import { MalformedResponseError, VenueFailureType, classifyExchangeError } from '../../src/activities/exchange-errors';

describe('classifyExchangeError', () => {
  it.each([
    [new ccxt.RequestTimeout('timed out'), VenueFailureType.Unavailable, false],
    [new ccxt.NetworkError('fetch failed'), VenueFailureType.Unavailable, false],
    [new ccxt.DDoSProtection('418'), VenueFailureType.Unavailable, false],
    [new ccxt.RateLimitExceeded('-1003'), VenueFailureType.Unavailable, false],
    [new ccxt.ExchangeNotAvailable('503'), VenueFailureType.Unavailable, false],
    [new ccxt.OnMaintenance('maintenance'), VenueFailureType.Unavailable, false],
    [new ccxt.InvalidNonce('-1021'), VenueFailureType.Unavailable, false],
    [new ccxt.OperationFailed('-1000'), VenueFailureType.Unavailable, false],
    [new ccxt.ExchangeError('unknown code'), VenueFailureType.Unavailable, false],
    [new Error('something else'), VenueFailureType.Unavailable, false],
    [new MalformedResponseError('not a list'), VenueFailureType.MalformedResponse, false],
    [new ccxt.AuthenticationError('-2015'), VenueFailureType.AuthFailed, true],
    [new ccxt.PermissionDenied('no trading permission'), VenueFailureType.AuthFailed, true],
    [new ccxt.AccountSuspended('suspended'), VenueFailureType.AuthFailed, true],
    [new ccxt.BadSymbol('no such market'), VenueFailureType.Rejected, true],
    [new ccxt.InvalidOrder('bad order'), VenueFailureType.Rejected, true],
    [new ccxt.InsufficientFunds('no money'), VenueFailureType.Rejected, true],
    [new ccxt.BadRequest('-1102'), VenueFailureType.Rejected, true],
  ])('%p → %s (nonRetryable %s)', (error, type, nonRetryable) => {
    const failure = classifyExchangeError(error, 'binance-spot');
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe(type);
    expect(failure.nonRetryable).toBe(nonRetryable);
    expect(failure.message.startsWith('binance-spot: ')).toBe(true);
  });

  it('never carries a signature or API key that a venue echoed back', () => {
    const failure = classifyExchangeError(
      new ccxt.AuthenticationError('binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=abcdef0123 {"X-MBX-APIKEY":"k3y"}'),
      'v',
    );
    expect(failure.message).not.toContain('abcdef0123');
    expect(failure.message).not.toContain('k3y');
  });
});
