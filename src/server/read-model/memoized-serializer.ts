/**
 * A route serializer that checks and writes an answer object once: the zod serializer (which
 * encodes the answer through the route's response schema, then JSON.stringify) runs the first time
 * an object is sent, and the JSON is kept for as long as the object lives. With answers shared
 * between requests (answer-memo.ts), a busy read costs one encoding per answer, not per request;
 * the contract check is unchanged, since every answer sent went through it once.
 */
import type { FastifySerializerCompiler } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';

type SerializerCompilerArgs = Parameters<typeof serializerCompiler>[0];

export const memoizedSerializerCompiler = ((route: SerializerCompilerArgs) => {
  const serialize = serializerCompiler(route);
  const written = new WeakMap<object, string>();
  return (data: unknown) => {
    if (typeof data !== 'object' || data === null) return serialize(data);
    let json = written.get(data);
    if (json === undefined) {
      json = serialize(data);
      written.set(data, json);
    }
    return json;
  };
}) as FastifySerializerCompiler<unknown>;
