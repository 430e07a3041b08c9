/**
 * The hot path of the gateway's HTTP API: a POSTed JSON query that is answered from Postgres's
 * JSON text (engine.rawQuery) is served here, before graphql-yoga builds a fetch Request,
 * runs its plugin chain and negotiates the response. Under a query load those layers cost
 * about as much CPU per request as the rest of the gateway together.
 *
 * Everything that decides the answer is the same as yoga's path: the same authentication and
 * rate limit (once per request), the same parse, the same validation rules (graphql's
 * specified rules, the depth limit, no introspection for roles without it), the same
 * statement. The response is what yoga writes for such a result: status 200, the same
 * content type for the Accept header, the same body.
 *
 * Anything else is handed to yoga unchanged, with the body already read (yoga takes a Buffer
 * in `req.body`) and what was done so far (the principal's state, a rate-limit refusal, the
 * parsed document whose statement already ran) so nothing is done twice: other methods and
 * paths, other content types, an Origin header (CORS), an unknown Accept, malformed JSON or
 * parameters, failed authentication, validation errors, mutations and subscriptions, and
 * queries whose result graphql-js must shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationRule } from 'graphql/index.js';
import type { Principal } from './auth.ts';
import type { RawQueryResult, RequestState } from './engine.ts';

/** What the fast path did before it handed a request to yoga. */
export interface HandOver {
  /** The request's state (authenticated, admitted): yoga's auth plugin takes it as is. */
  state?: RequestState;
  /** The rate limiter's refusal: yoga's auth plugin throws it. */
  refusal?: unknown;
  /** The document parsed here (its statement may have run: its outcome is keyed by it). */
  document?: DocumentNode;
}

export interface FastPostOptions {
  /** yoga's node handler: the fallback. */
  yoga(req: IncomingMessage, res: ServerResponse): unknown;
  /** Requests handed to yoga, for its plugins (keyed by the node request yoga sees as serverContext.req). */
  handOver: WeakMap<IncomingMessage, HandOver>;
  authenticate(headers: Record<string, string | undefined>): Promise<Principal>;
  newState(p: Principal): RequestState;
  /** Takes a rate-limit token; throws the refusal. */
  admit(st: RequestState): void;
  /** The validation rules the gateway adds to graphql's for this request (depth, introspection). */
  rules(st: RequestState): ValidationRule[];
  rawQuery(st: RequestState, schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown> | undefined): Promise<RawQueryResult | undefined>;
  /** Counts a query request (the metric yoga's path counts in onExecute). */
  counted(): void;
  endpoint: string;
  bodyLimit: number;
  lowerHeaders(h: Record<string, unknown>): Record<string, string | undefined>;
  /** An error nothing above expected (logged; the client gets yoga's masked answer). */
  onError(err: unknown): void;
}

/** Response content type by Accept header, as yoga's result processors choose it for a single result. */
const CONTENT_TYPES = new Map<string | undefined, string>([
  [undefined, 'application/json; charset=utf-8'],
  ['*/*', 'application/json; charset=utf-8'],
  ['application/json', 'application/json; charset=utf-8'],
  ['application/graphql-response+json', 'application/graphql-response+json; charset=utf-8'],
  ['application/graphql-response+json, application/json', 'application/graphql-response+json; charset=utf-8'],
  ['application/graphql-response+json, application/json;q=0.9', 'application/graphql-response+json; charset=utf-8'],
  ['application/json, multipart/mixed', 'application/json; charset=utf-8'],
]);
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8', 'application/json; charset=UTF-8']);
const PARAMS = new Set(['query', 'variables', 'operationName', 'extensions']);
/** Parsed documents by query text, per process (bounded: cleared when full). */
const MAX_DOCUMENTS = 1000;

export interface FastPost {
  /** Takes the request (true) or leaves it to the caller (false: nothing read). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Requests answered here, without yoga (tests and diagnostics). */
  readonly answered: number;
}

