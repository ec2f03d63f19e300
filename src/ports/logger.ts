/**
 * Logger: the structured logger every component takes, as a port so that the core never reaches
 * up into `runtime/` for it. pino's interface is the contract; `runtime/logger.ts` makes one.
 */
export type { Logger } from 'pino';
