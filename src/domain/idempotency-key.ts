/** A key is 1-255 printable ASCII characters without spaces (the header's documented form). */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
