/**
 * Reading and writing recorded workflow histories as JSON.
 *
 * We use protobufjs's toObject/fromObject of @temporalio/proto rather than the SDK's historyToJSON/historyFromJSON:
 * with ccxt in the tree, npm nests separate copies of protobufjs 8 under @temporalio/common and @temporalio/proto,
 * and the SDK's proto-JSON path then fails with "type must be a Type". toObject/fromObject stay within one copy.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
const HistoryType = temporal.api.history.v1.History;

export function writeHistory(file: string, history: History): void {
  const json = HistoryType.toObject(HistoryType.fromObject(history), { longs: String, enums: String, bytes: String });
  writeFileSync(file, `${JSON.stringify(json, null, 1)}\n`);
}

export function readHistory(file: string): temporal.api.history.v1.History {
  return HistoryType.fromObject(JSON.parse(readFileSync(file, 'utf8')));
}
