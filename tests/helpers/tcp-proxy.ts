import net from 'node:net';

export interface TcpProxy {
  /** `host:port` to give a process instead of the target's address. */
  address: string;
  /**
   * An outage: open connections are cut and new ones are accepted but never answered, as with a
   * server that is down behind a load balancer (calls hang until their deadline).
   */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A TCP relay to `target` that a test can cut, to take a real service away from one process. */
export async function tcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = target.split(':') as [string, string];
  let down = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (down) return; // held open, never answered
    const upstream = net.connect(Number(port), host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${own}`,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
