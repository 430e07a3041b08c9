/**
 * walnats gateway: a GraphQL server interpreted from the Postgres catalog at run time.
 * HTTP (GraphiQL, queries, mutations, SSE subscriptions) through graphql-yoga, and
 * graphql-ws over `ws`. See docs/gateway.md.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createYoga, type Plugin } from 'graphql-yoga';
import { GraphQLError, type ExecutionArgs, type ValidationRule, Kind, type ASTNode } from 'graphql/index.js';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import pg from 'pg';
import type { Logger } from 'pino';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { streamSubjects } from '../events/subject.ts';
import { AuthError, Authenticator, authConfigured, lowerHeaders, type JwtOptions, type Principal } from './auth.ts';
import { GatewayEngine, type RequestState } from './engine.ts';
import type { NameMappingReport } from './model.ts';
import { loadPermissionsFile, validatePermissions, type PermissionsSpec } from './permissions.ts';
import { loadValidators } from './validators.ts';
import { ConfigError } from '../config.ts';
import { localGraphiql } from './graphiql.ts';
import { RateLimitError, RateLimiter } from './ratelimit.ts';
import { gatewayMetrics } from './metrics.ts';
import { Fanout, exactFrames, shareable, type ShareTicket } from './fanout.ts';
import { stringifyLossless } from './json.ts';
import { fastPost, type HandOver } from './fast-post.ts';

export type { NameMappingReport } from './model.ts';
export type { PermissionsSpec } from './permissions.ts';
export { loadPermissionsFile } from './permissions.ts';

export interface GatewayOptions {
  pgUrl: string;
  nc: NatsConnection;
  stream: string;
  subjectPrefix: string;
  database: string;
  schemas: string[];
  adminSecret?: string;
  jwt?: JwtOptions;
  anonymousRole?: string;
  /** Parsed permissions, or the path of a YAML/JSON permissions file. */
  permissions?: PermissionsSpec | string;
  validatorsDir?: string;
  maxDepth: number;
  maxRows: number;
  statementTimeoutMs: number;
  introspection: boolean;
  /** Operations per second each non-admin role may start (token bucket); 0/absent = unlimited. Roles may override it. */
  rateLimit?: number;
  production: boolean;
  logger: Logger;
  metrics?: { registry: Registry };
  /** Catalog polling interval (fallback for schema changes that emit no CDC schema event); 0 = off. Default 30 s. */
  catalogPollMs?: number;
  /** Connections of the gateway's Postgres pool. Default 10. */
  poolSize?: number;
  /**
   * Run repeated read statements as named prepared statements (per connection, bounded).
   * Default true; turn off behind a pooler that cannot keep them (PgBouncer in transaction mode
   * before 1.21).
   */
  preparedStatements?: boolean;
  /**
   * Serve POSTed JSON queries answered from Postgres's JSON text before graphql-yoga (see
   * fast-post.ts). Default true; false sends every request through yoga (the equivalence
   * tests compare the two).
   */
  fastPath?: boolean;
}

export interface GatewayReport extends NameMappingReport {
  permissionProblems: string[];
}

export interface Gateway {
  handle(req: IncomingMessage, res: ServerResponse): void;
  attachWebSocket(server: Server, path?: string): void;
  ready(): boolean;
  report(): GatewayReport;
  /** Re-reads the catalog now; true when the schema was swapped. */
  refresh(): Promise<boolean>;
  /** Counters for tests and diagnostics. */
  stats(): { statements: number; subscriptions: number; schemaVersion: number; eventExecutions: number; rawReads: number; preparedStatements: number; cachedStatements: number; cachedStatementHits: number; fastPath: number };
  /**
   * Shutdown, first step: stops taking WebSockets and closes the open ones with 1001 ("going
   * away"); a client that has not finished the close handshake after `graceMs` is cut off.
   * HTTP requests still running keep their database pool until close().
   */
  closeSubscriptions(graceMs?: number): Promise<void>;
  /** Everything: subscriptions (as closeSubscriptions), feeds, the database pool. */
  close(): Promise<void>;
}

