import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { eventBusConformance } from './conformance/event-bus.suite.ts';

eventBusConformance('memory', async () => new MemoryEventBus(100));
