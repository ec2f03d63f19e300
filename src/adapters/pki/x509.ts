/**
 * The one place @peculiar/x509 is imported, so its two preconditions hold wherever it is used:
 * a Reflect metadata polyfill loaded before it (its dependency injection, tsyringe, throws at
 * import without one), and Node's own WebCrypto as its crypto provider, so keys and signatures
 * come from OpenSSL and not from a JavaScript implementation. Everything in src/adapters/pki
 * imports the library from here.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };
