/** What each scenario file exports, and what the runner gives it. */
import type { Engines } from './control-plane.ts';
import type { ScenarioResult } from './report.ts';
import type { Scope } from './scope.ts';

export interface ScenarioContext {
  /** The suite's Postgres and Redis, started on first use. */
  engines(): Promise<Engines>;
  /** Stopped when the scenario ends, however it ends. */
  scope: Scope;
  /** A folder of this scenario's own (removed with the scope). */
  dir: string;
  /** A progress line on stderr. */
  log(line: string): void;
}

export interface Scenario {
  /** For `--only`. */
  name: string;
  title: string;
  /** The runner stops the scenario after this long. */
  budgetMs: number;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** A number from the environment, for shorter runs while developing. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} is not a positive number`);
  return value;
}