/** How long a WebSocket client gets to answer the close handshake at shutdown. */
const SOCKET_CLOSE_GRACE_MS = 2000;

export async function createGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.logger.child({ component: 'gateway' });
  const auth = new Authenticator({ adminSecret: opts.adminSecret, jwt: opts.jwt, anonymousRole: opts.anonymousRole });
  if (!authConfigured({ adminSecret: opts.adminSecret, jwt: opts.jwt })) {
    if (opts.production) {
      throw new ConfigError([{ key: 'admin_secret', source: 'NODE_ENV=production', message: 'no authentication configured (admin_secret, jwt_secret, jwt_public_key or jwt_jwks_url): refusing to start an open gateway' }]);
    }
    log.warn('GATEWAY IS OPEN: no admin secret or JWT configured, every request has the admin role. Set admin_secret and/or jwt_* before exposing it.');
  }
  let permissions: PermissionsSpec | undefined;
  if (typeof opts.permissions === 'string') permissions = loadPermissionsFile(opts.permissions);
  else if (opts.permissions) {
    const problems = validatePermissions(opts.permissions);
    if (problems.length) throw new Error(`permissions:\n  ${problems.join('\n  ')}`);
    permissions = opts.permissions;
  }
  const validators = await loadValidators(opts.validatorsDir);

  const pool = new pg.Pool({
    connectionString: opts.pgUrl,
    max: opts.poolSize ?? 10,
    statement_timeout: opts.statementTimeoutMs || undefined,
    options: '-c TimeZone=UTC -c IntervalStyle=iso_8601 -c DateStyle=ISO,YMD -c extra_float_digits=1',
    application_name: 'walnats-gateway',
  });
  pool.on('error', (err) => log.warn({ err }, 'idle Postgres connection failed'));

  const metrics = gatewayMetrics(opts.metrics?.registry);

  const engine = new GatewayEngine({
    pool,
    schemas: opts.schemas,
    permissions,
    validators,
    maxRows: opts.maxRows,
    introspection: opts.introspection,
    rateLimit: opts.rateLimit,
    source: { nc: opts.nc, stream: opts.stream, prefix: opts.subjectPrefix, database: opts.database, logger: log },
    logger: log,
    onDelivery: (t, n) => metrics.delivered(t, n),
    onResolve: (s) => metrics.resolved(s),
    onSubscriptions: () => metrics.subscriptions(openSubscriptions()),
    preparedStatements: opts.preparedStatements,
  });
  /** Shared change-event executions of graphql-ws subscribers (see fanout.ts). */
  const fanout = new Fanout(() => metrics.subscriptions(openSubscriptions()));
  const openSubscriptions = () => engine.activeSubscriptions + fanout.extraSubscribers;
  /** Per-object ids for share keys (a schema swap gives new objects, hence new keys). */
  const ids = new WeakMap<object, number>();
  let nextId = 0;
  const idOf = (o: object) => {
    let n = ids.get(o);
    if (n === undefined) ids.set(o, (n = ++nextId));
    return n;
  };

  metrics.subscriptions(0);

  let version = 0;
  const logReport = () => {
    const r = engine.model.report;
    log.info({ tables: r.tables, mappings: r.mappings, collisions: r.collisions, skipped: r.skipped }, `gateway schema v${version}: ${r.tables} tables and views, ${r.mappings.filter((x) => x.kind !== 'relationship').length} renamed, ${r.collisions.length} collisions, ${r.skipped.length} skipped`);
    for (const c of r.collisions) log.warn({ collision: c }, `name collision: ${c.wanted} wanted ${c.name} (taken by ${c.claimedBy}); exposed as ${c.resolvedAs}`);
    for (const p of engine.permissionProblems) log.warn(`permissions: ${p}`);
    for (const p of engine.validatorProblems) log.warn(`validators: ${p}`);
  };
  await engine.refresh();
  version = 1;
  logReport();

  // Schema changes: CDC schema events, with catalog polling as the fallback.
  let refreshing: Promise<boolean> | null = null;
  let again = false;
  const refresh = async (): Promise<boolean> => {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      let swapped = false;
      do {
        again = false;
        try {
          if (await engine.refresh()) {
            swapped = true;
            version++;
            logReport();
          }
        } catch (err) {
          log.error({ err }, 'schema refresh failed; the previous schema stays in service');
        }
      } while (again);
      return swapped;
    })().finally(() => (refreshing = null));
    return refreshing;
  };
  let schemaSub: Subscription | undefined;
  try {
    schemaSub = opts.nc.subscribe(streamSubjects(opts.subjectPrefix, opts.database)[0].slice(0, -1) + '$schema.>', {
      callback: () => {
        void refresh();
      },
    });
  } catch (err) {
    log.warn({ err }, 'cannot subscribe to schema events; relying on catalog polling');
  }
  const pollMs = opts.catalogPollMs ?? 30_000;
  const poll = pollMs > 0 ? setInterval(() => void refresh(), pollMs) : undefined;
  poll?.unref();

  // ── yoga ──────────────────────────────────────────────────────────────────────────
  const authenticate = async (headers: Record<string, string | undefined>) => auth.authenticate(headers);

  const limiter = new RateLimiter();
  /** Takes a token of the state's role (or of its user, with `by`); throws when there is none. */
  const admit = (st: RequestState) => {
    const l = st.access.rateLimit;
    if (!(l.rate > 0)) return;
    const by = l.by ? st.principal.session[l.by] : undefined;
    const wait = limiter.take(by === undefined ? st.principal.role : `${st.principal.role}\u0000${by}`, l);
    if (wait > 0) {
      metrics.rateLimited(st.principal.role);
      throw new RateLimitError(st.principal.role, l, wait);
    }
  };

  const states = new WeakMap<Request, RequestState>();
  /** The request's state: set on the context for graphql-ws, found by its Request for HTTP. */
  const stateFrom = (context: unknown) => {
    const c = context as { walnats?: RequestState; request?: Request };
    return c.walnats ?? (c.request ? states.get(c.request) : undefined);
  };
  /** What the fast path did for a request it handed to yoga (fast-post.ts), by node request. */
  const handOver = new WeakMap<IncomingMessage, HandOver>();
  const handedOver = (serverContext: unknown) => {
    const req = (serverContext as { req?: IncomingMessage } | undefined)?.req;
    return req ? handOver.get(req) : undefined;
  };
  /** Authenticates each HTTP request and gives it its role's current schema. */
  const useWalnatsAuth = (): Plugin => ({
    onRequestParse({ request, serverContext }) {
      const h = handedOver(serverContext);
      return {
        async onRequestParseDone() {
          if (h?.refusal) throw h.refusal;
          if (h?.state) {
            states.set(request, h.state); // authenticated and admitted once, by the fast path
            return;
          }
          const p = await authenticate(lowerHeaders(request.headers));
          const st = engine.newState(p);
          admit(st);
          states.set(request, st);
        },
      };
    },
    onParse({ context, setParsedDocument }) {
      // the fast path's document: a statement it ran is keyed by it (never run twice)
      const d = handedOver(context)?.document;
      if (d) setParsedDocument(d);
    },
    onEnveloped({ context, setSchema }) {
      const st = stateFrom(context);
      if (!st) throw new AuthError('authentication required');
      setSchema(st.rs.schema);
    },
  });
  const useLimits = (): Plugin => ({
    onValidate({ addValidationRule, context }) {
      const st = stateFrom(context);
      addValidationRule(depthRule(opts.maxDepth));
      addValidationRule(rootTypesRule);
      if (!st || !st.access.introspection) addValidationRule(noIntrospectionRule);
    },
  });
  const useMutationTransaction = (): Plugin => ({
    onSubscribe({ args }) {
      if ((args.rootValue as { share?: unknown } | undefined)?.share) return; // counted per subscriber in onSubscribe of graphql-ws
      metrics.request('subscription');
    },
    onExecute({ args }) {
      metrics.request(operationType(args));
      return {
        async onExecuteDone({ result, setResult }) {
          const st = (args.contextValue as { walnats?: RequestState }).walnats;
          if (!st?.tx) return;
          const r = result as { errors?: readonly GraphQLError[] };
          const failed = !!r.errors?.length;
          const err = await engine.finishTransaction(st, !failed);
          if (failed) setResult({ data: null, errors: r.errors });
          else if (err) setResult({ data: null, errors: [err instanceof GraphQLError ? err : new GraphQLError('commit failed')] });
        },
      };
    },
  });

  /**
   * Queries over HTTP whose statement's JSON text is already the response (engine.rawQuery)
   * skip graphql-js execution and JSON.stringify: yoga serializes the result through its
   * `stringify`, which returns that text. Everything before execution (auth, rate limit, parse,
   * validation with the depth and introspection rules) and after it (status, headers, result
   * processors) stays yoga's. Anything else executes as before.
   */
  const useRawReads = (): Plugin => ({
    onExecute({ args, executeFn, setExecuteFn }) {
      const ctx = args.contextValue as { walnats?: RequestState; request?: unknown; socket?: unknown };
      const st = ctx.walnats;
      if (!st || !ctx.request || ctx.socket) return;
      const fallback = executeFn;
      setExecuteFn(async (a: ExecutionArgs) => {
        const raw = await engine.rawQuery(st, a.schema, a.document, a.operationName, a.variableValues as Record<string, unknown> | undefined);
        if (!raw) return fallback(a);
        const result = {} as { data: Record<string, unknown> };
        let data: Record<string, unknown> | undefined;
        Object.defineProperty(result, 'data', { enumerable: true, get: () => (data ??= raw.data()) });
        Object.defineProperty(result, 'stringify', { enumerable: false, value: () => raw.body });
        return result;
      });
    },
  });

  /**
   * Query results holding jsonb numbers a double cannot carry (JsonNumber) are written with
   * their exact tokens: yoga serializes a result through its `stringify` when it has one.
   */
  const exactResult = (st: RequestState | undefined, result: unknown) => {
    if (!st?.exactNumbers || !result || typeof result !== 'object' || Symbol.asyncIterator in result) return;
    if (!Object.prototype.hasOwnProperty.call(result, 'stringify')) Object.defineProperty(result, 'stringify', { enumerable: false, value: stringifyLossless });
  };
  const useLosslessNumbers = (): Plugin => ({
    // subscriptions (SSE, graphql-ws, shared executions): per result, as its payload was marked
    onSubscribe({ args }) {
      return {
        onSubscribeResult() {
          return {
            onNext({ result }) {
              exactResult((args.contextValue as { walnats?: RequestState }).walnats, result);
            },
          };
        },
      };
    },
    onExecute({ args }) {
      return {
        onExecuteDone({ result }) {
          exactResult((args.contextValue as { walnats?: RequestState }).walnats, result);
        },
      };
    },
  });

  /**
   * yoga's request body limit (25 MB), without its cost on every request: yoga pipes each body
   * through a TransformStream (a stream pipeline and an AbortController per request, ~10 % of the
   * gateway's CPU under a query load). A valid Content-Length is enforced by Node's HTTP parser,
   * which never reads past it, so the limit is checked on the header alone then; bodies without
   * one (chunked) are counted as yoga does.
   */
  const useBodyLimit = (limit = BODY_LIMIT): Plugin => ({
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const tooLarge = () => new GraphQLError('Request body too large', { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });
      const length = request.headers.get('content-length');
      if (length != null) {
        if (!/^\d+$/.test(length)) throw new GraphQLError('Content-Length header is invalid.', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
        if (Number(length) > limit) throw tooLarge();
        if (!request.headers.has('transfer-encoding')) return;
      }
      if (requestParser == null || request.body == null) return;
      const parse = requestParser;
      setRequestParser((req) => {
        const body = req.body;
        if (!body) return parse(req);
        const TS = body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        let read = 0;
        const limited = body.pipeThrough(new TS({
          transform(chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) {
            read += chunk.byteLength;
            if (read > limit) controller.error(tooLarge());
            else controller.enqueue(chunk);
          },
        }));
        return parse(new fetchAPI.Request(req.url, { method: req.method, headers: req.headers, signal: req.signal, body: limited, duplex: 'half' } as RequestInit));
      });
    },
  });

  const fast = opts.fastPath === false ? undefined : fastPost({
    yoga: (req, res) => yoga(req, res),
    handOver,
    authenticate,
    newState: (p) => engine.newState(p),
    admit,
    rules: (st) => [depthRule(opts.maxDepth), rootTypesRule, ...(st.access.introspection ? [] : [noIntrospectionRule])],
    rawQuery: (st, schema, document, operationName, variables) => engine.rawQuery(st, schema, document, operationName, variables),
    counted: () => metrics.request('query'),
    endpoint: '/graphql',
    bodyLimit: BODY_LIMIT,
    lowerHeaders,
    onError: (err) => log.error({ err }, 'unexpected error in a GraphQL request'),
  });

  // What GraphiQL shows first (yoga's own text would read "walnats is an in-browser tool…").
  const GRAPHIQL_DEFAULT_QUERY = [
    '# walnats: every table of this database as GraphQL, read and written straight in Postgres,',
    '# with subscriptions fed by the change events on NATS JetStream. Open the docs (top left)',
    '# for the tables; with an admin secret or a token, put it in Headers below, e.g.',
    '#   {"x-walnats-admin-secret": "…"}   or   {"authorization": "Bearer …"}',
    '#',
    '# For a table `orders`:',
    '#   query { orders(where: {qty: {_gt: 1}}, order_by: {id: desc}, limit: 10) { id qty } }',
    '#   mutation { insert_orders_one(object: {qty: 2}) { id } }',
    '#   subscription { orders_events(ops: [INSERT, UPDATE, DELETE]) { op old { id } new { id qty } cursor } }',
    '#   subscription { orders(where: {qty: {_gt: 1}}, limit: 10) { id qty } }   # a live query',
    '',
  ].join('\n');
  const graphiql = localGraphiql('/graphql');
  if (!graphiql) log.warn('@graphql-yoga/graphiql is not installed: the GraphiQL page loads its assets from unpkg.com and needs internet access');

  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }>({
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: { title: 'walnats', subscriptionsProtocol: 'WS', defaultQuery: GRAPHIQL_DEFAULT_QUERY },
    // YogaGraphiQL 4 starts from `query` (a `?query=` in the URL first), not `defaultQuery`.
    renderGraphiQL: graphiql ? (o) => graphiql.render({ ...o, query: (o as { defaultQuery?: string }).defaultQuery }) : undefined,
    logging: false,
    maskedErrors: {
      isDev: false,
      maskError(error, message) {
        const orig = (error as GraphQLError).originalError ?? error;
        if (orig instanceof GraphQLError) return error as GraphQLError;
        if (error instanceof GraphQLError && !error.originalError) return error;
        log.error({ err: orig }, 'unexpected error in a GraphQL request');
        return new GraphQLError(message, { nodes: (error as GraphQLError).nodes, path: (error as GraphQLError).path });
      },
    },
    context: (initial) => {
      const st = stateFrom(initial);
      if (!st) throw new AuthError('authentication required');
      const vars = (initial as { params?: { variables?: unknown } }).params?.variables;
      if (vars && typeof vars === 'object' && !Array.isArray(vars)) st.rawVariables = vars as Record<string, unknown>;
      return { walnats: st };
    },
    maxRequestBodySize: false, // useBodyLimit: the same limit, cheaper
    plugins: [useWalnatsAuth(), useLimits(), useMutationTransaction(), useBodyLimit(), useRawReads(), useLosslessNumbers()],
  });

  // ── graphql-ws ────────────────────────────────────────────────────────────────────
  const MAX_TIMEOUT_MS = 2 ** 31 - 1;
  interface WsExtra { principal?: Principal; headers: Record<string, string | undefined>; timer?: NodeJS.Timeout; request: IncomingMessage; socket: WebSocket; expires?: number }
  /** Closes the socket when the earliest credential it was given expires. */
  const expireAt = (extra: WsExtra, p: Principal) => {
    if (!p.expiresAt || (extra.expires && extra.expires <= p.expiresAt)) return;
    if (extra.timer) clearTimeout(extra.timer);
    extra.expires = p.expiresAt;
    const at = p.expiresAt;
    // Node runs a timeout longer than 2^31-1 ms (~24.8 days) after 1 ms: wait in steps.
    const arm = () => {
      const left = at - Date.now();
      extra.timer = left > MAX_TIMEOUT_MS ? setTimeout(arm, MAX_TIMEOUT_MS) : setTimeout(() => extra.socket.close(4403, 'Forbidden: token expired'), Math.max(0, left));
      extra.timer.unref?.();
    };
    arm();
  };
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Set<WebSocket>();
  useServer<Record<string, unknown>, { principal?: Principal; timer?: NodeJS.Timeout }>(
    {
      // results holding exact jsonb numbers are written by exactFrames (graphql-ws would JSON.stringify them)
      execute: async (args: ExecutionArgs) => {
        const root = args.rootValue as { execute: (a: ExecutionArgs) => unknown; frames: { id: string; socket: WebSocket } };
        return exactFrames(await root.execute(args), root.frames.id, root.frames.socket) as never;
      },
      subscribe: async (args: ExecutionArgs) => {
        const root = args.rootValue as { subscribe: (a: ExecutionArgs) => unknown; share?: ShareTicket; frames: { id: string; socket: WebSocket } };
        if (!root.share) return exactFrames(await root.subscribe(args), root.frames.id, root.frames.socket) as never;
        const t = root.share;
        return fanout.join(t, () => {
          (args.contextValue as { walnats: RequestState }).walnats.audience = () => fanout.audience(t.key);
          return root.subscribe(args);
        }) as never;
      },
      onConnect: async (ctx) => {
        const req = (ctx.extra as unknown as { request: IncomingMessage }).request;
        const params = (ctx.connectionParams ?? {}) as Record<string, unknown>;
        const headers = {
          ...lowerHeaders(req.headers as Record<string, unknown>),
          ...lowerHeaders((params.headers as Record<string, unknown>) ?? {}),
          ...lowerHeaders(params),
        };
        const extra = ctx.extra as unknown as WsExtra;
        extra.headers = headers;
        try {
          const p = await authenticate(headers);
          extra.principal = p;
          expireAt(extra, p);
          return true;
        } catch (e) {
          // No credentials at all: the connection may still carry them per operation, in
          // `extensions.headers` (as GraphiQL sends what its Headers tab holds). Wrong ones refuse it.
          if (!hasCredentials(headers)) return true;
          log.info({ reason: (e as Error).message }, 'websocket connection refused');
          return false;
        }
      },
      onClose: (ctx) => {
        const extra = ctx.extra as unknown as { timer?: NodeJS.Timeout };
        if (extra.timer) clearTimeout(extra.timer);
      },
      onSubscribe: async (ctx, _id, payload) => {
        const r = await (async () => {
          const extra = ctx.extra as unknown as WsExtra;
          let p = extra.principal;
          const ext = (payload.extensions as { headers?: unknown } | undefined)?.headers;
          const opHeaders = ext && typeof ext === 'object' ? lowerHeaders(ext as Record<string, unknown>) : {};
          if (hasCredentials(opHeaders) || (p && Object.keys(opHeaders).length)) {
            try {
              p = await authenticate({ ...extra.headers, ...opHeaders });
            } catch (e) {
              return [e instanceof GraphQLError ? e : new AuthError('authentication failed')];
            }
            expireAt(extra, p);
          }
          if (!p) return [new AuthError('authentication required')];
          if (p.expiresAt && p.expiresAt <= Date.now()) {
            extra.socket.close(4403, 'Forbidden: token expired');
            return [new GraphQLError('token expired')];
          }
          const state = engine.newState(p);
          try {
            admit(state);
          } catch (e) {
            return [e as GraphQLError];
          }
          const enveloped = yoga.getEnveloped({ ...ctx, req: extra.request, socket: extra.socket, params: payload, walnats: state });
          const schema = state.rs.schema; // explicit: the per-role, current schema
          let document;
          try {
            document = enveloped.parse(payload.query);
          } catch (e) {
            return [e instanceof GraphQLError ? e : new GraphQLError('syntax error')];
          }
          const errors = enveloped.validate(schema, document);
          if (errors.length) return errors;
          const contextValue = await enveloped.contextFactory();
          let share: ShareTicket | undefined;
          if (shareable(schema, document, payload.operationName, state.rs.roots)) {
            // Same schema object (role and version), same session, same operation: one execution.
            const who = p.admin ? '*admin' : p.role;
            const key = `${idOf(state.rs)}\u0000${who}\u0000${JSON.stringify(p.session)}\u0000${payload.operationName ?? ''}\u0000${JSON.stringify(payload.variables ?? null)}\u0000${payload.query}`;
            share = { key, id: _id, socket: extra.socket };
            metrics.request('subscription'); // a joiner does not run yoga's subscribe
          }
          return {
            schema,
            document,
            operationName: payload.operationName,
            variableValues: payload.variables,
            contextValue: { ...contextValue, walnats: state },
            rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe, share, frames: { id: _id, socket: extra.socket } },
          } as ExecutionArgs;
        })();
        // Every error path: the client reads errors as over HTTP.
        return Array.isArray(r) ? r.map(forSocket) : r;
      },
    },
    wss,
  );

  /**
   * An error as a WebSocket client gets it: without yoga's `http` extension (a status for the
   * HTTP response, which yoga strips when it writes one), so it reads as it does over HTTP.
   */
  function forSocket(e: GraphQLError): GraphQLError {
    const ext = e.extensions as Record<string, unknown> | undefined;
    if (!ext || !('http' in ext)) return e;
    const { http: _http, ...rest } = ext;
    return new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, path: e.path, originalError: e.originalError, extensions: rest });
  }
  wss.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  let closed = false;
  let socketsClosed: Promise<void> | undefined;
  const servers = new Set<Server>();

  function closeSubscriptions(graceMs = SOCKET_CLOSE_GRACE_MS): Promise<void> {
    socketsClosed ??= (async () => {
      for (const s of sockets) s.close(1001, 'gateway shutting down');
      // ws waits up to 30 s for a close frame from each client; a stuck one must not hold
      // the whole shutdown (and the daemon's drain after it) that long.
      const cutOff = setTimeout(() => {
        for (const s of sockets) s.terminate();
      }, graceMs);
      cutOff.unref();
      await new Promise<void>((r) => wss.close(() => r()));
      clearTimeout(cutOff);
    })();
    return socketsClosed;
  }

  return {
    handle(req, res) {
      if (graphiql?.serve(req, res)) return;
      if (fast?.handle(req, res)) return;
      void yoga(req, res);
    },
    attachWebSocket(server, path = '/graphql') {
      servers.add(server);
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname !== path) return;
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      });
    },
    ready: () => !closed && !!engine.model,
    report: () => ({ ...engine.model.report, permissionProblems: engine.permissionProblems }),
    refresh,
    stats: () => ({
      statements: engine.statements, subscriptions: openSubscriptions(), schemaVersion: version, eventExecutions: engine.eventExecutions,
      rawReads: engine.rawReads, preparedStatements: engine.preparedCount(),
      cachedStatements: engine.sqlCacheStats().size, cachedStatementHits: engine.sqlCacheStats().hits,
      fastPath: fast?.answered ?? 0,
    }),
    closeSubscriptions,
    async close() {
      if (closed) return;
      closed = true;
      if (poll) clearInterval(poll);
      schemaSub?.unsubscribe();
      await closeSubscriptions();
      fanout.close();
      engine.close();
      await refreshing?.catch(() => {});
      await pool.end();
    },
  };
}

