import { type Connection, guarded, openConnection, type Settings } from './redis-connection.js';
import { deliver, type MessageHandler, type PubSub, StoreUnavailableError } from './types.js';

/**
 * Pub/sub over a dedicated subscriber connection (a connection in subscribe mode can run nothing else),
 * opened on the first subscribe. Each channel is subscribed once in Redis however many local handlers
 * it has; ioredis resubscribes by itself after a reconnect.
 */
export function redisPubSub(
  url: string,
  prefix: string,
  settings: Settings,
  command: Connection,
): PubSub & { close(): Promise<void> } {
  interface Channel {
    subs: Set<{ handler: MessageHandler }>;
    /** Settles when Redis confirmed SUBSCRIBE; later handlers of the channel wait on it too. */
    subscribed: Promise<void>;
  }
  const channels = new Map<string, Channel>();
  let subscriber: Connection | undefined;
  let closed = false;

  const connection = (): Connection => {
    if (closed) throw new StoreUnavailableError('store is closed');
    if (!subscriber) {
      subscriber = openConnection(url, 'subscriber', settings);
      subscriber.redis.on('message', (name: string, message: string) => {
        for (const sub of [...(channels.get(name)?.subs ?? [])]) {
          deliver(sub.handler, message, (err) =>
            settings.log.warn({ err, channel: name }, 'pubsub handler failed'),
          );
        }
      });
    }
    return subscriber;
  };

  return {
    publish: async (channel, message) => {
      await guarded(command, (r) => r.publish(prefix + channel, message));
    },
    subscribe: async (channel, handler) => {
      const name = prefix + channel;
      const conn = connection();
      let entry = channels.get(name);
      if (!entry) {
        const subscribed = guarded(conn, (r) => r.subscribe(name)).then(() => undefined);
        const created: Channel = { subs: new Set(), subscribed };
        entry = created;
        channels.set(name, created);
        subscribed.catch(() => {
          if (channels.get(name) === created) channels.delete(name);
        });
      }
      const sub = { handler };
      entry.subs.add(sub);
      try {
        await entry.subscribed;
      } catch (err) {
        entry.subs.delete(sub);
        throw err;
      }
      const current = entry;
      let active = true;
      return async () => {
        if (!active) return;
        active = false;
        current.subs.delete(sub);
        if (current.subs.size > 0 || channels.get(name) !== current) return;
        channels.delete(name);
        // Issued synchronously after the delete, so a SUBSCRIBE from a newer subscribe() queues behind it.
        // If Redis is down this fails and ioredis may resubscribe later: harmless, nobody listens locally.
        await conn.redis.unsubscribe(name).catch(() => undefined);
      };
    },
    close: async () => {
      closed = true;
      channels.clear();
      await subscriber?.close();
    },
  };
}
