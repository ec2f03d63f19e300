/**
 * A WebSocket route asked without `Upgrade: websocket` (a browser tab, curl, a fuzzer): a 426 in the
 * API's error format that says how to connect, instead of the WebSocket plugin's bare, empty 404.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

export async function upgradeRequired(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.ws) return;
  await reply
    .status(426)
    .header('upgrade', 'websocket')
    .send({
      error: {
        code: 'bad_request',
        message: `${request.url.split('?')[0]} is a WebSocket: connect with Upgrade: websocket (see the README)`,
      },
    });
}
