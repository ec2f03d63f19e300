/** Roles, from the domain: viewer reads; operator also runs VMs; admin also runs the cluster. */
export { ROLES, type Role, roleAtLeast } from '../../domain/auth.ts';
