/**
 * The in-process baseline: the original sketch's design, a plain Node process holding the breaker in memory and
 * calling the same ccxt classes directly, with no Temporal. It decides with the same pure core and cancels with the
 * same venue code, so that the difference to the guard is the cost of durability alone.
 */
import { BreakerState, transition } from '../src/domain/breaker';
import { AccountConfig } from '../src/domain/config';
import { valuePortfolio, VenueHoldings } from '../src/domain/valuation';
import { cancelPass } from '../src/activities/cancel-pass';
import type { VenueClient } from '../src/exchanges/ccxt-factory';

export class InProcessBreaker {
  state: BreakerState = { name: 'Active' };
  private holdings: Record<string, VenueHoldings> = {};

  constructor(
    private readonly config: AccountConfig,
    private readonly venues: VenueClient[],
  ) {}

  /** Applies a report and, on a breach, cancels every open order on every venue before returning. */
  async report(venue: string, holdings: VenueHoldings): Promise<void> {
    this.holdings[venue] = holdings;
    const at = new Date().toISOString();
    // Reports carry USDT only here: an empty price book and the account's policy.
    const v = valuePortfolio(this.holdings, this.config.venues, {}, this.config.initialCapital, this.config.referenceCurrency, at, this.config.blindPolicy);
    if (!v.complete) return;
    const result = transition(this.state, { type: 'PortfolioUpdate', at, totalValue: v.totalValue, lossPct: v.lossPct }, this.config);
    this.state = result.state;
    if (result.commands.length > 0) await Promise.all(this.venues.map((client) => this.flatten(client)));
  }

  /** The guard's own pass (src/activities/cancel-pass.ts), repeated until the venue shows nothing open. */
  private async flatten(client: VenueClient): Promise<void> {
    for (;;) {
      const pass = await cancelPass(client, { cancelled: 0, step: '' });
      if (pass.openAfter === 0) return;
    }
  }
}
