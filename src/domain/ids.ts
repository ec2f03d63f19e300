import { randomUUID } from 'node:crypto';

/** Ids are UUIDs: unique across replicas without coordination, and valid Postgres `uuid` values. */
export function newId(): string {
  return randomUUID();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
