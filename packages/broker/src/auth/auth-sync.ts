/**
 * The broker's copy of the coordinator's auth state (token keys, principals, ACLs): fetched
 * at start and whenever a heartbeat answer carries a newer `authVersion`, so a deleted
 * principal or a changed ACL takes effect here within one heartbeat of the change. While the
 * coordinator cannot be reached the last state stays in force; tokens still expire.
 */
import { type AuthStateResponse, COORDINATOR_ROUTES, isTesseraError, type JsonHttpClient, TesseraError } from '@tessera/protocol';
import { type AccessControl, type Caller, ClientAuth, type Logger, type ServiceMetrics } from '@tessera/service';
import { BROKER_RULES } from './access-rules.js';

export class AuthSync {
  readonly clientAuth = new ClientAuth();
  private running: Promise<void> | undefined;
  /** A newer version was announced while a fetch ran: fetch again when it ends. */
  private again = false;

  constructor(
    private readonly http: JsonHttpClient,
    private readonly coordinatorUrl: string,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  get loaded(): boolean {
    return this.clientAuth.loaded;
  }

  /**
   * A heartbeat answer's `authVersion`: fetches the state when it differs from the one applied
   * (a coordinator restored from an older backup counts lower, and is believed all the same).
   */
  seen(version: number | undefined): void {
    if (version === undefined || (this.loaded && version === this.clientAuth.version)) return;
    if (this.running) this.again = true;
    else void this.refresh();
  }

  /** One fetch at a time, then one more if a change was announced meanwhile; a failure is logged and retried on the next heartbeat. */
  refresh(): Promise<void> {
    this.running ??= (async () => {
      try {
        do {
          this.again = false;
          const state = await this.http.get<AuthStateResponse>(this.coordinatorUrl + COORDINATOR_ROUTES.authState, {
            timeoutMs: this.timeoutMs,
          });
          this.clientAuth.apply(state);
        } while (this.again);
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'cannot fetch the auth state; keeping the last one');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /**
   * Throws FORBIDDEN (counted by principal) unless `caller` may produce to `topic`: the check a
   * frame of many partitions needs per partition, after its route admitted the caller.
   */
  authorizeProduce(caller: Caller, membersUnchecked: boolean, topic: string, metrics: ServiceMetrics): void {
    try {
      this.clientAuth.authorize({ kind: 'topic', operation: 'produce', topics: [topic] }, caller, membersUnchecked);
    } catch (error) {
      if (isTesseraError(error, 'FORBIDDEN')) metrics.authDenied.inc({ principal: caller.kind === 'principal' ? caller.name : caller.kind });
      throw error;
    }
  }

  /** The broker's access control: until the first state arrives, clients get 503 (members pass). */
  accessControl(): AccessControl {
    const access = this.clientAuth.accessControl(BROKER_RULES);
    return {
      identify: access.identify,
      authorize: (request) => {
        if (!this.loaded && request.caller.kind !== 'member') {
          const rule = request.route === undefined ? undefined : BROKER_RULES[`${request.method} ${request.route}`];
          const requirement = rule?.(request);
          if (requirement?.kind !== 'public' && requirement?.kind !== 'member') {
            throw new TesseraError('UNAVAILABLE', 'the broker has not received the cluster auth state yet');
          }
        }
        access.authorize(request);
      },
    };
  }
}
