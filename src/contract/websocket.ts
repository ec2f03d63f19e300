/**
 * The API's WebSocket handshake, shared by the server and every client. A client offers the
 * subprotocol `aetherium.v1`; it carries its credentials in the Authorization header of the
 * upgrade or, where it cannot set headers (a browser), as a second offered subprotocol
 * `aetherium.bearer.<token>`. Never in the URL, which ends up in logs and history. The server
 * answers with `aetherium.v1` only, so the token is never echoed.
 */
export const WS_PROTOCOL = 'aetherium.v1';
export const WS_BEARER_PREFIX = 'aetherium.bearer.';
