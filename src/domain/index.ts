export * from './worker.ts';
export * from './vm.ts';
export * from './task.ts';
export * from './placement.ts';
export * from './execution.ts';
export * from './events.ts';
export * as evt from './event-constructors.ts';
export * from './errors.ts';
export * from './ids.ts';
