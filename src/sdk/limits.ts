/** The client's defaults, shared by the Node and browser clients. */
export const DEFAULT_API_URL = 'http://localhost:8080';
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
