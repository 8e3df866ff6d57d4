// A hub connection that comes back by itself after network loss, to any listed node, and runs the
// client's resume step on every new connection before it is used (the .NET SDK's ReconnectingConnection).
import { HttpTransportType, HubConnection, HubConnectionBuilder, HubConnectionState, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { delay, refusalOf, TrustLineError } from './errors.js';

export type ConnectionStatus = 'connected' | 'reconnecting' | 'closed';

/** How a client connects and reconnects. */
export interface ClientOptions {
  /** Other nodes of the same deployment, tried in turn on reconnect (the first server comes first). */
  fallbackServers?: string[];
  /** Delays between reconnect attempts, ms; after the last the client gives up and reports it. */
  reconnectDelays?: number[];
  /** Milliseconds since the epoch: for certificate checks and gap timers. */
  now?: () => number;
  /** Builds the hub connection; tests may wrap it. */
  buildConnection?: (url: string, accessToken?: () => string) => HubConnection;
}

export const DEFAULT_RECONNECT_DELAYS = [0, 250, 1000, 2000, 5000, 10000, 20000, 30000, 30000];

/** WebSockets only, no negotiation: a reconnect may land on any node (as the .NET SDK does). */
export function buildHubConnection(url: string, accessToken?: () => string): HubConnection {
  return new HubConnectionBuilder()
    .withUrl(url, {
      transport: HttpTransportType.WebSockets,
      skipNegotiation: true,
      ...(accessToken ? { accessTokenFactory: accessToken } : {}),
    })
    .withHubProtocol(new MessagePackHubProtocol())
    .configureLogging(LogLevel.None) // never log: messages could carry session ids
    .build();
}

/** Joins a base address and a path (`http://host:5080` + `/hubs/seeker`). */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

export class ReconnectingConnection {
  private current: HubConnection | null = null;
  private serverIndex = 0;
  private reconnecting = false;
  private stopped = false;
  private activeWaiters: Array<{ resolve: (h: HubConnection) => void; reject: (e: unknown) => void }> = [];
  private isActive = false;

  constructor(
    private readonly servers: string[],
    private readonly path: string,
    private readonly options: ClientOptions,
    private readonly accessToken: (() => string) | undefined,
    private readonly register: (hub: HubConnection) => void,
    private readonly resume: (hub: HubConnection) => Promise<void>,
    private readonly report: (status: ConnectionStatus) => void,
  ) {}

  get hub(): HubConnection {
    if (!this.current) throw new Error('Not connected yet.');
    return this.current;
  }

  async start(signal?: AbortSignal): Promise<void> {
    const hub = await this.connect(signal);
    this.activate(hub);
    this.report('connected');
  }

  /** Makes a (resumed) connection the one every call goes through. */
  activate(hub: HubConnection): void {
    this.current = hub;
    this.isActive = true;
    for (const w of this.activeWaiters.splice(0)) w.resolve(hub);
  }

  /** The current connection once usable: waits while reconnecting. */
  active(signal?: AbortSignal): Promise<HubConnection> {
    if (this.isActive && this.current) return Promise.resolve(this.current);
    if (this.stopped) return Promise.reject(new Error('The connection could not be restored.'));
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.activeWaiters.push(waiter);
      signal?.addEventListener('abort', () => {
        this.activeWaiters = this.activeWaiters.filter((w) => w !== waiter);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Cuts the connection as a network loss would; it then comes back by itself, to `preferServer` first if given. */
  async drop(preferServer?: number): Promise<void> {
    if (preferServer !== undefined) this.serverIndex = preferServer;
    await this.current?.stop();
  }

  async dispose(): Promise<void> {
    this.stopped = true;
    const hub = this.current;
    this.current = null;
    this.isActive = false;
    await hub?.stop().catch(() => undefined);
    this.giveUp();
  }

  private get server(): string {
    return this.servers[this.serverIndex % this.servers.length]!;
  }

  private async connect(signal?: AbortSignal): Promise<HubConnection> {
    const build = this.options.buildConnection ?? buildHubConnection;
    const hub = build(joinUrl(this.server, this.path), this.accessToken);
    this.register(hub);
    hub.onclose(() => void this.onClosed(hub));
    signal?.throwIfAborted();
    const abort = () => void hub.stop();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await hub.start();
      signal?.throwIfAborted();
      return hub;
    } catch (e) {
      await hub.stop().catch(() => undefined);
      throw e;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  private async onClosed(hub: HubConnection): Promise<void> {
    if (this.stopped) return;
    // Only the current connection's loss starts a reconnect; one that fails during our own resume is handled there.
    if (hub !== this.current || this.reconnecting) return;
    this.reconnecting = true;
    try {
      await this.reconnect();
    } finally {
      this.reconnecting = false;
    }
  }

  private async reconnect(): Promise<void> {
    this.isActive = false;
    this.report('reconnecting');
    for (const wait of this.options.reconnectDelays ?? DEFAULT_RECONNECT_DELAYS) {
      if (this.stopped) return;
      let next: HubConnection | null = null;
      try {
        await delay(wait);
        if (this.stopped) return;
        next = await this.connect();
        // The client resumes on `next` and activates it under its send gate, so no send of its own can
        // reach the new node before the resume or slip past the resend.
        await this.resume(next);
        if (this.stopped) {
          await next.stop();
          return;
        }
        const old = this.current;
        this.activate(next);
        this.report('connected');
        if (old && old !== next && old.state !== HubConnectionState.Disconnected) await old.stop().catch(() => undefined);
        return;
      } catch (e) {
        if (refusalOf(e) instanceof TrustLineError) {
          // The server refused the resume (grace over, session ended): nothing to come back to.
          await next?.stop().catch(() => undefined);
          break;
        }
        this.serverIndex++; // that node is gone: try the next one
        if (next && next !== this.current) await next.stop().catch(() => undefined);
      }
    }
    this.giveUp();
  }

  private giveUp(): void {
    this.isActive = false;
    for (const w of this.activeWaiters.splice(0)) w.reject(new Error('The connection could not be restored.'));
    this.report('closed');
  }
}
