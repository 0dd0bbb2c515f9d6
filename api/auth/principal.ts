/** Who is calling: resolved once per request (or per node socket) from the API key. */
export type Role = 'admin' | 'client' | 'node_owner' | 'node';

export type Principal =
  | { role: 'admin'; keyId: string | null }
  | { role: 'client'; keyId: string; clientId: string }
  | { role: 'node_owner'; keyId: string; nodeOwnerId: string }
  | { role: 'node'; keyId: string; nodeId: string; nodeOwnerId: string };

declare module 'hono' {
  interface ContextVariableMap {
    principal: Principal;
  }
}
