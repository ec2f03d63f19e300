/**
 * What the SDK needs of a WebSocket to the API (the event stream, interactive exec), whichever
 * library opens it: `ws` in Node (node-transport.ts), the browser's own in a page
 * (fetch-transport.ts). A refused upgrade is the typed error of its answer where the platform
 * shows the answer (Node); a browser only sees a failed connection.
 */
export { WS_BEARER_PREFIX, WS_PROTOCOL } from '../contract/websocket.ts';

export interface ApiSocket {
  /** Whether messages can be sent now. */
  readonly isOpen: boolean;
  /** Bytes queued and not yet sent: a writer waits while it is high. */
  readonly bufferedAmount: number;
  send(text: string): void;
  close(code?: number, reason?: string): void;
  /** Called once, when the socket is closed by either side or fails. */
  onClose(listener: (code: number, reason: string) => void): void;
}

export interface SocketOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/** `onMessage` gets one JSON object per line of a frame (the server may batch several in one). */
export type MessageHandler = (message: Record<string, unknown>) => void;

export function deliverFrame(text: string, onMessage: MessageHandler): void {
  for (const line of text.split('\n')) {
    if (!line) continue;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      continue; // not one of ours
    }
    if (typeof message === 'object' && message !== null) onMessage(message as Record<string, unknown>);
  }
}