/** Request bodies above this many bytes are refused (413), as yoga's default limit. */
const BODY_LIMIT = 25_000_000;

function hasCredentials(h: Record<string, string | undefined>): boolean {
  return h['x-walnats-admin-secret'] !== undefined || h['x-hasura-admin-secret'] !== undefined || h.authorization !== undefined;
}

function operationType(args: ExecutionArgs): string {
  const op = args.document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION && (!args.operationName || d.name?.value === args.operationName));
  return (op as { operation?: string } | undefined)?.operation ?? 'unknown';
}

/**
 * Introspection off for a role: one error per document, `introspection-disabled`, at the first
 * `__schema` or `__type` (graphql-js's own rule reports every nested field of it again, under
 * the generic validation code). `__typename` stays allowed.
 */
export const noIntrospectionRule: ValidationRule = function noIntrospectionRule(context) {
  let reported = false;
  return {
    Field(node) {
      if (reported || (node.name.value !== '__schema' && node.name.value !== '__type')) return;
      reported = true;
      context.reportError(new GraphQLError('GraphQL introspection is disabled for this role', { nodes: [node], extensions: { code: 'introspection-disabled' } }));
    },
  };
};

/**
 * A mutation (or subscription) for a role whose schema has none: a permission error that
 * says so, at validation, instead of graphql-js's "Schema is not configured to execute
 * mutation operation." at execution.
 */
