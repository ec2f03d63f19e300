import { MemoryTaskQueue } from '../src/adapters/queue/memory-task-queue.ts';
import { taskQueueConformance } from './conformance/task-queue.suite.ts';

taskQueueConformance('memory', async () => new MemoryTaskQueue());