export function fastPost(o: FastPostOptions): FastPost {
  let answered = 0;
  const documents = new Map<string, DocumentNode | null>();
  /** Validation outcome per schema (a role's schema version), document and extra-rule set. */
  const valid = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, boolean>>>();

  const eligible = (req: IncomingMessage): string | undefined => {
    if (req.method !== 'POST' || req.url !== o.endpoint) return undefined;
    const h = req.headers;
    if (h.origin !== undefined || h['transfer-encoding'] !== undefined || !JSON_TYPES.has(h['content-type'] ?? '')) return undefined;
    const length = h['content-length'];
    if (length === undefined || !/^\d+$/.test(length) || Number(length) > o.bodyLimit) return undefined;
    return CONTENT_TYPES.get(h.accept);
  };

  const isValid = (schema: GraphQLSchema, document: DocumentNode, rules: ValidationRule[], key: string): boolean => {
    let byDoc = valid.get(schema);
    if (!byDoc) valid.set(schema, (byDoc = new WeakMap()));
    let byRules = byDoc.get(document);
    if (!byRules) byDoc.set(document, (byRules = new Map()));
    let ok = byRules.get(key);
    if (ok === undefined) byRules.set(key, (ok = validate(schema, document, [...specifiedRules, ...rules]).length === 0));
    return ok;
  };

  const documentOf = (query: string): DocumentNode | null => {
    let d = documents.get(query);
    if (d !== undefined) return d;
    try {
      d = parse(query);
    } catch {
      d = null; // yoga reports the syntax error
    }
    if (documents.size >= MAX_DOCUMENTS) documents.clear();
    documents.set(query, d);
    return d;
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, contentType: string, body: Buffer): Promise<void> => {
    (req as IncomingMessage & { body?: Buffer }).body = body; // yoga reads a consumed request's body from here
    const toYoga = (h?: HandOver) => {
      if (h) o.handOver.set(req, h);
      void o.yoga(req, res);
    };
    let params: Record<string, unknown>;
    try {
      params = JSON.parse(body.toString('utf8'));
    } catch {
      return toYoga();
    }
    if (!params || typeof params !== 'object' || Array.isArray(params) || typeof params.query !== 'string') return toYoga();
    for (const k in params) if (!PARAMS.has(k) && params[k] != null) return toYoga();
    const { query, variables, operationName, extensions } = params as { query: string; variables?: unknown; operationName?: unknown; extensions?: unknown };
    if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return toYoga();
    if (operationName != null && typeof operationName !== 'string') return toYoga();
    if (extensions != null && (typeof extensions !== 'object' || Array.isArray(extensions) || Object.keys(extensions).length)) return toYoga();
    let st: RequestState;
    try {
      st = o.newState(await o.authenticate(o.lowerHeaders(req.headers as Record<string, unknown>)));
    } catch {
      return toYoga(); // yoga authenticates again and answers with the error
    }
    const document = documentOf(query);
    const schema = st.rs.schema;
    const rules = o.rules(st);
    const op = document && getOperationAST(document, (operationName as string | undefined) ?? undefined);
    if (!document || !op || op.operation !== 'query' || !isValid(schema, document, rules, rules.map((r) => r.name).join())) {
      return toYoga(); // yoga authenticates, admits and validates as for any request
    }
    try {
      o.admit(st);
    } catch (refusal) {
      return toYoga({ refusal });
    }
    o.counted();
    const vars = (variables ?? undefined) as Record<string, unknown> | undefined;
    if (vars) st.rawVariables = vars;
    const raw = await o.rawQuery(st, schema, document, (operationName as string | undefined) ?? undefined, vars);
    if (!raw) return toYoga({ state: st, document });
    const out = Buffer.from(raw.body);
    res.writeHead(200, { 'content-type': contentType, 'content-length': out.length });
    res.end(out);
    answered++;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const contentType = eligible(req);
    if (!contentType) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      serve(req, res, contentType, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).catch((err) => {
        // nothing above is expected to throw (rawQuery reports failures by returning undefined)
        o.onError(err);
        if (!res.headersSent) res.writeHead(500, { 'content-type': contentType });
        res.end(JSON.stringify({ data: null, errors: [{ message: 'Unexpected error.' }] }));
      });
    });
    req.once('error', () => res.destroy());
    return true;
  };
  return {
    handle,
    get answered() {
      return answered;
    },
  };
}