export const rootTypesRule: ValidationRule = function rootTypesRule(context) {
  return {
    OperationDefinition(op) {
      const schema = context.getSchema();
      if (op.operation === 'mutation' && !schema.getMutationType()) {
        context.reportError(new GraphQLError('this role has no mutations: no insert, update or delete permission on any table', { nodes: [op], extensions: { code: 'permission-error' } }));
      } else if (op.operation === 'subscription' && !schema.getSubscriptionType()) {
        context.reportError(new GraphQLError('this role has no subscriptions: no select permission on any table', { nodes: [op], extensions: { code: 'permission-error' } }));
      }
    },
  };
};

/** Rejects documents nested deeper than `max` (fragments followed). */
export function depthRule(max: number): ValidationRule {
  return (context) => {
    const fragments = new Map(context.getDocument().definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
    const depth = (node: ASTNode, seen: Set<string>): number => {
      if (node.kind === Kind.FIELD) {
        if (node.name.value.startsWith('__')) return 0;
        return node.selectionSet ? 1 + depth(node.selectionSet, seen) : 1;
      }
      if (node.kind === Kind.SELECTION_SET) return Math.max(0, ...node.selections.map((s) => depth(s, seen)));
      if (node.kind === Kind.INLINE_FRAGMENT) return depth(node.selectionSet, seen);
      if (node.kind === Kind.FRAGMENT_SPREAD) {
        const f = fragments.get(node.name.value);
        if (!f || seen.has(f.name.value)) return 0;
        return depth(f.selectionSet, new Set([...seen, f.name.value]));
      }
      return 0;
    };
    return {
      OperationDefinition(op) {
        const d = depth(op.selectionSet, new Set());
        if (d > max) context.reportError(new GraphQLError(`query depth ${d} exceeds the limit of ${max}`, { nodes: [op], extensions: { code: 'depth-limit' } }));
      },
    };
  };
}
