/**
 * The original design's scenario, shared by the demo, the tests and the benchmark: a $10,000.00 USDT account
 * holding 0.2 BTC of exposure (0.1 BTC on spot, a 0.1 BTC long perp), and the BTC prices that produce losses of
 * 2.00 %, 3.50 %, 4.20 % and 5.50 %.
 */
import type { BalanceReport } from '../src/api/contract';
import { Decimal, toDecimalString } from '../src/domain/money';
import type { PaperSeed } from './paper/exchange';

export const SPOT_VENUE = 'binance-spot';
export const PERP_VENUE = 'binance-usdm';
export const SEED_CAPITAL = '10000.00';
const ENTRY = new Decimal('40000');
const BTC_PER_VENUE = new Decimal('0.1');

/** BTC price → expected loss, value and breaker state after both venues report. */
export const SEED_STEPS = [
  { price: '39000', lossPct: '2.00', totalValue: '9800', state: 'Active' },
  { price: '38250', lossPct: '3.50', totalValue: '9650', state: 'Warning' },
  { price: '37900', lossPct: '4.20', totalValue: '9580', state: 'Warning' },
  { price: '37250', lossPct: '5.50', totalValue: '9450', state: 'Triggered' },
] as const;

/** The paper account: balances, the perp position, and open orders on both venues (normal and conditional). */
export function seedPaperAccount(): PaperSeed {
  return {
    prices: { BTC: '40000' },
    spotBalances: { USDT: '4000.00', BTC: '0.1' },
    futuresBalances: { USDT: '2000.00' },
    positions: [{ symbol: 'BTCUSDT', positionAmt: '0.1', entryPrice: '40000' }],
    orders: [
      { market: 'spot', symbol: 'BTCUSDT', side: 'BUY', price: '35000', quantity: '0.05' },
      { market: 'spot', symbol: 'ETHUSDT', side: 'BUY', price: '1800', quantity: '1' },
      { market: 'spot', symbol: 'BTCUSDT', side: 'SELL', price: '45000', quantity: '0.05' },
      { market: 'futures', symbol: 'BTCUSDT', side: 'BUY', price: '36000', quantity: '0.05' },
      { market: 'futures', symbol: 'ETHUSDT', side: 'SELL', price: '2500', quantity: '2' },
      { market: 'futures', symbol: 'BTCUSDT', side: 'SELL', stopPrice: '30000', quantity: '0.1', reduceOnly: true },
      { market: 'futures', symbol: 'SOLUSDT', side: 'BUY', stopPrice: '120', quantity: '10' },
    ],
  };
}

/** What a spot bot reports at a BTC price. */
export function spotReport(seq: number, price: string): BalanceReport {
  return { venue: SPOT_VENUE, seq, balances: { USDT: '4000.00', BTC: toDecimalString(BTC_PER_VENUE) }, prices: { BTC: price } };
}

/** What a perp bot reports at a BTC price: wallet balance plus the position's unrealized P&L. */
export function perpReport(seq: number, price: string): BalanceReport {
  const pnl = new Decimal(price).minus(ENTRY).times(BTC_PER_VENUE);
  return {
    venue: PERP_VENUE,
    seq,
    balances: { USDT: '2000.00' },
    positions: [{ symbol: 'BTC/USDT:USDT', side: 'long', contracts: toDecimalString(BTC_PER_VENUE), entryPrice: '40000', markPrice: price, unrealizedPnl: toDecimalString(pnl, 2) }],
  };
}
