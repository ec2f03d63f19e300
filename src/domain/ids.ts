/** Ids are UUIDs: unique across replicas without coordination, and valid Postgres `uuid` values. */
export function newId(): string {
  // Web Crypto: the same in Node and in a browser, so the domain's vocabularies load in both.
  return globalThis.crypto.randomUUID();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
