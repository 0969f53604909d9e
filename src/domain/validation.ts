/**
 * Schema helpers shared by the config and report validators: zod for structure, our own messages for money.
 */
import { z } from 'zod';
import { Decimal, describe } from './money';

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** A decimal string; a JavaScript number is refused with a message that shows the string to send instead. */
export function decimalString(opts: { nonNegative?: boolean; positive?: boolean } = {}) {
  return z
    .custom<string>((v) => typeof v === 'string' && DECIMAL.test(v), {
      error: (issue) =>
        typeof issue.input === 'number'
          ? `must be a decimal string such as "${Number.isFinite(issue.input) ? String(issue.input) : '0.5'}", got the number ${String(issue.input)}`
          : issue.input === undefined
            ? 'is required'
            : `must be a decimal string such as "9650.00", got ${describe(issue.input)}`,
    })
    .superRefine((v, ctx) => {
      const d = new Decimal(v);
      if (opts.positive && !d.gt(0)) ctx.addIssue({ code: 'custom', message: `must be greater than 0, got "${v}"` });
      else if (opts.nonNegative && d.isNegative() && !d.isZero()) {
        ctx.addIssue({ code: 'custom', message: `must not be negative, got "${v}"` });
      }
    });
}

/** Turns zod issues into one line per problem, each prefixed with the path of the offending field. */
export function formatIssues(error: z.ZodError, root: string): string[] {
  return error.issues.map((issue) => {
    const where = [root, ...issue.path.map(String)].filter(Boolean).join('.');
    return `${where}: ${issue.message}`;
  });
}
