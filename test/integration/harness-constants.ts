/**
 * The paper exchange has no rate limits; ccxt's Binance limiter (50 ms per weight unit) would spend most of a test
 * waiting between requests. Tests check correctness, the benchmark measures speed with the real limiter.
 */
export const PAPER_RATE_LIMIT_MS = 1;
